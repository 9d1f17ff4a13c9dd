//! Where alerts go (per org, inherited) and how their deliveries fared.

use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use keping_domain::notify::{AlertSettings, Channel};
use keping_store::notify::{self as store, Delivery};
use keping_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_alerts, put_alerts))
        .routes(routes!(deliveries))
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
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}
