//! The device API for evaluation terminals (keypads, kiosk pages). The terminal's own token is the
//! bearer. The protocol is described for hardware makers in docs/device-api.md.

use crate::auth::bearer;
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::live::LiveEvent;
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use keping_store::evaluation::{self as store, Device, PressInput, PressOutcome, Staff};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(start))
        .routes(routes!(end))
        .routes(routes!(press))
}

/// Per terminal: 20 requests a second with bursts of 60 — far above any counter, far below a flood.
pub fn limiter() -> Arc<DefaultKeyedRateLimiter<i64>> {
    Arc::new(RateLimiter::keyed(
        Quota::per_second(NonZeroU32::new(20).expect("20 > 0"))
            .allow_burst(NonZeroU32::new(60).expect("60 > 0")),
    ))
}

/// Tells the live monitor that something happened at the terminal's window.
async fn changed(state: &AppState, device: &Device) {
    state
        .live
        .publish(
            &state.db,
            LiveEvent {
                window_id: device.window_id,
                org_path: device.org_path.clone(),
            },
        )
        .await;
}

/// A terminal, authenticated by its token and within its rate limit.
pub struct Terminal(pub Device);

impl FromRequestParts<AppState> for Terminal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid terminal token is required",
            )
        })?;
        let device = store::device(&state.db, token).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid terminal token is required",
            )
        })?;
        if state.device_limiter.check_key(&device.terminal_id).is_err() {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this terminal sends too many requests; slow down and retry",
            ));
        }
        Ok(Terminal(device))
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SignIn {
    /// 工号
    employee_no: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    staff: Staff,
}

/// 上岗: a member of staff signs in at this terminal's window by 工号.
#[utoipa::path(post, path = "/api/v1/device/sign-in", tag = "device", security(("terminal" = [])), request_body = SignIn,
    responses((status = 200, body = SignedIn), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    Terminal(device): Terminal,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Json<SignedIn>, ApiError> {
    let staff = store::sign_in(&state.db, &device, &body.employee_no)
        .await
        .map_err(|e| match e {
            keping_store::StoreError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_staff",
                "no enabled member of staff with this employee no. serves here",
            )
            .field("employee_no"),
            e => e.into(),
        })?;
    changed(&state, &device).await;
    Ok(Json(SignedIn { staff }))
}

/// 下岗: whoever is on duty at this window signs out.
#[utoipa::path(post, path = "/api/v1/device/sign-out", tag = "device", security(("terminal" = [])), responses((status = 200), (status = 401, body = ErrorBody)))]
async fn sign_out(
    State(state): State<AppState>,
    Terminal(device): Terminal,
) -> Result<Json<serde_json::Value>, ApiError> {
    store::sign_out(&state.db, &device).await?;
    changed(&state, &device).await;
    Ok(Json(serde_json::json!({"status": "signed_out"})))
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    service_id: i64,
}

/// Start: a service begins. The previous service's open prompt closes unrated.
#[utoipa::path(post, path = "/api/v1/device/services", tag = "device", security(("terminal" = [])),
    responses((status = 201, body = Started), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start(
    State(state): State<AppState>,
    Terminal(device): Terminal,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let service_id = store::start_service(&state.db, &device).await?;
    changed(&state, &device).await;
    Ok((StatusCode::CREATED, Json(Started { service_id })))
}

/// End: the service ends and the rating prompt opens.
#[utoipa::path(post, path = "/api/v1/device/services/{id}/end", tag = "device", security(("terminal" = [])),
    responses((status = 200), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end(
    State(state): State<AppState>,
    Terminal(device): Terminal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    store::end_service(&state.db, &device, id).await?;
    changed(&state, &device).await;
    Ok(Json(
        serde_json::json!({"service_id": id, "prompt": "open"}),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct PressBody {
    /// The rating option's key.
    key: String,
    /// Made by the terminal, unique per press; a retried upload with the same key counts once.
    idempotency_key: String,
    /// RFC 3339, the terminal's clock when the key was pressed.
    pressed_at: String,
    /// RFC 3339, the terminal's clock when sending; lets the server correct a terminal's clock.
    sent_at: Option<String>,
    /// A phone number the customer leaves with a negative rating.
    phone: Option<String>,
    /// The reason picked after a negative press (服务礼仪, 服务效率…).
    negative_reason: Option<String>,
}

fn time(field: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::invalid(
                field,
                "invalid_time",
                format!("'{value}' is not an RFC 3339 time such as 2026-11-22T09:30:00+08:00"),
            )
        })
}

/// A key press. 201 when new; the same idempotency key again answers 200 with the first answer.
#[utoipa::path(post, path = "/api/v1/device/presses", tag = "device", security(("terminal" = [])), request_body = PressBody,
    responses((status = 201, body = PressOutcome), (status = 200, body = PressOutcome), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn press(
    State(state): State<AppState>,
    Terminal(device): Terminal,
    ApiJson(body): ApiJson<PressBody>,
) -> Result<(StatusCode, Json<PressOutcome>), ApiError> {
    let input = PressInput {
        pressed_at: time("pressed_at", &body.pressed_at)?,
        sent_at: body
            .sent_at
            .as_deref()
            .map(|s| time("sent_at", s))
            .transpose()?,
        key: body.key,
        idempotency_key: body.idempotency_key,
        phone: body.phone,
        negative_reason: body.negative_reason,
    };
    let outcome = store::press(&state.db, &device, input).await?;
    if outcome.alerts_queued > 0 {
        state.outbox_wake.notify_one();
    }
    if !outcome.replay {
        changed(&state, &device).await;
    }
    let status = if outcome.replay {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}
