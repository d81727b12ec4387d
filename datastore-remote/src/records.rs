//! The record stores over `/v1/STORE`: get, get-many, put, delete and list
//! for every editable kind, and the operations particular to each.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datastore_core::{
    CollectionEntry, CollectionFilter, CollectionOrder, CollectionPatch, CollectionStore, Editable,
    Error, InitId, Key, KeyFilter, KeyOrder, KeyStore, Kind, Page, PageRequest, Precondition,
    Profile, ProfileFilter, ProfileId, ProfileOrder, ProfileStore, Query, RecordId, RecordStore,
    Renamed, Result, Revision, Run, RunEvent, RunFilter, RunId, RunOrder, RunStatus, RunStore,
    StoreName, Version, Versioned, Workflow, WorkflowFilter, WorkflowId, WorkflowOrder,
    WorkflowStore,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::RemoteStore;
use crate::http::with_precondition;
use crate::problem::Ctx;

/// A kind served under `/v1/PATH`, with its list query as parameters.
pub(crate) trait RemoteKind: Editable {
    /// The path segment (`profiles`).
    const PATH: &'static str;

    /// The filter and order as query parameters (`order` always given, so
    /// the server's default never decides).
    fn params(filter: &Self::Filter, order: Self::Order) -> Vec<(&'static str, String)>;
}

fn status_name(status: RunStatus) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{status:?}").to_lowercase(),
    }
}

impl RemoteKind for Profile {
    const PATH: &'static str = "profiles";
    fn params(filter: &ProfileFilter, order: ProfileOrder) -> Vec<(&'static str, String)> {
        let ProfileFilter::All = filter;
        let order = match order {
            ProfileOrder::Id => "id",
            ProfileOrder::Username => "username",
            ProfileOrder::Created => "created",
        };
        vec![("order", order.into())]
    }
}

impl RemoteKind for Workflow {
    const PATH: &'static str = "workflows";
    fn params(filter: &WorkflowFilter, order: WorkflowOrder) -> Vec<(&'static str, String)> {
        let mut params = match filter {
            WorkflowFilter::All => vec![],
            WorkflowFilter::Owner(owner) => vec![("owner", owner.to_string())],
            WorkflowFilter::Active => vec![("active", "true".into())],
        };
        let order = match order {
            WorkflowOrder::Id => "id",
            WorkflowOrder::Created => "created",
        };
        params.push(("order", order.into()));
        params
    }
}

impl RemoteKind for Run {
    const PATH: &'static str = "runs";
    fn params(filter: &RunFilter, order: RunOrder) -> Vec<(&'static str, String)> {
        let mut params = match filter {
            RunFilter::All => vec![],
            RunFilter::Workflow(w) => vec![("workflow", w.to_string())],
            RunFilter::OwnerStatus(owner, status) => vec![
                ("owner", owner.to_string()),
                ("status", status_name(*status)),
            ],
        };
        let order = match order {
            RunOrder::Natural => "natural",
            RunOrder::Number => "number",
            RunOrder::Created => "created",
        };
        params.push(("order", order.into()));
        params
    }
}

impl RemoteKind for Key {
    const PATH: &'static str = "keys";
    fn params(filter: &KeyFilter, order: KeyOrder) -> Vec<(&'static str, String)> {
        let mut params = match filter {
            KeyFilter::All => vec![],
            KeyFilter::Profile(p) => vec![("profile", p.to_string())],
        };
        let KeyOrder::Id = order;
        params.push(("order", "id".into()));
        params
    }
}

impl RemoteKind for datastore_core::AccessToken {
    const PATH: &'static str = "tokens";
    fn params(
        filter: &datastore_core::TokenFilter,
        order: datastore_core::TokenOrder,
    ) -> Vec<(&'static str, String)> {
        let mut params = match filter {
            datastore_core::TokenFilter::All => vec![],
            datastore_core::TokenFilter::Profile(p) => vec![("profile", p.to_string())],
        };
        let datastore_core::TokenOrder::Id = order;
        params.push(("order", "id".into()));
        params
    }
}

impl RemoteKind for CollectionEntry {
    const PATH: &'static str = "collections";
    fn params(filter: &CollectionFilter, order: CollectionOrder) -> Vec<(&'static str, String)> {
        let mut params = match filter {
            CollectionFilter::All => vec![],
            CollectionFilter::Profile(p) => vec![("profile", p.to_string())],
            CollectionFilter::InitId(i) => vec![("init_id", i.to_string())],
            CollectionFilter::Username(u) => vec![("username", u.clone())],
        };
        let order = match order {
            CollectionOrder::Key => "key",
            CollectionOrder::Name => "name",
            CollectionOrder::CommitTime => "commit_time",
            CollectionOrder::Updated => "updated",
        };
        params.push(("order", order.into()));
        params
    }
}

/// The key of `id`, checked as the store checks it (so an id that would
/// name another path never reaches a URL).
pub(crate) fn checked_key<R: RemoteKind>(id: &R::Id) -> Result<String> {
    let key = id.key();
    id.check("id")
        .map_err(|e| e.into_error(R::KIND.store(), key.clone()))?;
    Ok(key)
}

/// Checks an id of another kind, naming `field`.
pub(crate) fn checked<I: RecordId>(store: StoreName, id: &I, field: &str) -> Result<String> {
    let key = id.key();
    id.check(field)
        .map_err(|e| e.into_error(store, key.clone()))?;
    Ok(key)
}

#[derive(Serialize)]
struct GetMany<'a, Id> {
    ids: &'a [Id],
}

#[derive(Deserialize)]
struct Many<T> {
    items: Vec<Option<T>>,
}

impl RemoteStore {
    /// A list page of `R`.
    pub(crate) async fn list_page<R: RemoteKind>(
        &self,
        query: &Query<R>,
    ) -> Result<Page<Versioned<R>>> {
        let store = R::KIND.store();
        let mut params = R::params(&query.filter, query.order);
        params.push((
            "direction",
            match query.direction {
                datastore_core::Direction::Asc => "asc",
                datastore_core::Direction::Desc => "desc",
            }
            .into(),
        ));
        params.push(("limit", query.limit.to_string()));
        if let Some(cursor) = &query.cursor {
            params.push(("cursor", cursor.as_str().to_string()));
        }
        let rb = self
            .inner
            .http
            .get(&format!("/v1/{}", R::PATH))
            .query(&params);
        self.inner.http.json(rb, &Ctx::new(store, "")).await
    }
}

/// Fills the times a put leaves to the store, on a copy that is only
/// checked (the server fills its own).
fn with_write_times<R: Editable>(record: &R) -> R {
    let mut copy = record.clone();
    let now = Utc::now();
    for time in copy.write_times_mut() {
        if *time == DateTime::<Utc>::UNIX_EPOCH {
            *time = now;
        }
    }
    copy
}

#[async_trait]
impl<R: RemoteKind> RecordStore<R> for RemoteStore {
    async fn get(&self, id: &R::Id) -> Result<Versioned<R>> {
        let key = checked_key::<R>(id)?;
        let rb = self.inner.http.get(&format!("/v1/{}/{key}", R::PATH));
        self.inner
            .http
            .json(rb, &Ctx::new(R::KIND.store(), key))
            .await
    }

    async fn get_many(&self, ids: &[R::Id]) -> Result<Vec<Option<Versioned<R>>>> {
        let rb = self
            .inner
            .http
            .request(Method::POST, &format!("/v1/{}:get-many", R::PATH), false)
            .json(&GetMany { ids });
        let many: Many<Versioned<R>> = self
            .inner
            .http
            .json(rb, &Ctx::new(R::KIND.store(), ""))
            .await?;
        if many.items.len() != ids.len() {
            return Err(Ctx::new(R::KIND.store(), "").backend(format!(
                "asked for {} records, the server answered {}",
                ids.len(),
                many.items.len()
            )));
        }
        Ok(many.items)
    }

    async fn put(&self, mut record: R, precondition: Precondition) -> Result<Versioned<R>> {
        let store = R::KIND.store();
        if record.id_is_empty() {
            if matches!(
                precondition,
                Precondition::MustExist | Precondition::MustBeAt(_)
            ) {
                return Err(Error::invalid(
                    store,
                    "",
                    "id",
                    format!("must not be empty with precondition {precondition}"),
                ));
            }
            // The same id the store would generate (a time-sortable one).
            if let Some(id) = record.new_id() {
                record.set_id(id);
            }
        }
        let key = record.id().key();
        // The store's own checks, before a byte is sent: a record too large
        // for a request body is still `Invalid` naming its field.
        let copy = with_write_times(&record);
        copy.validate()
            .map_err(|e| e.into_error(store, key.clone()))?;
        let size = serde_json::to_vec(&copy)
            .map_err(|e| Error::invalid(store, &key, "record", e.to_string()))?
            .len();
        let max = self.inner.settings.max_record_bytes;
        if size > max {
            return Err(Error::invalid(
                store,
                &key,
                "record",
                format!("encodes to {size} bytes, over the {max}-byte limit"),
            ));
        }
        let key = checked_key::<R>(&record.id())?;
        let rb = self
            .inner
            .http
            .request(Method::PUT, &format!("/v1/{}/{key}", R::PATH), false)
            .json(&record);
        let rb = with_precondition(rb, precondition);
        self.inner
            .http
            .json(rb, &Ctx::new(store, key).with(precondition))
            .await
    }

    async fn delete(
        &self,
        id: &R::Id,
        precondition: Precondition,
    ) -> Result<datastore_core::Revision> {
        let store = R::KIND.store();
        let key = checked_key::<R>(id)?;
        let rb = self
            .inner
            .http
            .request(Method::DELETE, &format!("/v1/{}/{key}", R::PATH), false);
        let rb = with_precondition(rb, precondition);
        let ctx = Ctx::new(store, key).with(precondition);
        let response = self.inner.http.send(rb, &ctx).await?;
        response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::problem::parse_etag)
            .ok_or_else(|| ctx.backend("the delete's answer carries no ETag"))
    }

    async fn list(&self, query: Query<R>) -> Result<Page<Versioned<R>>> {
        self.list_page(&query).await
    }

    /// `GET /v1/STORE/{id}/history`.
    async fn history(&self, id: &R::Id, page: PageRequest) -> Result<Page<Version<R>>> {
        let key = checked_key::<R>(id)?;
        let mut params = vec![("limit", page.limit.to_string())];
        if let Some(cursor) = &page.cursor {
            params.push(("cursor", cursor.as_str().to_string()));
        }
        let rb = self
            .inner
            .http
            .get(&format!("/v1/{}/{key}/history", R::PATH))
            .query(&params);
        self.inner
            .http
            .json(rb, &Ctx::new(R::KIND.store(), key))
            .await
    }

    /// `GET /v1/STORE/{id}/versions/{revision}`.
    async fn get_at(&self, id: &R::Id, revision: Revision) -> Result<Version<R>> {
        let key = checked_key::<R>(id)?;
        let rb = self
            .inner
            .http
            .get(&format!("/v1/{}/{key}/versions/{revision}", R::PATH));
        self.inner
            .http
            .json(rb, &Ctx::new(R::KIND.store(), key))
            .await
    }

    /// `POST /v1/STORE/{id}/restore`, the precondition as `If-Match` /
    /// `If-None-Match`.
    async fn restore(
        &self,
        id: &R::Id,
        revision: Revision,
        precondition: Precondition,
    ) -> Result<Versioned<R>> {
        let store = R::KIND.store();
        let key = checked_key::<R>(id)?;
        let rb = self
            .inner
            .http
            .request(
                Method::POST,
                &format!("/v1/{}/{key}/restore", R::PATH),
                false,
            )
            .json(&serde_json::json!({ "revision": revision.get() }));
        let rb = with_precondition(rb, precondition);
        self.inner
            .http
            .json(rb, &Ctx::new(store, key).with(precondition))
            .await
    }
}

#[derive(Serialize)]
struct RenameBody<'a> {
    username: &'a str,
}

#[derive(Deserialize)]
struct RenameAnswer {
    profile: Versioned<Profile>,
    entries: Vec<Versioned<CollectionEntry>>,
}

#[async_trait]
impl ProfileStore for RemoteStore {
    /// `GET /v1/profiles:by-username/{username}`.
    async fn get_by_username(&self, username: &str) -> Result<Versioned<Profile>> {
        let store = StoreName::Kind(Kind::Profile);
        if username.is_empty() {
            return Err(Error::invalid(
                store,
                username,
                "username",
                "must not be empty",
            ));
        }
        let rb = self.inner.http.get(&format!(
            "/v1/profiles:by-username/{}",
            path_segment(username)
        ));
        self.inner.http.json(rb, &Ctx::new(store, username)).await
    }

    async fn rename(
        &self,
        id: &ProfileId,
        username: &str,
        precondition: Precondition,
    ) -> Result<Renamed> {
        let store = StoreName::Kind(Kind::Profile);
        let key = checked(store, id, "id")?;
        let rb = self
            .inner
            .http
            .request(Method::POST, &format!("/v1/profiles/{key}/rename"), false)
            .json(&RenameBody { username });
        let rb = with_precondition(rb, precondition);
        // Not a put: `If-None-Match: *` failing is the store's own answer.
        let ctx = Ctx::new(store, key);
        let answer: RenameAnswer = self.inner.http.json(rb, &ctx.with(precondition)).await?;
        Ok(Renamed {
            profile: answer.profile,
            entries: answer.entries,
        })
    }
}

#[async_trait]
impl WorkflowStore for RemoteStore {
    /// `GET /v1/workflows:by-init-id/{init_id}`.
    async fn get_by_init_id(&self, init_id: &InitId) -> Result<Versioned<Workflow>> {
        let store = StoreName::Kind(Kind::Workflow);
        let key = checked(store, init_id, "init_id")?;
        let rb = self
            .inner
            .http
            .get(&format!("/v1/workflows:by-init-id/{key}"));
        self.inner.http.json(rb, &Ctx::new(store, key)).await
    }
}

#[derive(Serialize)]
struct AppendEvent<'a> {
    step: usize,
    kind: &'a str,
    payload: &'a serde_json::Value,
    at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Counted {
    count: u64,
}

/// A path segment with the characters a URL path may not hold escaped
/// (usernames may hold spaces and more; ids are checked instead).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl RunStore for RemoteStore {
    async fn create(&self, run: Run) -> Result<Versioned<Run>> {
        let store = StoreName::Kind(Kind::Run);
        checked(store, &run.workflow_id, "workflow_id")?;
        let key = run.id.key();
        if !run.id.is_empty() {
            checked(store, &run.id, "id")?;
        }
        let rb = self
            .inner
            .http
            .request(Method::POST, "/v1/runs", false)
            .json(&run);
        self.inner.http.json(rb, &Ctx::new(store, key)).await
    }

    async fn latest(&self, workflow: &WorkflowId) -> Result<Versioned<Run>> {
        let store = StoreName::Kind(Kind::Run);
        let key = checked(store, workflow, "workflow_id")?;
        let query = Query::new(RunFilter::Workflow(workflow.clone()))
            .descending()
            .limit(1);
        self.list_page(&query)
            .await?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(store, key))
    }

    /// `GET /v1/workflows/{id}/runs:count`.
    async fn count(&self, workflow: &WorkflowId) -> Result<u64> {
        let store = StoreName::Kind(Kind::Run);
        let key = checked(store, workflow, "workflow_id")?;
        let rb = self
            .inner
            .http
            .get(&format!("/v1/workflows/{key}/runs:count"));
        let counted: Counted = self.inner.http.json(rb, &Ctx::new(store, key)).await?;
        Ok(counted.count)
    }

    async fn list_latest_by_status(
        &self,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        let mut params = vec![
            ("status", status_name(status)),
            ("limit", page.limit.to_string()),
        ];
        if let Some(cursor) = &page.cursor {
            params.push(("cursor", cursor.as_str().to_string()));
        }
        let rb = self.inner.http.get("/v1/runs:latest").query(&params);
        self.inner
            .http
            .json(rb, &Ctx::new(StoreName::Kind(Kind::Run), ""))
            .await
    }

    async fn append_event(
        &self,
        run: &RunId,
        step: usize,
        event: RunEvent,
    ) -> Result<Versioned<Run>> {
        let store = StoreName::Kind(Kind::Run);
        let key = checked(store, run, "id")?;
        let rb = self
            .inner
            .http
            .request(Method::POST, &format!("/v1/runs/{key}/events"), false)
            .json(&AppendEvent {
                step,
                kind: &event.kind,
                payload: &event.payload,
                at: event.at,
            });
        self.inner.http.json(rb, &Ctx::new(store, key)).await
    }
}

#[async_trait]
impl KeyStore for RemoteStore {}

#[derive(Serialize)]
struct UpdateByInitId<'a> {
    init_id: &'a InitId,
    patch: &'a CollectionPatch,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[async_trait]
impl CollectionStore for RemoteStore {
    async fn update_by_init_id(
        &self,
        init_id: &InitId,
        patch: CollectionPatch,
    ) -> Result<Vec<Versioned<CollectionEntry>>> {
        let store = StoreName::Kind(Kind::Collection);
        let rb = self
            .inner
            .http
            .request(Method::POST, "/v1/collections:update-by-init-id", false)
            .json(&UpdateByInitId {
                init_id,
                patch: &patch,
            });
        let items: Items<Versioned<CollectionEntry>> = self
            .inner
            .http
            .json(rb, &Ctx::new(store, init_id.as_str()))
            .await?;
        Ok(items.items)
    }
}
