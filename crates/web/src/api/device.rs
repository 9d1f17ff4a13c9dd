//! The device API for evaluation terminals (keypads, kiosk pages). The terminal's own token is the
//! bearer. The protocol is described for hardware makers in docs/device-api.md.

use super::accounts::photo_response;
use super::evaluation::OptionBody;
use crate::auth::bearer;
use crate::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::live::LiveEvent;
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use keping_domain::evaluation::PressTarget;
use keping_store::evaluation::{self as store, Device, DeviceState, Staff};
use keping_store::press::{PressInput, PressOutcome};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(state))
        .routes(routes!(staff_photo))
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

/// What follows a recorded press, whichever way it came (device API or QR page): alerts leave at
/// once, and the live monitor hears of it.
pub fn after_press(state: &AppState, device: &Device, outcome: &PressOutcome) {
    if outcome.alerts_queued > 0 {
        state.outbox_wake.notify_one();
    }
    if !outcome.replay {
        changed(state, device);
    }
}

/// Tells the live monitor that something happened at the terminal's window.
fn changed(state: &AppState, device: &Device) {
    state.live.publish(
        &state.db,
        LiveEvent {
            window_id: device.window_id,
            org_path: device.org_path.clone(),
        },
    );
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

/// A terminal at the counter. A QR terminal's token is printed for anyone to read, so it may only
/// rate, through its own page (`/r/{token}`) with its per-visitor limits.
pub struct CounterTerminal(pub Device);

impl FromRequestParts<AppState> for CounterTerminal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Terminal(device) = Terminal::from_request_parts(parts, state).await?;
        if device.is_qr() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_for_qr",
                "a QR terminal cannot sign staff in or out, run services or send presses here",
            ));
        }
        Ok(CounterTerminal(device))
    }
}

#[derive(Serialize, ToSchema)]
pub struct WindowRef {
    id: i64,
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct StateBody {
    window: WindowRef,
    /// The outlet the window belongs to.
    org_name: String,
    /// The business type the window handles, if set.
    business_type: Option<String>,
    /// The staff on duty, or null.
    staff: Option<Staff>,
    /// The rating options in force, in order.
    options: Vec<OptionBody>,
    /// Reasons a customer may pick after a negative press.
    negative_reasons: Vec<String>,
    /// The service in progress, or null.
    service_id: Option<i64>,
    /// Whether the latest service's prompt is open and unrated now.
    prompt_open: bool,
}

impl From<DeviceState> for StateBody {
    fn from(s: DeviceState) -> Self {
        StateBody {
            window: WindowRef {
                id: s.window_id,
                name: s.window_name,
            },
            org_name: s.org_name,
            business_type: s.business_type,
            staff: s.staff,
            options: s
                .settings
                .options
                .into_iter()
                .map(OptionBody::from)
                .collect(),
            negative_reasons: s.settings.negative_reasons,
            service_id: s.service_id,
            prompt_open: s.prompt_open,
        }
    }
}

/// What the terminal shows now: window, staff on duty, options, service and prompt. Kiosks poll
/// it every few seconds; it also serves as the terminal's heartbeat.
#[utoipa::path(get, path = "/api/v1/device/state", tag = "device", security(("terminal" = [])),
    responses((status = 200, body = StateBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn state(
    State(state): State<AppState>,
    Terminal(device): Terminal,
) -> Result<Json<StateBody>, ApiError> {
    Ok(Json(store::device_state(&state.db, &device).await?.into()))
}

/// The photo of a member of staff on duty at this terminal's window now or within the last hour.
#[utoipa::path(get, path = "/api/v1/device/staff/{id}/photo", tag = "device", security(("terminal" = [])),
    responses((status = 200, content_type = "image/*"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn staff_photo(
    State(state): State<AppState>,
    Terminal(device): Terminal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let (bytes, kind) = store::duty_photo(&state.db, &device, id).await?;
    Ok(photo_response(bytes, kind))
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
    responses((status = 200, body = SignedIn), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    CounterTerminal(device): CounterTerminal,
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
    changed(&state, &device);
    Ok(Json(SignedIn { staff }))
}

/// 下岗: whoever is on duty at this window signs out.
#[utoipa::path(post, path = "/api/v1/device/sign-out", tag = "device", security(("terminal" = [])), responses((status = 200), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn sign_out(
    State(state): State<AppState>,
    CounterTerminal(device): CounterTerminal,
) -> Result<Json<serde_json::Value>, ApiError> {
    store::sign_out(&state.db, &device).await?;
    changed(&state, &device);
    Ok(Json(serde_json::json!({"status": "signed_out"})))
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    service_id: i64,
}

/// Start: a service begins. The previous service's open prompt closes unrated.
#[utoipa::path(post, path = "/api/v1/device/services", tag = "device", security(("terminal" = [])),
    responses((status = 201, body = Started), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start(
    State(state): State<AppState>,
    CounterTerminal(device): CounterTerminal,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let service_id = store::start_service(&state.db, &device).await?;
    changed(&state, &device);
    Ok((StatusCode::CREATED, Json(Started { service_id })))
}

/// End: the service ends and the rating prompt opens.
#[utoipa::path(post, path = "/api/v1/device/services/{id}/end", tag = "device", security(("terminal" = [])),
    responses((status = 200), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end(
    State(state): State<AppState>,
    CounterTerminal(device): CounterTerminal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    store::end_service(&state.db, &device, id).await?;
    changed(&state, &device);
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
    responses((status = 201, body = PressOutcome), (status = 200, body = PressOutcome), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn press(
    State(state): State<AppState>,
    CounterTerminal(device): CounterTerminal,
    ApiJson(body): ApiJson<PressBody>,
) -> Result<(StatusCode, Json<PressOutcome>), ApiError> {
    let input = PressInput {
        target: PressTarget::Prompt,
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
    let outcome = state.presses.press(&device, input).await?;
    after_press(&state, &device, &outcome);
    let status = if outcome.replay {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}
