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
}
