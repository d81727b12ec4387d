//! How each record kind is served: its path, the id its path names, and
//! the list filters and orders its query string takes.

use std::collections::HashMap;

use datastore_core::{
    CollectionEntry, CollectionFilter, CollectionKey, CollectionOrder, Key, KeyFilter, KeyId,
    KeyOrder, Precondition, Profile, ProfileFilter, ProfileId, ProfileOrder, Run, RunFilter, RunId,
    RunOrder, RunStatus, Substore, Versioned, Workflow, WorkflowFilter, WorkflowId, WorkflowOrder,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A record kind served over HTTP.
pub trait Resource: Substore + Serialize + DeserializeOwned {
    /// The path segment (`profiles`).
    const PATH: &'static str;

    /// The id from the path's segments.
    fn id_from_path(segments: &[String]) -> Result<Self::Id, Problem>;

    /// Creates a record (`POST`): a put that never replaces; runs get their
    /// number here.
    fn create(
        ds: &dyn datastore_core::Datastore,
        record: Self,
    ) -> futures::future::BoxFuture<'_, datastore_core::Result<Versioned<Self>>> {
        Self::of(ds).put(record, Precondition::MustNotExist)
    }

    /// The list filter and order from query parameters.
    fn filter(params: &HashMap<String, String>) -> Result<(Self::Filter, Self::Order), Problem>;

    /// The profile that owns the record, for the [`Policy`](crate::Policy).
    fn owner(&self) -> Option<ProfileId>;

    /// A workflow the caller must also be allowed to write to write this
    /// record (a run's).
    fn parent_workflow(&self) -> Option<WorkflowId> {
        None
    }

    /// A list filter narrowed to what `owner` owns.
    fn restrict(filter: Self::Filter, owner: &ProfileId) -> Restricted<Self::Filter>;

    /// The order a narrowed list runs in, where the caller's order has no
    /// index under the narrowed filter (a profile's workflows are kept by
    /// creation time, not id).
    fn narrowed_order(_filter: &Self::Filter, order: Self::Order) -> Self::Order {
        order
    }

    /// Takes out what the caller's scope may not see (a private key below
    /// `write`, a token's hash below `admin`).
    fn redact_for(&mut self, _who: &crate::Principal) {}
}

/// A list filter narrowed to one owner's records.
#[derive(Debug)]
pub enum Restricted<F> {
    /// This filter (the caller's, or the caller's own records for none).
    Keep(F),
    /// Another owner's records: an empty page.
    Empty,
    /// A list across owners: refused, saying how to ask instead.
    Refuse(&'static str),
    /// This filter, if the caller may read the workflow (else empty).
    IfOwnsWorkflow(WorkflowId, F),
}

/// `Keep(filter)` if `of` is `owner`, else `Empty`.
fn own<F>(of: &ProfileId, owner: &ProfileId, filter: F) -> Restricted<F> {
    if of == owner {
        Restricted::Keep(filter)
    } else {
        Restricted::Empty
    }
}

fn one_segment(segments: &[String]) -> Result<&str, Problem> {
    match segments {
        [id] => Ok(id),
        _ => Err(Problem::bad_request("id", "expected one id segment")),
    }
}

pub(crate) fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str)
}

fn order_param<O>(params: &HashMap<String, String>, options: &[(&str, O)]) -> Result<O, Problem>
where
    O: Copy + Default,
{
    match param(params, "order") {
        None => Ok(O::default()),
        Some(name) => options
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, o)| *o)
            .ok_or_else(|| {
                let names: Vec<_> = options.iter().map(|(n, _)| *n).collect();
                Problem::bad_request(
                    "order",
                    format!("unknown order {name:?}; expected one of {names:?}"),
                )
            }),
    }
}

fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Problem> {
    const PAGING: [&str; 4] = ["limit", "cursor", "order", "direction"];
    for name in params.keys() {
        if !allowed.contains(&name.as_str()) && !PAGING.contains(&name.as_str()) {
            return Err(Problem::bad_request(
                name,
                format!(
                    "unknown parameter {name:?}; this list takes {allowed:?} and limit, cursor, order, direction"
                ),
            ));
        }
    }
    Ok(())
}

impl Resource for Profile {
    const PATH: &'static str = "profiles";
    fn id_from_path(segments: &[String]) -> Result<ProfileId, Problem> {
        Ok(ProfileId::new(one_segment(segments)?))
    }
    fn filter(params: &HashMap<String, String>) -> Result<(ProfileFilter, ProfileOrder), Problem> {
        only(params, &[])?;
        let order = order_param(
            params,
            &[
                ("id", ProfileOrder::Id),
                ("username", ProfileOrder::Username),
                ("created", ProfileOrder::Created),
            ],
        )?;
        Ok((ProfileFilter::All, order))
    }
    fn owner(&self) -> Option<ProfileId> {
        Some(self.id.clone())
    }
    fn restrict(_: ProfileFilter, _: &ProfileId) -> Restricted<ProfileFilter> {
        Restricted::Refuse(
            "profiles are listed with an admin token; read yours with GET /v1/profiles/{id}",
        )
    }
}

impl Resource for Workflow {
    const PATH: &'static str = "workflows";
    fn id_from_path(segments: &[String]) -> Result<WorkflowId, Problem> {
        Ok(WorkflowId::new(one_segment(segments)?))
    }
    fn filter(
        params: &HashMap<String, String>,
    ) -> Result<(WorkflowFilter, WorkflowOrder), Problem> {
        only(params, &["owner", "active"])?;
        let filter = match (param(params, "owner"), param(params, "active")) {
            (Some(_), Some(_)) => {
                return Err(Problem::bad_request(
                    "active",
                    "use owner or active, not both",
                ));
            }
            (Some(owner), None) => WorkflowFilter::Owner(ProfileId::new(owner)),
            (None, Some("true")) => WorkflowFilter::Active,
            (None, Some(other)) => {
                return Err(Problem::bad_request(
                    "active",
                    format!("{other:?}: only active=true is a filter"),
                ));
            }
            (None, None) => WorkflowFilter::All,
        };
        let order = order_param(
            params,
            &[
                ("id", WorkflowOrder::Id),
                ("created", WorkflowOrder::Created),
            ],
        )?;
        Ok((filter, order))
    }
    fn owner(&self) -> Option<ProfileId> {
        Some(self.owner_id.clone())
    }
    fn narrowed_order(filter: &WorkflowFilter, order: WorkflowOrder) -> WorkflowOrder {
        match filter {
            WorkflowFilter::Owner(_) => WorkflowOrder::Created,
            _ => order,
        }
    }
    fn restrict(filter: WorkflowFilter, owner: &ProfileId) -> Restricted<WorkflowFilter> {
        match filter {
            WorkflowFilter::All => Restricted::Keep(WorkflowFilter::Owner(owner.clone())),
            WorkflowFilter::Owner(of) => own(&of, owner, WorkflowFilter::Owner(of.clone())),
            WorkflowFilter::Active => {
                Restricted::Refuse("active workflows span every owner: list your own with ?owner=")
            }
        }
    }
}

impl Resource for Run {
    const PATH: &'static str = "runs";
    fn create(
        ds: &dyn datastore_core::Datastore,
        record: Self,
    ) -> futures::future::BoxFuture<'_, datastore_core::Result<Versioned<Self>>> {
        ds.runs().create(record)
    }
    fn id_from_path(segments: &[String]) -> Result<RunId, Problem> {
        Ok(RunId::new(one_segment(segments)?))
    }
    fn filter(params: &HashMap<String, String>) -> Result<(RunFilter, RunOrder), Problem> {
        only(params, &["workflow", "owner", "status"])?;
        let filter = match (
            param(params, "workflow"),
            param(params, "owner"),
            param(params, "status"),
        ) {
            (Some(w), None, None) => RunFilter::Workflow(WorkflowId::new(w)),
            (None, Some(o), Some(s)) => {
                let status: RunStatus = serde_json::from_value(serde_json::Value::String(s.into()))
                    .map_err(|_| {
                        Problem::bad_request("status", format!("unknown run status {s:?}"))
                    })?;
                RunFilter::OwnerStatus(ProfileId::new(o), status)
            }
            (None, None, None) => RunFilter::All,
            _ => {
                return Err(Problem::bad_request(
                    "workflow",
                    "filter runs by workflow, or by owner and status together",
                ));
            }
        };
        let order = order_param(
            params,
            &[
                ("natural", RunOrder::Natural),
                ("number", RunOrder::Number),
                ("created", RunOrder::Created),
            ],
        )?;
        Ok((filter, order))
    }
    /// `None` for a new run without one: the store gives it its
    /// workflow's owner.
    fn owner(&self) -> Option<ProfileId> {
        (!self.owner_id.is_empty()).then(|| self.owner_id.clone())
    }
    fn parent_workflow(&self) -> Option<WorkflowId> {
        Some(self.workflow_id.clone())
    }
    fn restrict(filter: RunFilter, owner: &ProfileId) -> Restricted<RunFilter> {
        match filter {
            RunFilter::All => Restricted::Refuse(
                "all runs span every owner: list a workflow's (?workflow=) or yours by status (?owner=&status=)",
            ),
            RunFilter::Workflow(w) => Restricted::IfOwnsWorkflow(w.clone(), RunFilter::Workflow(w)),
            RunFilter::OwnerStatus(of, status) => {
                own(&of, owner, RunFilter::OwnerStatus(of.clone(), status))
            }
        }
    }
}

impl Resource for Key {
    const PATH: &'static str = "keys";
    fn id_from_path(segments: &[String]) -> Result<KeyId, Problem> {
        Ok(KeyId::new(one_segment(segments)?))
    }
    fn filter(params: &HashMap<String, String>) -> Result<(KeyFilter, KeyOrder), Problem> {
        only(params, &["profile"])?;
        let filter = match param(params, "profile") {
            Some(p) => KeyFilter::Profile(ProfileId::new(p)),
            None => KeyFilter::All,
        };
        Ok((filter, order_param(params, &[("id", KeyOrder::Id)])?))
    }
    fn owner(&self) -> Option<ProfileId> {
        Some(self.profile_id.clone())
    }
    fn restrict(filter: KeyFilter, owner: &ProfileId) -> Restricted<KeyFilter> {
        match filter {
            KeyFilter::All => Restricted::Keep(KeyFilter::Profile(owner.clone())),
            KeyFilter::Profile(of) => own(&of, owner, KeyFilter::Profile(of.clone())),
        }
    }
    fn redact_for(&mut self, who: &crate::Principal) {
        if who.scope < datastore_core::TokenScope::Write {
            self.private_key = None;
        }
    }
}

impl Resource for datastore_core::AccessToken {
    const PATH: &'static str = "tokens";
    fn id_from_path(segments: &[String]) -> Result<datastore_core::TokenId, Problem> {
        Ok(datastore_core::TokenId::new(one_segment(segments)?))
    }
    fn filter(
        params: &HashMap<String, String>,
    ) -> Result<(datastore_core::TokenFilter, datastore_core::TokenOrder), Problem> {
        only(params, &["profile"])?;
        let filter = match param(params, "profile") {
            Some(p) => datastore_core::TokenFilter::Profile(ProfileId::new(p)),
            None => datastore_core::TokenFilter::All,
        };
        Ok((
            filter,
            order_param(params, &[("id", datastore_core::TokenOrder::Id)])?,
        ))
    }
    fn owner(&self) -> Option<ProfileId> {
        Some(self.profile_id.clone())
    }
    fn restrict(
        filter: datastore_core::TokenFilter,
        owner: &ProfileId,
    ) -> Restricted<datastore_core::TokenFilter> {
        use datastore_core::TokenFilter;
        match filter {
            TokenFilter::All => Restricted::Keep(TokenFilter::Profile(owner.clone())),
            TokenFilter::Profile(of) => own(&of, owner, TokenFilter::Profile(of.clone())),
        }
    }
    fn redact_for(&mut self, who: &crate::Principal) {
        if !who.is_admin() {
            self.secret_hash.clear();
        }
    }
}

impl Resource for CollectionEntry {
    const PATH: &'static str = "collections";
    fn id_from_path(segments: &[String]) -> Result<CollectionKey, Problem> {
        match segments {
            [profile, init] => Ok(CollectionKey::new(profile.as_str(), init.as_str())),
            _ => Err(Problem::bad_request(
                "id",
                "a collection entry is /collections/PROFILE/INIT_ID",
            )),
        }
    }
    fn filter(
        params: &HashMap<String, String>,
    ) -> Result<(CollectionFilter, CollectionOrder), Problem> {
        only(params, &["profile", "init_id", "username"])?;
        let filter = match (
            param(params, "profile"),
            param(params, "init_id"),
            param(params, "username"),
        ) {
            (Some(p), None, None) => CollectionFilter::Profile(ProfileId::new(p)),
            (None, Some(i), None) => CollectionFilter::InitId(datastore_core::InitId::new(i)),
            (None, None, Some(u)) => CollectionFilter::Username(u.to_string()),
            (None, None, None) => CollectionFilter::All,
            _ => {
                return Err(Problem::bad_request(
                    "init_id",
                    "filter collections by one of profile, init_id and username",
                ));
            }
        };
        let order = order_param(
            params,
            &[
                ("key", CollectionOrder::Key),
                ("name", CollectionOrder::Name),
                ("commit_time", CollectionOrder::CommitTime),
                ("updated", CollectionOrder::Updated),
            ],
        )?;
        Ok((filter, order))
    }
    fn owner(&self) -> Option<ProfileId> {
        Some(self.profile_id.clone())
    }
    fn narrowed_order(filter: &CollectionFilter, order: CollectionOrder) -> CollectionOrder {
        match (filter, order) {
            (CollectionFilter::Profile(_), CollectionOrder::Key) => CollectionOrder::Name,
            _ => order,
        }
    }
    fn restrict(filter: CollectionFilter, owner: &ProfileId) -> Restricted<CollectionFilter> {
        match filter {
            CollectionFilter::All => Restricted::Keep(CollectionFilter::Profile(owner.clone())),
            CollectionFilter::Profile(of) => own(&of, owner, CollectionFilter::Profile(of.clone())),
            CollectionFilter::InitId(_) | CollectionFilter::Username(_) => Restricted::Refuse(
                "a dataset's entries span every profile's collection: list yours with ?profile=",
            ),
        }
    }
}
