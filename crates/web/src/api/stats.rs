//! Evaluation statistics (统计信息): the fixed `/api/v1/stats/evaluation` and its xlsx export.

use crate::api::customers::xlsx_response;
use crate::auth::Caller;
use crate::error::{ApiError, ApiQuery, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use keping_domain::stats::{parse_date, GroupBy};
use keping_domain::Invalid;
use keping_store::stats::{self as store, StatsAnswer, StatsQuery};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(evaluation))
        .routes(routes!(export))
}

#[derive(Deserialize, IntoParams)]
pub struct EvaluationQuery {
    /// The org whose subtree is counted; outside the caller's reach answers 404.
    pub org_id: i64,
    /// First day, YYYY-MM-DD, in the org's time zone (each outlet's local days).
    pub from: String,
    /// Last day (inclusive).
    pub to: String,
    /// org (the org's children), outlet, window, staff, business_type, hour, day, week, month,
    /// weekday, weekday_hour or none (default none).
    pub group_by: Option<String>,
    /// `previous` or `last_year` (either gives both): adds `compare` with the previous period of
    /// the same length and the same dates a year earlier.
    pub compare: Option<String>,
}

impl EvaluationQuery {
    pub fn parse(&self) -> Result<StatsQuery, Invalid> {
        let compare = match self.compare.as_deref() {
            None | Some("") | Some("none") => false,
            Some("previous") | Some("last_year") | Some("both") => true,
            Some(other) => {
                return Err(Invalid::new(
                    "compare",
                    "unknown_compare",
                    format!("unknown compare '{other}': use previous or last_year"),
                ))
            }
        };
        Ok(StatsQuery {
            org_id: self.org_id,
            from: parse_date("from", &self.from)?,
            to: parse_date("to", &self.to)?,
            group_by: GroupBy::parse(self.group_by.as_deref().unwrap_or("none"))?,
            compare,
            window_id: None,
            staff_id: None,
        })
    }
}

/// Evaluation statistics of an org subtree over a range of local days, read from roll-ups.
/// `services` = ended services; `rated` = services with a counted rating; `rating_rate` = rated /
/// services; `satisfaction_rate` = positive / counted ratings; bare presses count in `counts`,
/// `positive`… but not in `services` or `rated`. Grouped by staff, rows are ranked by the lower
/// bound of the 95% Wilson interval on the satisfaction rate (`satisfaction_lower_bound`, `rank`),
/// so 3 ratings do not outrank 3,000. Reports follow the current org tree. Beside the fixed fields:
/// `prompts_offered` / `prompt_coverage` (a prompt cut short by a Start within 3 s of its End was
/// not offered), `p90_handle_seconds` (from a histogram, rounded up to the bucket edge),
/// `on_duty_hours` (ended duty sessions), `services_per_hour` and `busyness` (handling time /
/// on-duty time).
#[utoipa::path(get, path = "/api/v1/stats/evaluation", tag = "stats", security(("bearer" = [])), params(EvaluationQuery),
    responses((status = 200, body = StatsAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn evaluation(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EvaluationQuery>,
) -> Result<Json<StatsAnswer>, ApiError> {
    let q = q.parse()?;
    Ok(Json(store::evaluation(&state.db, &caller.scope, &q).await?))
}

/// The same table as an xlsx workbook, its filters in the header rows (needs stats.export; logged).
#[utoipa::path(get, path = "/api/v1/stats/evaluation/export", tag = "stats", security(("bearer" = [])), params(EvaluationQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EvaluationQuery>,
) -> Result<Response, ApiError> {
    let q = q.parse()?;
    let (a, bytes) = store::export_xlsx(&state.db, &caller.scope, &q).await?;
    Ok(xlsx_response(
        bytes,
        &format!("stats-{}-{}-{}.xlsx", a.org_id, a.from, a.to),
    ))
}
