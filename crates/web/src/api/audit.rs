use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiQuery, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use keping_store::audit::{self, AuditFilter, AuditRow};
use keping_store::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// org, user, role, token…
    entity: Option<String>,
    /// create, update, delete, move, login, login_failed…
    action: Option<String>,
    username: Option<String>,
    /// RFC 3339; entries at or after.
    from: Option<String>,
    /// RFC 3339; entries before.
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

pub fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        "invalid_time",
                        format!("'{v}' is not an RFC 3339 time such as 2026-01-31T08:00:00+08:00"),
                    )
                    .field(field)
                })
        })
        .transpose()
}

/// The audit log within the caller's subtree, newest first. It cannot be changed through the product.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Page<AuditRow>), (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditRow>>, ApiError> {
    let filter = AuditFilter {
        entity: q.entity.filter(|s| !s.is_empty()),
        action: q.action.filter(|s| !s.is_empty()),
        username: q.username.filter(|s| !s.is_empty()),
        from_ms: parse_time("from", q.from.as_deref())?,
        to_ms: parse_time("to", q.to.as_deref())?,
    };
    Ok(Json(
        audit::list(
            &state.db,
            &caller.scope,
            &filter,
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}
