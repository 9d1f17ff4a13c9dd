use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use keping_store::org::{self, NewOrg, Org, OrgFilter, OrgPatch};
use keping_store::Page;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update))
        .routes(routes!(move_org))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateOrg {
    name: String,
    /// Unique across the organisation: letters, digits, '-', '_', '.'.
    code: String,
    /// null only for a new root, and only by an administrator.
    parent_id: Option<i64>,
    /// head_office, branch, outlet or department; by depth when left out.
    kind: Option<String>,
    /// IANA zone such as Asia/Shanghai; inherited from the parent when left out.
    timezone: Option<String>,
}

/// Create an org node under a parent in the caller's subtree.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "org", security(("bearer" = [])), request_body = CreateOrg,
    responses((status = 201, body = Org), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    let org = org::create(
        &state.db,
        &caller.scope,
        NewOrg {
            name: body.name,
            code: body.code,
            parent_id: body.parent_id,
            kind: body.kind,
            timezone: body.timezone,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[derive(Deserialize, IntoParams)]
pub struct OrgQuery {
    /// Any part of the name or code.
    q: Option<String>,
    /// Only this node's subtree.
    under: Option<i64>,
    enabled: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The caller's subtree in tree order (a parent before its children).
#[utoipa::path(get, path = "/api/v1/orgs", tag = "org", security(("bearer" = [])), params(OrgQuery),
    responses((status = 200, body = Page<Org>), (status = 401, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Json<Page<Org>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let filter = OrgFilter {
        q: q.q,
        under: q.under,
        enabled: q.enabled,
    };
    Ok(Json(
        org::list(
            &state.db,
            &caller.scope,
            &filter,
            limit,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "org", security(("bearer" = [])),
    responses((status = 200, body = Org), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(org::get(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateOrg {
    name: Option<String>,
    code: Option<String>,
    kind: Option<String>,
    /// A zone, or null to inherit the parent's again.
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    timezone: Option<Option<String>>,
    /// false disables the node and its whole subtree.
    enabled: Option<bool>,
}

/// Rename, recode, change the time zone, enable or disable.
#[utoipa::path(patch, path = "/api/v1/orgs/{id}", tag = "org", security(("bearer" = [])), request_body = UpdateOrg,
    responses((status = 200, body = Org), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateOrg>,
) -> Result<Json<Org>, ApiError> {
    let patch = OrgPatch {
        name: body.name,
        code: body.code,
        kind: body.kind,
        timezone: body.timezone,
        enabled: body.enabled,
    };
    Ok(Json(
        org::update(&state.db, &caller.scope, id, patch).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct MoveOrg {
    parent_id: i64,
}

/// Move a node, with its subtree, under another parent. A move under its own descendant is refused (409).
#[utoipa::path(post, path = "/api/v1/orgs/{id}/move", tag = "org", security(("bearer" = [])), request_body = MoveOrg,
    responses((status = 200, body = Org), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn move_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MoveOrg>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(
        org::move_to(&state.db, &caller.scope, id, body.parent_id).await?,
    ))
}
