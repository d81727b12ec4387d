//! The record endpoints, once for every kind: get, get-many, list, create,
//! put and delete, with revisions as ETags.

use std::collections::HashMap;

use axum::extract::{Path, Query as Params, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datastore_core::{
    Cursor, Direction, Error, Page, PageRequest, Query, RecordId, Revision, Version, Versioned,
};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::body::Strict;
use crate::gate::{Gate, WRITE_ATTEMPTS};
use crate::problem::Problem;

pub use crate::headers::{etag, precondition};
pub use crate::resources::Resource;
use crate::resources::param;

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

pub(crate) fn limit(params: &HashMap<String, String>, max: u32) -> Result<u32, Problem> {
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
    gate: Gate,
    Path(segments): Path<Vec<String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = R::id_from_path(&segments)?;
    let found = gate.readable(R::of(&**gate.store()).get(&id).await?)?;
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
    gate: Gate,
    Strict(body): Strict<GetMany<R::Id>>,
) -> Result<Json<Many<Versioned<R>>>, Problem> {
    let items = gate.filter_many(R::of(&**gate.store()).get_many(&body.ids).await?);
    Ok(Json(Many { items }))
}

async fn list<R: Resource>(
    State(state): State<AppState>,
    gate: Gate,
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
    let limit = limit(&params, state.limits.max_page_limit)?;
    // Narrowed in the query, so a page holds `limit` records when there
    // are that many the caller may read.
    let Some(filter) = gate.list::<R>(filter).await? else {
        return Ok(Json(Page::<Versioned<R>> {
            items: Vec::new(),
            next: None,
        })
        .into_response());
    };
    let order = if gate.unrestricted() {
        order
    } else {
        R::narrowed_order(&filter, order)
    };
    let query = Query::<R>::new(filter)
        .order(order)
        .direction(direction)
        .limit(limit)
        .after(param(&params, "cursor").map(Cursor::from_text));
    let mut page = R::of(&**gate.store()).list(query).await?;
    for item in &mut page.items {
        item.value.redact_for(&gate.who);
    }
    Ok(Json(page).into_response())
}

async fn create<R: Resource>(gate: Gate, Strict(record): Strict<R>) -> Result<Response, Problem> {
    gate.check_new(&record).await?;
    // A create never replaces. An empty id is generated.
    let mut written = R::create(&**gate.store(), record).await?;
    written.value.redact_for(&gate.who);
    let location = format!("/v1/{}/{}", R::PATH, written.value.id().key());
    let mut response = versioned(StatusCode::CREATED, written);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

async fn put<R: Resource>(
    gate: Gate,
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
    gate.check_new(&record).await?;
    let store = R::of(&**gate.store());
    let mut attempt = 0;
    let result = loop {
        let pinned = gate.pin::<R>(&id, precondition).await?;
        attempt += 1;
        match store.put(record.clone(), pinned.precondition).await {
            // Changed between the check and the write: check again.
            Err(Error::Conflict { .. } | Error::AlreadyExists { .. } | Error::NotFound { .. })
                if pinned.pinned && attempt < WRITE_ATTEMPTS => {}
            other => break other,
        }
    };
    let mut written = match result {
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
    written.value.redact_for(&gate.who);
    // A key's first write has `created == updated`.
    let status = if written.created == written.updated {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(versioned(status, written))
}

async fn delete<R: Resource>(
    gate: Gate,
    Path(segments): Path<Vec<String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = R::id_from_path(&segments)?;
    let (precondition, preconditioned) = precondition(&headers)?;
    let mut attempt = 0;
    let revision = loop {
        let pinned = gate.pin::<R>(&id, precondition).await?;
        attempt += 1;
        match R::of(&**gate.store())
            .delete(&id, pinned.precondition)
            .await
        {
            Err(Error::Conflict { .. } | Error::NotFound { .. })
                if pinned.pinned && attempt < WRITE_ATTEMPTS => {}
            other => break other,
        }
    }
    .map_err(|e| Problem::from_error(&e, preconditioned))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::ETAG, etag(revision));
    Ok(response)
}

async fn history<R: Resource>(
    State(state): State<AppState>,
    gate: Gate,
    Path(segments): Path<Vec<String>>,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Json<Page<Version<R>>>, Problem> {
    let id = R::id_from_path(&segments)?;
    let limit = limit(&params, state.limits.max_page_limit)?;
    let page = PageRequest::after(limit, param(&params, "cursor").map(Cursor::from_text));
    let mut found = R::of(&**gate.store()).history(&id, page).await?;
    gate.readable_versions(&id, &mut found.items).await?;
    Ok(Json(found))
}

/// The path's id, and the revision after `/versions/`.
fn id_and_revision<R: Resource>(segments: &[String]) -> Result<(R::Id, Revision), Problem> {
    let Some((rev, id)) = segments.split_last() else {
        return Err(Problem::bad_request("revision", "is missing"));
    };
    let revision = rev
        .parse::<u64>()
        .ok()
        .filter(|r| *r > 0)
        .map(Revision::new)
        .ok_or_else(|| {
            Problem::bad_request(
                "revision",
                format!("{rev:?} is not a revision (a number from 1)"),
            )
        })?;
    Ok((R::id_from_path(id)?, revision))
}

async fn version<R: Resource>(
    gate: Gate,
    Path(segments): Path<Vec<String>>,
) -> Result<Json<Version<R>>, Problem> {
    let (id, revision) = id_and_revision::<R>(&segments)?;
    let found = R::of(&**gate.store()).get_at(&id, revision).await?;
    let mut one = [found];
    gate.readable_versions(&id, &mut one).await?;
    let [found] = one;
    Ok(Json(found))
}

/// The body of a restore: which version to write back.
#[derive(Debug, Deserialize, Serialize)]
pub struct RestoreBody {
    /// The revision of the version to restore.
    pub revision: u64,
}

async fn restore<R: Resource>(
    gate: Gate,
    Path(segments): Path<Vec<String>>,
    headers: HeaderMap,
    Strict(body): Strict<RestoreBody>,
) -> Result<Response, Problem> {
    let id = R::id_from_path(&segments)?;
    if body.revision == 0 {
        return Err(Problem::bad_request(
            "revision",
            "must be a revision (from 1)",
        ));
    }
    let revision = Revision::new(body.revision);
    let (precondition, preconditioned) = precondition(&headers)?;
    let store = R::of(&**gate.store());
    // The version must be readable, and writable as it would be written.
    let old = store.get_at(&id, revision).await?;
    let mut one = [old];
    gate.readable_versions(&id, &mut one).await?;
    if let Some(value) = &one[0].value {
        gate.check_new(value).await?;
    }
    let mut attempt = 0;
    let result = loop {
        let pinned = gate.pin::<R>(&id, precondition).await?;
        attempt += 1;
        match store.restore(&id, revision, pinned.precondition).await {
            Err(Error::Conflict { .. } | Error::AlreadyExists { .. } | Error::NotFound { .. })
                if pinned.pinned && attempt < WRITE_ATTEMPTS => {}
            other => break other,
        }
    };
    let mut written = result.map_err(|e| Problem::from_error(&e, preconditioned))?;
    written.value.redact_for(&gate.who);
    Ok(versioned(StatusCode::OK, written))
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
        .route(&format!("{one}/history"), get(history::<R>))
        .route(&format!("{one}/versions/{{revision}}"), get(version::<R>))
        .route(&format!("{one}/restore"), post(restore::<R>))
}
