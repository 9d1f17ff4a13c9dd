//! Data management (数据清理 / 数据备份): cleanups of raw evaluation data with a dry run and a
//! confirmation, the retention setting, and the backup download.

use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keping_domain::data::{OlderThan, Retention};
use keping_domain::scope::{Reach, Scope};
use keping_store::data::{self as store, CleanupPreview, CleanupRun, RetentionInForce};
use keping_store::{backup, Db, Page};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview))
        .routes(routes!(list_runs, create_run))
        .routes(routes!(get_run))
        .routes(routes!(get_retention, put_retention, delete_retention))
        .routes(routes!(download_backup))
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, IntoParams)]
pub struct PreviewQuery {
    /// The subtree to clean.
    org_id: i64,
    /// month, year or all
    older_than: String,
    /// Keep roll-ups (default true).
    keep_rollups: Option<bool>,
}

/// The dry run: how many rows a cleanup would remove now, and the cut-off.
#[utoipa::path(get, path = "/api/v1/data/cleanup-preview", tag = "data", security(("bearer" = [])), params(PreviewQuery),
    responses((status = 200, body = CleanupPreview), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> Result<Json<CleanupPreview>, ApiError> {
    let older_than = OlderThan::parse("older_than", &q.older_than)?;
    Ok(Json(
        store::preview(
            &state.db,
            &caller.scope,
            q.org_id,
            older_than,
            q.keep_rollups.unwrap_or(true),
        )
        .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateCleanup {
    /// The subtree to clean; another branch's org answers 404.
    org_id: i64,
    /// month (older than one month), year (older than one year) or all
    older_than: String,
    /// Keep the roll-ups that statistics over long ranges read (default true).
    #[serde(default = "default_true")]
    keep_rollups: bool,
    /// Must be true: the rows are gone for good. Ask `/api/v1/data/cleanup-preview` first.
    #[serde(default)]
    confirm: bool,
}

/// Starts a cleanup: raw presses, ratings (with their closed follow-ups), ended services and duty
/// sessions older than the cut-off go, in chunks. Answers 202 with the run; follow its progress at
/// `/api/v1/data/cleanups/{id}`. The audit log records the counts when it finishes.
#[utoipa::path(post, path = "/api/v1/data/cleanups", tag = "data", security(("bearer" = [])), request_body = CreateCleanup,
    responses((status = 202, body = CleanupRun), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateCleanup>,
) -> Result<(StatusCode, Json<CleanupRun>), ApiError> {
    let older_than = OlderThan::parse("older_than", &body.older_than)?;
    if !body.confirm {
        // the dry run also settles scope: an org out of reach is 404 before any talk of confirming
        let p = store::preview(
            &state.db,
            &caller.scope,
            body.org_id,
            older_than,
            body.keep_rollups,
        )
        .await?;
        return Err(ApiError::invalid(
            "confirm",
            "confirmation_required",
            format!(
                "this removes {} ratings, {} follow-ups, {} presses, {} services and {} duty sessions of {} for good; send \"confirm\": true to go ahead",
                p.counts.ratings, p.counts.follow_ups, p.counts.presses, p.counts.services, p.counts.duties, p.org_name
            ),
        ));
    }
    let run = start_cleanup(
        &state.db,
        &caller.scope,
        body.org_id,
        older_than,
        body.keep_rollups,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Starts a run and works it off in the background.
pub(crate) async fn start_cleanup(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    older_than: OlderThan,
    keep_rollups: bool,
) -> Result<CleanupRun, ApiError> {
    let run = store::start(db, scope, org_id, older_than, keep_rollups).await?;
    let db = db.clone();
    let id = run.id;
    tokio::spawn(async move {
        let result = store::work(&db, id, |c| {
            tracing::debug!(run = id, removed = c.total(), "cleanup progress")
        })
        .await;
        match result {
            Ok(run) => tracing::info!(run = id, removed = run.counts.total(), "cleanup done"),
            Err(e) => tracing::error!(run = id, error = %e, "cleanup failed"),
        }
    });
    Ok(run)
}

#[derive(Deserialize, IntoParams)]
pub struct RunQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Cleanup runs within the caller's reach, newest first.
#[utoipa::path(get, path = "/api/v1/data/cleanups", tag = "data", security(("bearer" = [])), params(RunQuery),
    responses((status = 200, body = Page<CleanupRun>), (status = 403, body = ErrorBody)))]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> Result<Json<Page<CleanupRun>>, ApiError> {
    Ok(Json(
        store::runs(
            &state.db,
            &caller.scope,
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

/// One cleanup run with its progress (counts so far; status running, done or failed).
#[utoipa::path(get, path = "/api/v1/data/cleanups/{id}", tag = "data", security(("bearer" = [])),
    responses((status = 200, body = CleanupRun), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CleanupRun>, ApiError> {
    Ok(Json(store::run(&state.db, &caller.scope, id).await?))
}

/// The retention in force for an org: its own setting or the nearest ancestor's.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/data-retention", tag = "data", security(("bearer" = [])),
    responses((status = 200, body = RetentionInForce), (status = 404, body = ErrorBody)))]
async fn get_retention(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RetentionInForce>, ApiError> {
    Ok(Json(store::retention(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct PutRetention {
    /// Keep raw evaluation data this many months (1–600), then remove it (roll-ups stay); null
    /// keeps it for ever here and below, overriding an ancestor.
    keep_months: Option<u32>,
}

/// Sets an org's own retention; its subtree inherits it unless an org below sets its own. The data
/// worker applies it once a day.
#[utoipa::path(put, path = "/api/v1/orgs/{id}/data-retention", tag = "data", security(("bearer" = [])), request_body = PutRetention,
    responses((status = 200, body = RetentionInForce), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_retention(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PutRetention>,
) -> Result<Json<RetentionInForce>, ApiError> {
    let r = Retention {
        keep_months: body.keep_months,
    };
    Ok(Json(
        store::put_retention(&state.db, &caller.scope, id, Some(r)).await?,
    ))
}

/// Removes an org's own retention setting: it inherits its nearest ancestor's again.
#[utoipa::path(delete, path = "/api/v1/orgs/{id}/data-retention", tag = "data", security(("bearer" = [])),
    responses((status = 200, body = RetentionInForce), (status = 404, body = ErrorBody)))]
async fn delete_retention(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RetentionInForce>, ApiError> {
    Ok(Json(
        store::put_retention(&state.db, &caller.scope, id, None).await?,
    ))
}

/// A backup holds every org's data: only data.backup held with the data level 全部 (all) may take one.
pub(crate) fn may_back_up(scope: &Scope) -> Result<(), ApiError> {
    if scope.reach("data.backup") == Reach::Everything {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a backup holds every org's data: it needs the permission 'data.backup' with the data level all (全部)",
        ))
    }
}

/// The backup as a file: the whole database, recorded in the audit log.
pub(crate) async fn backup_response(db: &Db, scope: &Scope) -> Result<Response, ApiError> {
    may_back_up(scope)?;
    let (file, summary, name) = backup::create_unlinked(db, crate::VERSION)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "backup failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backup_failed",
                "the backup could not be made; the server log says why",
            )
        })?;
    backup::record_download(db, scope, &summary, &name).await?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                if summary.kind == "export" {
                    "application/gzip"
                } else {
                    "application/vnd.sqlite3"
                }
                .to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Downloads a backup of the whole database: a SQLite snapshot on SQLite, a portable export
/// (gzip'd JSON lines) on PostgreSQL. Check it with `keping backup verify FILE`.
#[utoipa::path(get, path = "/api/v1/data/backup", tag = "data", security(("bearer" = [])),
    responses((status = 200, description = "the backup file", content_type = "application/octet-stream"), (status = 403, body = ErrorBody)))]
async fn download_backup(State(state): State<AppState>, caller: Caller) -> Response {
    match backup_response(&state.db, &caller.scope).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
