//! Where every endpoint asks the [`Policy`]: the caller of a request with
//! the policy and the store, and the checks built on them (read a record,
//! write one, narrow a list, see a change).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use datastore_core::{
    Actor, BatchOp, Change, Datastore, Error, InitId, KeyId, Kind, LogId, Precondition, ProfileId,
    RecordId, StoreName, Version, Versioned, WorkflowId,
};

use crate::AppState;
use crate::policy::{Access, ListScope, Policy, Principal, Target};
use crate::problem::Problem;
use crate::resources::{Resource, Restricted};

/// The caller and the policy, for one request.
#[derive(Clone)]
pub struct Gate {
    /// Who calls.
    pub who: Principal,
    policy: Arc<dyn Policy>,
    ds: Arc<dyn Datastore>,
}

impl FromRequestParts<AppState> for Gate {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        // `access::authenticate` puts the caller there before any handler.
        let who = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this server needs Authorization: Bearer <token>",
                )
            })?;
        let actor = actor_of(&who, parts)?;
        Ok(Gate {
            who,
            policy: state.policy.clone(),
            ds: match actor {
                Some(actor) => state.ds.with_actor(actor),
                None => state.ds.clone(),
            },
        })
    }
}

/// The header naming who a write is made for (`profile:<id>` or
/// `service:<name>`), honoured for admin callers; a profile's token
/// always writes as its profile.
pub const ACTOR_HEADER: &str = "x-datastore-actor";

/// The actor of a request's writes: a profile token's profile; for an
/// admin caller the `x-datastore-actor` header, if any. A header that is
/// not an actor is a 400; one naming another profile than the token's a 403.
fn actor_of(who: &Principal, parts: &Parts) -> Result<Option<Actor>, Problem> {
    let named = match parts.headers.get(ACTOR_HEADER) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                Problem::bad_request(
                    ACTOR_HEADER,
                    "is not text: write profile:<id> or service:<name>",
                )
            })?;
            Some(
                text.parse::<Actor>()
                    .map_err(|e| Problem::bad_request(ACTOR_HEADER, e.reason))?,
            )
        }
    };
    match (&who.profile, named) {
        (Some(profile), Some(named)) if named.as_profile() != Some(profile) => Err(forbidden(
            format!("a token of profile {profile} writes as that profile, not as {named}"),
        )),
        (Some(profile), _) => Ok(Some(Actor::Profile(profile.clone()))),
        (None, named) => Ok(named),
    }
}

/// 403, for what the caller can see but not do.
pub fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

/// The answer for a record the caller may not read: the same as for one
/// that does not exist.
pub fn not_found(kind: Kind, key: &str) -> Problem {
    Problem::from(Error::NotFound {
        store: StoreName::Kind(kind),
        key: key.to_string(),
    })
}

/// What a write checked: the precondition to send, and whether the gate
/// chose it (so a conflict means "changed meanwhile, check again").
pub struct Pinned {
    /// The precondition to write with.
    pub precondition: Precondition,
    /// True when it is not the caller's own.
    pub pinned: bool,
}

/// How often a write whose pinned precondition failed is checked again.
pub const WRITE_ATTEMPTS: usize = 3;

impl Gate {
    /// Whether the caller is admin (nothing to check).
    /// The store as this caller writes to it: its writes name the
    /// request's actor (see [`ACTOR_HEADER`]).
    pub fn store(&self) -> &Arc<dyn Datastore> {
        &self.ds
    }

    /// Versions of one record if the caller may read the record (judged by
    /// its newest version that holds a body), with what its scope may not
    /// see taken out; else the answer for a missing record.
    pub async fn readable_versions<R: Resource>(
        &self,
        id: &R::Id,
        versions: &mut [Version<R>],
    ) -> Result<(), Problem> {
        let key = id.key();
        if !self.unrestricted() {
            let mut owner = versions
                .iter()
                .find_map(|v| v.value.as_ref().map(|r| r.owner()));
            if owner.is_none() {
                // Only deletes here: judge by the record's newest body.
                let first = R::of(&*self.ds)
                    .history(id, datastore_core::PageRequest::first(50))
                    .await?;
                owner = first
                    .items
                    .iter()
                    .find_map(|v| v.value.as_ref().map(|r| r.owner()));
            }
            let Some(owner) = owner else {
                return Err(not_found(R::KIND, &key));
            };
            if !self.allows(Access::Read, R::KIND, &key, owner.as_ref()) {
                return Err(not_found(R::KIND, &key));
            }
        }
        for v in versions {
            if let Some(value) = &mut v.value {
                value.redact_for(&self.who);
            }
        }
        Ok(())
    }

    /// True when the caller reads and writes every owner's records.
    pub fn unrestricted(&self) -> bool {
        self.who.is_admin()
    }

    fn allows(&self, access: Access, kind: Kind, key: &str, owner: Option<&ProfileId>) -> bool {
        self.policy
            .allows(&self.who, access, Target { kind, key, owner })
    }

    /// Refuses with 403 unless the caller may use operations across owners.
    pub fn require_all_owners(&self, what: &str) -> Result<(), Problem> {
        if self.policy.spans_owners(&self.who) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "{what} spans every profile's records: it needs an admin token"
            )))
        }
    }

    /// `found` if the caller may read it (with what its scope may not see
    /// taken out), else the answer for a missing record.
    pub fn readable<R: Resource>(&self, mut found: Versioned<R>) -> Result<Versioned<R>, Problem> {
        let key = found.value.id().key();
        if !self.allows(Access::Read, R::KIND, &key, found.value.owner().as_ref()) {
            return Err(not_found(R::KIND, &key));
        }
        found.value.redact_for(&self.who);
        Ok(found)
    }

    /// The records the caller may read, `None` for the rest.
    pub fn filter_many<R: Resource>(
        &self,
        items: Vec<Option<Versioned<R>>>,
    ) -> Vec<Option<Versioned<R>>> {
        items
            .into_iter()
            .map(|item| item.and_then(|v| self.readable(v).ok()))
            .collect()
    }

    /// Refuses a record the caller may not write as it would be written:
    /// 403 naming why (the caller wrote its owner, so nothing leaks).
    pub async fn check_new<R: Resource>(&self, record: &R) -> Result<(), Problem> {
        if self.unrestricted() {
            return Ok(());
        }
        // A run goes into a workflow the caller may write (404 if it may not
        // read it); the store gives it the workflow's owner.
        let parent = record.parent_workflow();
        if let Some(workflow) = &parent {
            self.check_workflow(workflow, Access::Write).await?;
        }
        let key = record.id().key();
        let owner = record.owner();
        if parent.is_some() && owner.is_none() {
            return Ok(());
        }
        if !self.allows(Access::Write, R::KIND, &key, owner.as_ref()) {
            return Err(forbidden(format!(
                "this token may not write this {} (scope {}, owner {:?})",
                R::KIND.noun(),
                self.who.scope,
                record.owner().map(|o| o.to_string()).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Checks the caller's access to a workflow: 404 if it may not read it
    /// (or it does not exist: the store's own answer then), 403 if it may
    /// read but not write it.
    pub async fn check_workflow(&self, id: &WorkflowId, access: Access) -> Result<(), Problem> {
        if self.unrestricted() {
            return Ok(());
        }
        match self.ds.workflows().get(id).await {
            Ok(found) => self.check_existing(&found, access),
            Err(Error::NotFound { .. }) => Err(not_found(Kind::Workflow, &id.key())),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the caller may change `found`: 404 if it may not read it,
    /// 403 if it may only read it.
    pub fn check_written<R: Resource>(&self, found: &Versioned<R>) -> Result<(), Problem> {
        if self.unrestricted() {
            return Ok(());
        }
        self.check_existing(found, Access::Write)
    }

    fn check_existing<R: Resource>(
        &self,
        found: &Versioned<R>,
        access: Access,
    ) -> Result<(), Problem> {
        let key = found.value.id().key();
        let owner = found.value.owner();
        if !self.allows(Access::Read, R::KIND, &key, owner.as_ref()) {
            return Err(not_found(R::KIND, &key));
        }
        if access == Access::Write && !self.allows(Access::Write, R::KIND, &key, owner.as_ref()) {
            return Err(forbidden(format!(
                "this token may read but not change {} {key:?}",
                R::KIND.noun()
            )));
        }
        Ok(())
    }

    /// Checks the caller may replace or delete the record at `id` (404 if
    /// it may not read it, 403 if only read), and pins the precondition to
    /// what was checked: the record at the revision seen, or no record, so
    /// a record that changes hands meanwhile is not written.
    pub async fn pin<R: Resource>(
        &self,
        id: &R::Id,
        precondition: Precondition,
    ) -> Result<Pinned, Problem> {
        let keep = Pinned {
            precondition,
            pinned: false,
        };
        if self.unrestricted() {
            return Ok(keep);
        }
        match R::of(&*self.ds).get(id).await {
            Ok(found) => {
                self.check_existing(&found, Access::Write)?;
                Ok(match precondition {
                    Precondition::Any | Precondition::MustExist => Pinned {
                        precondition: Precondition::MustBeAt(found.revision),
                        pinned: true,
                    },
                    _ => keep,
                })
            }
            Err(Error::NotFound { .. }) => Ok(match precondition {
                Precondition::Any => Pinned {
                    precondition: Precondition::MustNotExist,
                    pinned: true,
                },
                _ => keep,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The filter a list runs with for this caller: the caller's own, an
    /// empty page (`None`), or 403 for a list that spans owners.
    pub async fn list<R: Resource>(&self, filter: R::Filter) -> Result<Option<R::Filter>, Problem> {
        let me = match self.policy.list_scope(&self.who, R::KIND) {
            ListScope::All => return Ok(Some(filter)),
            ListScope::Nothing => {
                return Err(forbidden(format!(
                    "this token may not list {}",
                    R::KIND.as_str()
                )));
            }
            ListScope::Owner(me) => me,
        };
        match R::restrict(filter, &me) {
            Restricted::Keep(f) => Ok(Some(f)),
            Restricted::Empty => Ok(None),
            Restricted::Refuse(why) => Err(forbidden(why)),
            Restricted::IfOwnsWorkflow(workflow, f) => {
                match self.check_workflow(&workflow, Access::Read).await {
                    Ok(()) => Ok(Some(f)),
                    Err(p) if p.status == 404 => Ok(None),
                    Err(p) => Err(p),
                }
            }
        }
    }

    /// Checks the caller's access to a log (404 if it may not read it).
    pub async fn check_log(&self, log: &LogId, access: Access) -> Result<(), Problem> {
        if self.unrestricted() {
            return Ok(());
        }
        let owner = log_owner(&*self.ds, log).await?;
        let key = log.key();
        if !self.allows(Access::Read, Kind::Log, &key, owner.as_ref()) {
            return Err(not_found(Kind::Log, &key));
        }
        if access == Access::Write && !self.allows(Access::Write, Kind::Log, &key, owner.as_ref()) {
            return Err(forbidden(format!(
                "this token may read but not change log {key:?}"
            )));
        }
        Ok(())
    }

    /// Checks every op of a batch before anything is written (the whole
    /// batch is refused if one op is not allowed) and pins the
    /// preconditions of puts and deletes; true when one was pinned.
    pub async fn check_batch(&self, ops: &mut [BatchOp]) -> Result<bool, Problem> {
        if self.unrestricted() {
            return Ok(false);
        }
        let mut pinned_any = false;
        for op in ops.iter_mut() {
            match op {
                BatchOp::Put {
                    record,
                    precondition,
                } => {
                    let pinned = datastore_core::dispatch_any!(record, r => self.check_put_op(r, *precondition).await)?;
                    pinned_any |= pinned.pinned;
                    *precondition = pinned.precondition;
                }
                BatchOp::Delete {
                    kind,
                    key,
                    precondition,
                } => {
                    let kind = *kind;
                    let pinned = datastore_core::dispatch_editable!(kind, R => {
                        match <<R as datastore_core::Record>::Id as RecordId>::from_key(key) {
                            Some(id) => self.pin::<R>(&id, *precondition).await?,
                            None => return Err(not_found(kind, key)),
                        }
                    }, _ => return Err(forbidden(format!("{} cannot be deleted in a batch", kind.as_str()))));
                    pinned_any |= pinned.pinned;
                    *precondition = pinned.precondition;
                }
                BatchOp::AppendLog { log_id, .. } => self.check_log(log_id, Access::Write).await?,
            }
        }
        Ok(pinned_any)
    }

    async fn check_put_op<R: Resource>(
        &self,
        record: &R,
        precondition: Precondition,
    ) -> Result<Pinned, Problem> {
        self.check_new(record).await?;
        if record.id_is_empty() {
            return Ok(Pinned {
                precondition,
                pinned: false,
            });
        }
        self.pin::<R>(&record.id(), precondition).await
    }
}

/// The owner of a log: the owner of its dataset's workflow (the workflow
/// whose init id is the log's id), or `None` when the dataset has none.
pub async fn log_owner(ds: &dyn Datastore, log: &LogId) -> Result<Option<ProfileId>, Problem> {
    match ds
        .workflows()
        .get_by_init_id(&InitId::new(log.as_str()))
        .await
    {
        Ok(w) => Ok(Some(w.value.owner_id)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Decides, change by change, what one non-admin subscriber may see:
/// the owner of each changed record from the change itself where it names
/// it (a profile's key; the parent of workflows, keys, collection entries
/// and tokens), else from the record's workflow (runs, logs), looked up
/// once and remembered.
pub struct FeedGate {
    gate: Gate,
    workflows: HashMap<String, Option<ProfileId>>,
    datasets: HashMap<String, Option<ProfileId>>,
    checked: std::time::Instant,
}

/// How often an open event stream checks that its token is still valid.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// How many workflow owners a subscriber remembers before starting over.
const REMEMBERED: usize = 10_000;

impl FeedGate {
    /// The gate for one subscriber.
    pub fn new(gate: Gate) -> FeedGate {
        FeedGate {
            gate,
            workflows: HashMap::new(),
            datasets: HashMap::new(),
            checked: std::time::Instant::now(),
        }
    }

    /// Refuses (401) once the stream's issued token is revoked or expired,
    /// checked at most every [`RECHECK`].
    async fn still_valid(&mut self) -> Result<(), Problem> {
        let Some(id) = &self.gate.who.token else {
            return Ok(());
        };
        if self.checked.elapsed() < RECHECK {
            return Ok(());
        }
        self.checked = std::time::Instant::now();
        match self.gate.ds.tokens().get(id).await {
            Ok(t) if !t.value.expired(chrono::Utc::now()) => Ok(()),
            Ok(_) | Err(Error::NotFound { .. }) => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the stream's token was revoked or has expired",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the subscriber may see `change`.
    pub async fn sees(&mut self, change: &Change) -> Result<bool, Problem> {
        self.still_valid().await?;
        if self.gate.unrestricted() {
            return Ok(true);
        }
        if self.workflows.len() + self.datasets.len() > REMEMBERED {
            self.workflows.clear();
            self.datasets.clear();
        }
        let owner: Option<ProfileId> = match change.kind {
            Kind::Profile => Some(ProfileId::new(change.id.as_str())),
            // Feeds written before workflows and keys named their owner
            // as the parent: look the record up.
            Kind::Workflow => match change.parent.as_deref() {
                Some(owner) => {
                    let owner = Some(ProfileId::new(owner));
                    self.workflows.insert(change.id.clone(), owner.clone());
                    owner
                }
                None => self.workflow_owner(&change.id).await?,
            },
            Kind::Key => match change.parent.as_deref() {
                Some(owner) => Some(ProfileId::new(owner)),
                None => match self
                    .gate
                    .ds
                    .keys()
                    .get(&KeyId::new(change.id.as_str()))
                    .await
                {
                    Ok(k) => Some(k.value.profile_id),
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                },
            },
            Kind::Run => match change.parent.as_deref() {
                Some(workflow) => self.workflow_owner(workflow).await?,
                None => None,
            },
            Kind::Log => match change.parent.as_deref() {
                Some(log) => self.dataset_owner(log).await?,
                None => None,
            },
            _ => change.parent.as_deref().map(ProfileId::new),
        };
        Ok(self
            .gate
            .allows(Access::Read, change.kind, &change.id, owner.as_ref()))
    }

    async fn workflow_owner(&mut self, id: &str) -> Result<Option<ProfileId>, Problem> {
        if let Some(owner) = self.workflows.get(id) {
            return Ok(owner.clone());
        }
        let owner = match self.gate.ds.workflows().get(&WorkflowId::new(id)).await {
            Ok(w) => Some(w.value.owner_id),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        self.workflows.insert(id.to_string(), owner.clone());
        Ok(owner)
    }

    async fn dataset_owner(&mut self, log: &str) -> Result<Option<ProfileId>, Problem> {
        if let Some(owner) = self.datasets.get(log) {
            return Ok(owner.clone());
        }
        let owner = log_owner(&*self.gate.ds, &LogId::new(log)).await?;
        self.datasets.insert(log.to_string(), owner.clone());
        Ok(owner)
    }
}
