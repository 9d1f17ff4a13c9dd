//! 常用筛选: a person's saved filters of the customer list. A filter is a name and the list's query
//! string; applying one is listing `/api/v1/customers?<query>`.

use crate::api::customers::ListQuery;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use keping_store::customers::saved_filters::{self as store, SavedFilter};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(delete))
}

/// The query string as the list reads it: it must parse as the list's parameters (paging left out).
pub(crate) fn checked_query(query: &str) -> Result<String, ApiError> {
    let query = query.trim().trim_start_matches('?');
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("cursor=") && !kv.starts_with("limit="))
        .collect();
    let query = kept.join("&");
    let uri: axum::http::Uri = format!("/?{query}").parse().map_err(|_| {
        ApiError::invalid(
            "query",
            "invalid_query",
            "the query is not a URL query string",
        )
    })?;
    let parsed = Query::<ListQuery>::try_from_uri(&uri).map_err(|e| {
        ApiError::invalid(
            "query",
            "invalid_query",
            format!("the query is not one of the customer list: {e}"),
        )
    })?;
    parsed.0.filter().map_err(|e| {
        let mut e = e;
        e.status = StatusCode::UNPROCESSABLE_ENTITY;
        e.field = Some("query".into());
        e
    })?;
    Ok(query)
}

/// The caller's saved filters, by name.
#[utoipa::path(get, path = "/api/v1/customers/saved-filters", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Vec<SavedFilter>), (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SavedFilter>>, ApiError> {
    Ok(Json(store::list(&state.db, &caller.scope).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// 1–40 characters, unique among the caller's filters.
    name: String,
    /// The customer list's query string, e.g. `kind=lead&importance=urgent&sort=name`.
    query: String,
}

/// Save a filter of the customer list under a name (at most 50 per person).
#[utoipa::path(post, path = "/api/v1/customers/saved-filters", tag = "customers", security(("bearer" = [])), request_body = FilterBody,
    responses((status = 201, body = SavedFilter), (status = 409, body = ErrorBody, description = "name_taken or too_many"), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<FilterBody>,
) -> Result<(StatusCode, Json<SavedFilter>), ApiError> {
    let query = checked_query(&body.query)?;
    Ok((
        StatusCode::CREATED,
        Json(store::save(&state.db, &caller.scope, &body.name, &query).await?),
    ))
}

/// Delete one of the caller's saved filters; anyone else's is 404.
#[utoipa::path(delete, path = "/api/v1/customers/saved-filters/{id}", tag = "customers", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    store::delete(&state.db, &caller.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
