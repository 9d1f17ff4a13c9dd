//! Where alerts go (per org, inherited) and how their deliveries fared.

use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use keping_domain::notify::{AlertSettings, Channel};
use keping_domain::reports::{Frequency, ScheduleInput};
use keping_store::grading_notices::{self, GradingSchedule, GradingScheduleInput};
use keping_store::notify::{self as store, Delivery};
use keping_store::reports::{self, Schedule};
use keping_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_alerts, put_alerts))
        .routes(routes!(deliveries))
        .routes(routes!(retry_delivery))
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, put_schedule, delete_schedule))
        .routes(routes!(list_grading_schedules, create_grading_schedule))
        .routes(routes!(delete_grading_schedule))
}

/// Alert channels. Each is one of `{"kind":"webhook","url"}`, `{"kind":"dingtalk","url"}`,
/// `{"kind":"wecom","url"}`, `{"kind":"feishu","url"}`, `{"kind":"email","to"}` or
/// `{"kind":"sms","url","phone","body"}` (the SMS gateway's body with `{phone}` and `{text}`).
#[derive(Deserialize, Serialize, ToSchema)]
pub struct AlertSettingsBody {
    channels: Vec<serde_json::Value>,
}

impl AlertSettingsBody {
    fn parse(self) -> Result<AlertSettings, ApiError> {
        let channels = self
            .channels
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::from_value::<Channel>(c).map_err(|e| {
                    ApiError::invalid(
                        &format!("channels[{i}]"),
                        "invalid_channel",
                        format!("not a channel: {e}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlertSettings { channels })
    }

    fn of(s: AlertSettings) -> Self {
        AlertSettingsBody {
            channels: s
                .channels
                .iter()
                .map(|c| serde_json::to_value(c).expect("channels serialise"))
                .collect(),
        }
    }
}

/// The alert channels in force for an org (its own or inherited).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/alert-settings", tag = "notify", security(("bearer" = [])), responses((status = 200, body = AlertSettingsBody), (status = 404, body = ErrorBody)))]
async fn get_alerts(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AlertSettingsBody>, ApiError> {
    Ok(Json(AlertSettingsBody::of(
        store::alert_settings(&state.db, &caller.scope, id).await?,
    )))
}

/// Set where an org's negative ratings are announced; inherited by its subtree.
#[utoipa::path(put, path = "/api/v1/orgs/{id}/alert-settings", tag = "notify", security(("bearer" = [])), request_body = AlertSettingsBody,
    responses((status = 200, body = AlertSettingsBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_alerts(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AlertSettingsBody>,
) -> Result<Json<AlertSettingsBody>, ApiError> {
    let saved = store::put_alert_settings(&state.db, &caller.scope, id, &body.parse()?).await?;
    Ok(Json(AlertSettingsBody::of(saved)))
}

#[derive(Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// pending, sending, delivered or failed
    status: Option<String>,
    /// negative_rating, report, …
    kind: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Each alert delivery and its status, newest first.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "notify", security(("bearer" = [])), params(DeliveryQuery),
    responses((status = 200, body = Page<Delivery>), (status = 403, body = ErrorBody)))]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    Ok(Json(
        store::deliveries(
            &state.db,
            &caller.scope,
            q.status.as_deref(),
            q.kind.as_deref(),
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

/// Retry a failed delivery now (one more attempt).
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = "notify", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    store::retry(&state.db, &caller.scope, id).await?;
    state.outbox_wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// A report schedule: `frequency` daily, weekly or monthly; `channels` as in alert settings
/// (e-mail receives the xlsx, the others a summary with a link).
#[derive(Deserialize, Serialize, ToSchema)]
pub struct ScheduleBody {
    org_id: i64,
    frequency: String,
    channels: Vec<serde_json::Value>,
    #[serde(default)]
    enabled: Option<bool>,
}

impl ScheduleBody {
    fn parse(self) -> Result<ScheduleInput, ApiError> {
        let frequency = Frequency::parse("frequency", &self.frequency)?;
        let channels = AlertSettingsBody {
            channels: self.channels,
        }
        .parse()?
        .channels;
        Ok(ScheduleInput {
            org_id: self.org_id,
            frequency,
            channels,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

/// Scheduled reports of the orgs in the caller's subtree.
#[utoipa::path(get, path = "/api/v1/report-schedules", tag = "notify", security(("bearer" = [])),
    responses((status = 200, body = Vec<Schedule>), (status = 403, body = ErrorBody)))]
async fn list_schedules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Schedule>>, ApiError> {
    Ok(Json(reports::list(&state.db, &caller.scope).await?))
}

/// Schedule an org's evaluation report; the first goes out when the next period closes.
#[utoipa::path(post, path = "/api/v1/report-schedules", tag = "notify", security(("bearer" = [])), request_body = ScheduleBody,
    responses((status = 201, body = Schedule), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<(StatusCode, Json<Schedule>), ApiError> {
    let s = reports::create(&state.db, &caller.scope, &body.parse()?).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[utoipa::path(get, path = "/api/v1/report-schedules/{id}", tag = "notify", security(("bearer" = [])),
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody)))]
async fn get_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(reports::get(&state.db, &caller.scope, id).await?))
}

#[utoipa::path(put, path = "/api/v1/report-schedules/{id}", tag = "notify", security(("bearer" = [])), request_body = ScheduleBody,
    responses((status = 200, body = Schedule), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(
        reports::update(&state.db, &caller.scope, id, &body.parse()?).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/report-schedules/{id}", tag = "notify", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    reports::delete(&state.db, &caller.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The monthly grading schedules of orgs in the caller's grading reach.
#[utoipa::path(get, path = "/api/v1/grading-schedules", tag = "notify", security(("bearer" = [])),
    responses((status = 200, body = Vec<GradingScheduleView>), (status = 403, body = ErrorBody)))]
async fn list_grading_schedules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<GradingScheduleView>>, ApiError> {
    Ok(Json(
        grading_notices::list(&state.db, &caller.scope)
            .await?
            .into_iter()
            .map(GradingScheduleView::from)
            .collect(),
    ))
}

/// A grading schedule with its channels.
#[derive(Serialize, ToSchema)]
pub struct GradingScheduleView {
    #[serde(flatten)]
    schedule: GradingSchedule,
    #[schema(value_type = Vec<Object>)]
    channels: Vec<serde_json::Value>,
}

impl From<GradingSchedule> for GradingScheduleView {
    fn from(schedule: GradingSchedule) -> Self {
        let channels = AlertSettingsBody::of(AlertSettings {
            channels: schedule.channels(),
        })
        .channels;
        GradingScheduleView { schedule, channels }
    }
}

/// Stop a grading schedule; the runs it made stay.
#[utoipa::path(delete, path = "/api/v1/grading-schedules/{id}", tag = "notify", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_grading_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    grading_notices::delete(&state.db, &caller.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Grade an org's customers with a model every month (when the month closes in the org's time
/// zone) and send downgrade and churn warnings to `channels`.
#[utoipa::path(post, path = "/api/v1/grading-schedules", tag = "notify", security(("bearer" = [])), request_body = GradingScheduleInput,
    responses((status = 201, body = GradingScheduleView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_grading_schedule(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<GradingScheduleView>), ApiError> {
    let channels = AlertSettingsBody {
        channels: body
            .get("channels")
            .and_then(|c| c.as_array())
            .cloned()
            .unwrap_or_default(),
    }
    .parse()?
    .channels;
    let mut plain = body.clone();
    plain["channels"] = serde_json::Value::Array(vec![]);
    let mut input: GradingScheduleInput = serde_json::from_value(plain).map_err(|e| {
        ApiError::invalid(
            "body",
            "invalid_body",
            format!("not a grading schedule: {e}"),
        )
    })?;
    input.channels = channels;
    let s = grading_notices::create(&state.db, &caller.scope, &input).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}
