use crate::auth::{bearer, Caller};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::login::{attempt, LoginError};
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::Json;
use keping_store::{accounts, tokens};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginAnswer {
    /// A session token for `Authorization: Bearer`; valid for 7 days or until logout.
    token: String,
    user: UserRef,
}

#[derive(Serialize, ToSchema)]
pub struct UserRef {
    id: i64,
    username: String,
    name: String,
}

pub fn login_error(e: LoginError) -> ApiError {
    match e {
        LoginError::WrongPair => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        ),
        LoginError::Locked { minutes } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "account_locked",
            format!(
                "too many failed attempts; try again in {minutes} minutes or ask an administrator"
            ),
        ),
        LoginError::Disabled => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "account_disabled",
            "this account is disabled",
        ),
        LoginError::Store(e) => e.into(),
    }
}

/// Sign in with a username and password; answers a session token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginAnswer), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let (token, id, username, name) = attempt(&state, &body.username, &body.password, "api")
        .await
        .map_err(login_error)?;
    Ok(Json(LoginAnswer {
        token,
        user: UserRef { id, username, name },
    }))
}

/// End the session whose token authenticates this request.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])), responses((status = 200), (status = 401, body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(secret) = bearer(&headers) {
        tokens::revoke_secret(&state.db, secret).await?;
    }
    Ok(Json(serde_json::json!({"status": "signed_out"})))
}

/// The signed-in person, with his permissions.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])), responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let user = accounts::user(&state.db, &caller.scope, caller.scope.user_id).await?;
    Ok(Json(Me {
        permissions: caller.scope.permissions().into_iter().collect(),
        user,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    user: accounts::User,
    permissions: Vec<String>,
}
