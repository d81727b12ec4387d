//! The record endpoints, once for every kind: get, get-many, list, create,
//! put and delete, with revisions as ETags.

use std::collections::HashMap;

use axum::extract::{Path, Query as Params, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datastore_core::{
    CollectionEntry, CollectionFilter, CollectionKey, CollectionOrder, Cursor, Direction, Error,
    Key, KeyFilter, KeyId, KeyOrder, Precondition, Profile, ProfileFilter, ProfileId, ProfileOrder,
    Query, RecordId, Revision, Run, RunFilter, RunId, RunOrder, RunStatus, Substore, Versioned,
    Workflow, WorkflowFilter, WorkflowId, WorkflowOrder,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::body::Strict;
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

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
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
        only(params, &["profile", "init_id"])?;
        let filter = match (param(params, "profile"), param(params, "init_id")) {
            (Some(_), Some(_)) => {
                return Err(Problem::bad_request(
                    "init_id",
                    "use profile or init_id, not both",
                ));
            }
            (Some(p), None) => CollectionFilter::Profile(ProfileId::new(p)),
            (None, Some(i)) => CollectionFilter::InitId(datastore_core::InitId::new(i)),
            (None, None) => CollectionFilter::All,
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

/// The ETag of a revision.
pub fn etag(revision: Revision) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits are a valid header")
}

/// The precondition the request's `If-Match` / `If-None-Match` headers ask
/// for, and whether there was one.
pub fn precondition(headers: &HeaderMap) -> Result<(Precondition, bool), Problem> {
    let text = |name: header::HeaderName| -> Result<Option<String>, Problem> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().to_string())
                    .map_err(|_| Problem::bad_request(name.as_str(), "not ASCII"))
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "if-none-match",
            "send If-Match or If-None-Match, not both",
        )),
        (Some(m), None) if m == "*" => Ok((Precondition::MustExist, true)),
        (Some(m), None) => {
            let revision = m
                .strip_prefix('"')
                .and_then(|m| m.strip_suffix('"'))
                .unwrap_or(&m)
                .parse::<Revision>()
                .map_err(|_| {
                    Problem::bad_request(
                        "if-match",
                        format!("{m:?} is not an ETag this server gave (\"<revision>\")"),
                    )
                })?;
            Ok((Precondition::MustBeAt(revision), true))
        }
        (None, Some(n)) if n == "*" => Ok((Precondition::MustNotExist, true)),
        (None, Some(n)) => Err(Problem::bad_request(
            "if-none-match",
            format!("{n:?}: only If-None-Match: * is a write precondition"),
        )),
        (None, None) => Ok((Precondition::Any, false)),
    }
}

/// A record with its ETag.
fn versioned<R: Serialize>(status: StatusCode, found: Versioned<R>) -> Response {
    let tag = etag(found.revision);
    let mut response = (status, Json(found)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    response
}

/// The body of a get-many request.
#[derive(Debug, Deserialize, Serialize)]
pub struct GetMany<Id> {
    /// The ids, at most 1000.
    pub ids: Vec<Id>,
}

/// One answer per requested id (`null` where there is none).
#[derive(Debug, Serialize)]
pub struct Many<T> {
    /// The records, in the order asked for.
    pub items: Vec<Option<T>>,
}

fn limit(params: &HashMap<String, String>, max: u32) -> Result<u32, Problem> {
    match param(params, "limit") {
        None => Ok(datastore_core::DEFAULT_PAGE_LIMIT.min(max)),
        Some(text) => {
            let n: u32 = text
                .parse()
                .map_err(|_| Problem::bad_request("limit", format!("{text:?} is not a number")))?;
            if n == 0 || n > max {
                return Err(Problem::bad_request(
                    "limit",
                    format!("{n} is not between 1 and {max}"),
                ));
            }
            Ok(n)
        }
    }
}

async fn get_one<R: Resource>(
    State(state): State<AppState>,
    Path(segments): Path<Vec<String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = R::id_from_path(&segments)?;
    let found = R::of(&*state.ds).get(&id).await?;
    if let Some(tags) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let current = format!("\"{}\"", found.revision);
        if tags
            .split(',')
            .any(|t| t.trim() == current || t.trim() == "*")
        {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response
                .headers_mut()
                .insert(header::ETAG, etag(found.revision));
            return Ok(response);
        }
    }
    Ok(versioned(StatusCode::OK, found))
}

async fn get_many<R: Resource>(
    State(state): State<AppState>,
    Strict(body): Strict<GetMany<R::Id>>,
) -> Result<Json<Many<Versioned<R>>>, Problem> {
    let items = R::of(&*state.ds).get_many(&body.ids).await?;
    Ok(Json(Many { items }))
}

async fn list<R: Resource>(
    State(state): State<AppState>,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (filter, order) = R::filter(&params)?;
    let direction = match param(&params, "direction") {
        None | Some("asc") => Direction::Asc,
        Some("desc") => Direction::Desc,
        Some(other) => {
            return Err(Problem::bad_request(
                "direction",
                format!("{other:?}: expected asc or desc"),
            ));
        }
    };
    let query = Query::<R>::new(filter)
        .order(order)
        .direction(direction)
        .limit(limit(&params, state.limits.max_page_limit)?)
        .after(param(&params, "cursor").map(Cursor::from_text));
    let page = R::of(&*state.ds).list(query).await?;
    Ok(Json(page).into_response())
}

async fn create<R: Resource>(
    State(state): State<AppState>,
    Strict(record): Strict<R>,
) -> Result<Response, Problem> {
    // A create never replaces. An empty id is generated.
    let written = R::create(&*state.ds, record).await?;
    let location = format!("/v1/{}/{}", R::PATH, written.value.id().key());
    let mut response = versioned(StatusCode::CREATED, written);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

async fn put<R: Resource>(
    State(state): State<AppState>,
    Path(segments): Path<Vec<String>>,
    headers: HeaderMap,
    Strict(mut record): Strict<R>,
) -> Result<Response, Problem> {
    let id = R::id_from_path(&segments)?;
    let (precondition, preconditioned) = precondition(&headers)?;
    if record.id_is_empty() {
        record.set_id(id.clone());
    } else if record.id() != id {
        return Err(Problem::bad_request(
            "id",
            format!(
                "the body's id {:?} is not the path's {:?}",
                record.id().key(),
                id.key()
            ),
        ));
    }
    let store = R::of(&*state.ds);
    let written = match store.put(record, precondition).await {
        Ok(written) => written,
        // If-None-Match: * on a key that exists is a failed precondition,
        // naming the revision there; a unique field taken by another record
        // stays a 409.
        Err(Error::AlreadyExists { key, .. }) if preconditioned && key == id.key() => {
            let found = store.get(&id).await.ok().map(|v| v.revision);
            return Err(Problem::from_error(
                &Error::Conflict {
                    store: R::KIND.store(),
                    key,
                    expected: precondition,
                    found,
                },
                true,
            ));
        }
        Err(e) => return Err(Problem::from_error(&e, preconditioned)),
    };
    // A key's first write has `created == updated`.
    let status = if written.created == written.updated {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(versioned(status, written))
}

async fn delete<R: Resource>(
    State(state): State<AppState>,
    Path(segments): Path<Vec<String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = R::id_from_path(&segments)?;
    let (precondition, preconditioned) = precondition(&headers)?;
    let revision = R::of(&*state.ds)
        .delete(&id, precondition)
        .await
        .map_err(|e| Problem::from_error(&e, preconditioned))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::ETAG, etag(revision));
    Ok(response)
}

/// The routes of one kind.
pub fn routes<R: Resource>() -> Router<AppState> {
    let base = format!("/v1/{}", R::PATH);
    let one = if R::PATH == "collections" {
        format!("{base}/{{profile}}/{{init_id}}")
    } else {
        format!("{base}/{{id}}")
    };
    Router::new()
        .route(&base, get(list::<R>).post(create::<R>))
        .route(&format!("{base}:get-many"), post(get_many::<R>))
        .route(&one, get(get_one::<R>).put(put::<R>).delete(delete::<R>))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_come_from_the_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(precondition(&h).unwrap(), (Precondition::Any, false));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(
            precondition(&h).unwrap(),
            (Precondition::MustBeAt(Revision::new(7)), true)
        );
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(precondition(&h).unwrap().0, Precondition::MustExist);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert_eq!(
            precondition(&h).unwrap_err().field.as_deref(),
            Some("if-match")
        );
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(precondition(&h).unwrap().0, Precondition::MustNotExist);
    }
}
