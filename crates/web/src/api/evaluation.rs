//! Windows, business types, terminals, evaluation settings, ratings and follow-ups, for the people
//! who run the counters.

use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use keping_domain::evaluation::{EvaluationSettings, Polarity, RatingOption};
use keping_store::evaluation::{
    self as store, BusinessType, FollowUp, FollowUpFilter, NewBusinessType, NewWindow, Rating,
    RatingFilter, Terminal, Window, WindowFilter, WindowPatch,
};
use keping_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_windows, create_window))
        .routes(routes!(get_window, update_window))
        .routes(routes!(list_business_types, create_business_type))
        .routes(routes!(rename_business_type, delete_business_type))
        .routes(routes!(create_terminal))
        .routes(routes!(list_terminals))
        .routes(routes!(revoke_terminal))
        .routes(routes!(rotate_terminal))
        .routes(routes!(get_settings, put_settings, inherit_settings))
        .routes(routes!(list_ratings))
        .routes(routes!(export_ratings))
        .routes(routes!(list_follow_ups))
        .routes(routes!(close_follow_up))
}

#[derive(Deserialize, IntoParams)]
pub struct RatingQuery {
    /// Only ratings in this org's subtree.
    org_id: Option<i64>,
    window_id: Option<i64>,
    /// positive, neutral or negative
    polarity: Option<String>,
    /// RFC 3339; ratings at or after.
    from: Option<String>,
    /// RFC 3339; ratings before.
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct RatingExportQuery {
    /// Only ratings in this org's subtree.
    org_id: Option<i64>,
    window_id: Option<i64>,
    staff_id: Option<i64>,
    /// positive, neutral or negative
    polarity: Option<String>,
    /// RFC 3339; ratings at or after.
    from: Option<String>,
    /// RFC 3339; ratings before.
    to: Option<String>,
}

/// Every counted rating the filters select (up to 1,000,000, newest first) as an xlsx workbook,
/// the filters in the header rows, times in the org's time zone; negative details and phones as
/// in the list. Needs stats.export; logged in the audit log.
#[utoipa::path(get, path = "/api/v1/ratings/export", tag = "evaluation", security(("bearer" = [])), params(RatingExportQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn export_ratings(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RatingExportQuery>,
) -> Result<Response, ApiError> {
    if let Some(p) = &q.polarity {
        if Polarity::parse(p).is_none() {
            return Err(keping_domain::Invalid::new(
                "polarity",
                "invalid_polarity",
                "polarity must be positive, neutral or negative",
            )
            .into());
        }
    }
    let filter = RatingFilter {
        org_id: q.org_id,
        window_id: q.window_id,
        staff_id: q.staff_id,
        polarity: q.polarity,
        from_ms: crate::api::audit::parse_time("from", q.from.as_deref())?,
        to_ms: crate::api::audit::parse_time("to", q.to.as_deref())?,
    };
    let (_, bytes) =
        keping_store::stats::export_ratings_xlsx(&state.db, &caller.scope, &filter).await?;
    Ok(crate::api::customers::xlsx_response(bytes, "ratings.xlsx"))
}

/// Counted ratings, newest first. Negative details (reason, phone) only for roles with
/// negative.view; phone numbers masked for roles without phone.view.
#[utoipa::path(get, path = "/api/v1/ratings", tag = "evaluation", security(("bearer" = [])), params(RatingQuery),
    responses((status = 200, body = Page<Rating>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_ratings(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RatingQuery>,
) -> Result<Json<Page<Rating>>, ApiError> {
    let filter = RatingFilter {
        org_id: q.org_id,
        window_id: q.window_id,
        staff_id: None,
        polarity: q.polarity,
        from_ms: crate::api::audit::parse_time("from", q.from.as_deref())?,
        to_ms: crate::api::audit::parse_time("to", q.to.as_deref())?,
    };
    Ok(Json(
        store::ratings(
            &state.db,
            &caller.scope,
            &filter,
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateWindow {
    /// The outlet the window belongs to.
    org_id: i64,
    name: String,
    /// Unique within the outlet.
    code: String,
}

#[utoipa::path(post, path = "/api/v1/windows", tag = "evaluation", security(("bearer" = [])), request_body = CreateWindow,
    responses((status = 201, body = Window), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_window(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWindow>,
) -> Result<(StatusCode, Json<Window>), ApiError> {
    let w = store::create_window(
        &state.db,
        &caller.scope,
        NewWindow {
            org_id: body.org_id,
            name: body.name,
            code: body.code,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(w)))
}

#[derive(Deserialize, IntoParams)]
pub struct WindowQuery {
    q: Option<String>,
    /// Only windows in this org's subtree.
    org_id: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/windows", tag = "evaluation", security(("bearer" = [])), params(WindowQuery),
    responses((status = 200, body = Page<Window>), (status = 403, body = ErrorBody)))]
async fn list_windows(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> Result<Json<Page<Window>>, ApiError> {
    let filter = WindowFilter {
        q: q.q,
        org_id: q.org_id,
    };
    Ok(Json(
        store::windows(
            &state.db,
            &caller.scope,
            &filter,
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/windows/{id}", tag = "evaluation", security(("bearer" = [])), responses((status = 200, body = Window), (status = 404, body = ErrorBody)))]
async fn get_window(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Window>, ApiError> {
    Ok(Json(store::window(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateWindow {
    name: Option<String>,
    code: Option<String>,
    /// false closes the window (增加窗口 / 关闭窗口).
    is_open: Option<bool>,
    /// A business type of the window's org or of an org above it; null takes it away.
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<i64>)]
    business_type_id: Option<Option<i64>>,
}

/// Rename, close or reopen a window, or give it a business type.
#[utoipa::path(patch, path = "/api/v1/windows/{id}", tag = "evaluation", security(("bearer" = [])), request_body = UpdateWindow,
    responses((status = 200, body = Window), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_window(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateWindow>,
) -> Result<Json<Window>, ApiError> {
    let patch = WindowPatch {
        name: body.name,
        code: body.code,
        is_open: body.is_open,
        business_type_id: body.business_type_id,
    };
    Ok(Json(
        store::update_window(&state.db, &caller.scope, id, patch).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateTerminal {
    window_id: i64,
    /// keypad, kiosk or qr
    kind: String,
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedTerminal {
    id: i64,
    /// The terminal's bearer token for the device API; shown this once.
    token: String,
    terminal: Terminal,
}

/// Register a terminal for a window; its token is shown once.
#[utoipa::path(post, path = "/api/v1/terminals", tag = "evaluation", security(("bearer" = [])), request_body = CreateTerminal,
    responses((status = 201, body = CreatedTerminal), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_terminal(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTerminal>,
) -> Result<(StatusCode, Json<CreatedTerminal>), ApiError> {
    let (terminal, token) = store::create_terminal(
        &state.db,
        &caller.scope,
        body.window_id,
        &body.kind,
        body.name.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTerminal {
            id: terminal.id,
            token,
            terminal,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct TerminalList {
    items: Vec<Terminal>,
    next_cursor: Option<String>,
}

/// A window's terminals, live ones first, revoked ones after them.
#[utoipa::path(get, path = "/api/v1/windows/{id}/terminals", tag = "evaluation", security(("bearer" = [])),
    responses((status = 200, body = TerminalList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_terminals(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TerminalList>, ApiError> {
    Ok(Json(TerminalList {
        items: store::terminals(&state.db, &caller.scope, id).await?,
        next_cursor: None,
    }))
}

/// Revoke a terminal (吊销): its token stops working at once.
#[utoipa::path(post, path = "/api/v1/terminals/{id}/revoke", tag = "evaluation", security(("bearer" = [])),
    responses((status = 200, body = Terminal), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_terminal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Terminal>, ApiError> {
    Ok(Json(
        store::revoke_terminal(&state.db, &caller.scope, id).await?,
    ))
}

/// Give a terminal a new token (更换令牌), shown once; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/terminals/{id}/rotate", tag = "evaluation", security(("bearer" = [])),
    responses((status = 200, body = CreatedTerminal), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rotate_terminal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CreatedTerminal>, ApiError> {
    let (terminal, token) = store::rotate_terminal(&state.db, &caller.scope, id).await?;
    Ok(Json(CreatedTerminal {
        id: terminal.id,
        token,
        terminal,
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct BusinessTypeQuery {
    /// Only the types a window of this org may use (defined there or above it).
    org_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct BusinessTypeList {
    items: Vec<BusinessType>,
    next_cursor: Option<String>,
}

/// Business types (业务) defined within the caller's reach and above it, by org then code.
#[utoipa::path(get, path = "/api/v1/business-types", tag = "evaluation", security(("bearer" = [])), params(BusinessTypeQuery),
    responses((status = 200, body = BusinessTypeList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_business_types(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<BusinessTypeQuery>,
) -> Result<Json<BusinessTypeList>, ApiError> {
    Ok(Json(BusinessTypeList {
        items: store::business_types(&state.db, &caller.scope, q.org_id).await?,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateBusinessType {
    /// Windows of this org and of its whole subtree may use the type.
    org_id: i64,
    name: String,
    /// Unique within the org.
    code: String,
}

#[utoipa::path(post, path = "/api/v1/business-types", tag = "evaluation", security(("bearer" = [])), request_body = CreateBusinessType,
    responses((status = 201, body = BusinessType), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_business_type(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBusinessType>,
) -> Result<(StatusCode, Json<BusinessType>), ApiError> {
    let bt = store::create_business_type(
        &state.db,
        &caller.scope,
        NewBusinessType {
            org_id: body.org_id,
            name: body.name,
            code: body.code,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(bt)))
}

#[derive(Deserialize, ToSchema)]
pub struct RenameBusinessType {
    name: String,
}

/// Rename a business type; past services and reports show the new name.
#[utoipa::path(patch, path = "/api/v1/business-types/{id}", tag = "evaluation", security(("bearer" = [])), request_body = RenameBusinessType,
    responses((status = 200, body = BusinessType), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rename_business_type(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RenameBusinessType>,
) -> Result<Json<BusinessType>, ApiError> {
    Ok(Json(
        store::rename_business_type(&state.db, &caller.scope, id, &body.name).await?,
    ))
}

/// Delete a business type no window or past service uses (409 `in_use` otherwise).
#[utoipa::path(delete, path = "/api/v1/business-types/{id}", tag = "evaluation", security(("bearer" = [])),
    responses((status = 200), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_business_type(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    store::delete_business_type(&state.db, &caller.scope, id).await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, IntoParams)]
pub struct FollowUpQuery {
    /// open or closed; both when left out.
    status: Option<String>,
    /// Only follow-ups in this org's subtree.
    org_id: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Follow-up items (待跟进) opened by negative ratings, newest first, within the reach of
/// followup.handle; phone numbers masked for roles without phone.view.
#[utoipa::path(get, path = "/api/v1/follow-ups", tag = "evaluation", security(("bearer" = [])), params(FollowUpQuery),
    responses((status = 200, body = Page<FollowUp>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_follow_ups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FollowUpQuery>,
) -> Result<Json<Page<FollowUp>>, ApiError> {
    let filter = FollowUpFilter {
        status: q.status,
        org_id: q.org_id,
    };
    Ok(Json(
        store::follow_ups(
            &state.db,
            &caller.scope,
            &filter,
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct CloseFollowUp {
    /// What was done about it; 1–500 characters.
    #[serde(default)]
    note: String,
}

/// Close a follow-up (处理) with a note; closing a closed one is a conflict.
#[utoipa::path(post, path = "/api/v1/follow-ups/{id}/close", tag = "evaluation", security(("bearer" = [])), request_body = CloseFollowUp,
    responses((status = 200, body = FollowUp), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn close_follow_up(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CloseFollowUp>,
) -> Result<Json<FollowUp>, ApiError> {
    Ok(Json(
        store::close_follow_up(&state.db, &caller.scope, id, &body.note).await?,
    ))
}

/// Also the rows of the settings page's options table.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
pub struct OptionBody {
    pub(crate) key: String,
    pub(crate) label: String,
    pub(crate) label_en: Option<String>,
    /// positive, neutral or negative
    pub(crate) polarity: String,
}

impl From<RatingOption> for OptionBody {
    fn from(o: RatingOption) -> Self {
        OptionBody {
            key: o.key,
            label: o.label,
            label_en: o.label_en,
            polarity: o.polarity.code().to_string(),
        }
    }
}

#[derive(Deserialize, Serialize, ToSchema)]
pub struct SettingsBody {
    pub(crate) press_interval_seconds: i64,
    pub(crate) rating_timeout_seconds: i64,
    /// Whether presses without an open prompt count (plain keypads without Start/End).
    #[serde(default)]
    pub(crate) bare_presses_count: bool,
    pub(crate) options: Vec<OptionBody>,
    #[serde(default)]
    pub(crate) negative_reasons: Vec<String>,
}

/// The settings page reads and sends the same shape as the API, so both check it the same way.
impl SettingsBody {
    pub(crate) fn into_settings(self) -> Result<EvaluationSettings, ApiError> {
        let mut options = Vec::new();
        for (i, o) in self.options.into_iter().enumerate() {
            let polarity = Polarity::parse(&o.polarity).ok_or_else(|| {
                ApiError::invalid(
                    &format!("options[{i}].polarity"),
                    "invalid_choice",
                    "polarity must be positive, neutral or negative",
                )
            })?;
            options.push(RatingOption {
                key: o.key,
                label: o.label,
                label_en: o.label_en,
                polarity,
            });
        }
        Ok(EvaluationSettings {
            press_interval_seconds: self.press_interval_seconds,
            rating_timeout_seconds: self.rating_timeout_seconds,
            bare_presses_count: self.bare_presses_count,
            options,
            negative_reasons: self.negative_reasons,
        })
    }

    pub(crate) fn from_settings(s: EvaluationSettings) -> Self {
        SettingsBody {
            press_interval_seconds: s.press_interval_seconds,
            rating_timeout_seconds: s.rating_timeout_seconds,
            bare_presses_count: s.bare_presses_count,
            options: s.options.into_iter().map(OptionBody::from).collect(),
            negative_reasons: s.negative_reasons,
        }
    }
}

/// The settings in force for an org (its own or inherited).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/evaluation-settings", tag = "evaluation", security(("bearer" = [])), responses((status = 200, body = SettingsBody), (status = 404, body = ErrorBody)))]
async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SettingsBody>, ApiError> {
    Ok(Json(SettingsBody::from_settings(
        store::settings(&state.db, &caller.scope, id)
            .await?
            .settings,
    )))
}

/// Drop an org's own settings: it inherits its nearest ancestor's (or the defaults) again.
/// Answers the settings now in force.
#[utoipa::path(delete, path = "/api/v1/orgs/{id}/evaluation-settings", tag = "evaluation", security(("bearer" = [])),
    responses((status = 200, body = SettingsBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn inherit_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SettingsBody>, ApiError> {
    store::inherit_settings(&state.db, &caller.scope, id).await?;
    get_settings(State(state), caller, ApiPath(id)).await
}

/// Set an org's rating options, time limit and press interval; inherited by its subtree.
/// Past ratings keep the label and polarity they were given under.
#[utoipa::path(put, path = "/api/v1/orgs/{id}/evaluation-settings", tag = "evaluation", security(("bearer" = [])), request_body = SettingsBody,
    responses((status = 200, body = SettingsBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<SettingsBody>, ApiError> {
    let saved = store::put_settings(&state.db, &caller.scope, id, &body.into_settings()?).await?;
    Ok(Json(SettingsBody::from_settings(saved)))
}
