use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::login::hash;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keping_domain::auth::PERMISSIONS;
use keping_domain::validate;
use keping_store::accounts::{
    self, AssignmentInput, NewUser, Role, RoleInput, User, UserFilter, UserPatch,
};
use keping_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub const MAX_PHOTO_BYTES: usize = 2 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(permissions))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(reset_password))
        .routes(routes!(change_own_password))
        .routes(routes!(get_photo, put_photo, delete_photo))
}

#[derive(Serialize, ToSchema)]
pub struct PermissionItem {
    code: &'static str,
    /// In the caller's language.
    name: &'static str,
    name_zh: &'static str,
    name_en: &'static str,
    module: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct PermissionList {
    items: Vec<PermissionItem>,
}

/// The permission catalogue that roles are ticked from.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "accounts", security(("bearer" = [])), responses((status = 200, body = PermissionList), (status = 401, body = ErrorBody)))]
async fn permissions(caller: Caller) -> Json<PermissionList> {
    let items = PERMISSIONS
        .iter()
        .map(|p| PermissionItem {
            code: p.code,
            name: if caller.locale.is_en() {
                p.name_en
            } else {
                p.name_zh
            },
            name_zh: p.name_zh,
            name_en: p.name_en,
            module: p.module,
        })
        .collect();
    Json(PermissionList { items })
}

#[derive(Deserialize, ToSchema)]
pub struct RoleBody {
    name: String,
    permissions: Vec<String>,
    /// self, self_and_subordinates, org, org_and_children or all
    data_level: String,
}

impl From<RoleBody> for RoleInput {
    fn from(b: RoleBody) -> Self {
        RoleInput {
            name: b.name,
            permissions: b.permissions,
            data_level: b.data_level,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RoleList {
    items: Vec<Role>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/roles", tag = "accounts", security(("bearer" = [])), responses((status = 200, body = RoleList), (status = 403, body = ErrorBody)))]
async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RoleList>, ApiError> {
    Ok(Json(RoleList {
        items: accounts::roles(&state.db, &caller.scope).await?,
        next_cursor: None,
    }))
}

/// A role: ticked permissions plus a data level. Nobody grants what he does not hold.
#[utoipa::path(post, path = "/api/v1/roles", tag = "accounts", security(("bearer" = [])), request_body = RoleBody,
    responses((status = 201, body = Role), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<(StatusCode, Json<Role>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(accounts::create_role(&state.db, &caller.scope, body.into()).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/roles/{id}", tag = "accounts", security(("bearer" = [])), responses((status = 200, body = Role), (status = 404, body = ErrorBody)))]
async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Role>, ApiError> {
    Ok(Json(accounts::role(&state.db, &caller.scope, id).await?))
}

#[utoipa::path(put, path = "/api/v1/roles/{id}", tag = "accounts", security(("bearer" = [])), request_body = RoleBody,
    responses((status = 200, body = Role), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<Role>, ApiError> {
    Ok(Json(
        accounts::update_role(&state.db, &caller.scope, id, body.into()).await?,
    ))
}

/// Delete a role nobody holds.
#[utoipa::path(delete, path = "/api/v1/roles/{id}", tag = "accounts", security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    accounts::delete_role(&state.db, &caller.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct AssignmentBody {
    role_id: i64,
    org_id: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateUser {
    username: String,
    password: String,
    name: String,
    employee_no: Option<String>,
    org_id: i64,
    position: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    manager_id: Option<i64>,
    #[serde(default)]
    roles: Vec<AssignmentBody>,
}

fn assignments(body: Vec<AssignmentBody>) -> Vec<AssignmentInput> {
    body.into_iter()
        .map(|a| AssignmentInput {
            role_id: a.role_id,
            org_id: a.org_id,
        })
        .collect()
}

/// Create a person with an account, placed in an org of the caller's subtree.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    validate::password("password", &body.password)?;
    let new = NewUser {
        username: body.username,
        password_hash: hash(body.password).await,
        name: body.name,
        employee_no: body.employee_no,
        org_id: body.org_id,
        position: body.position,
        phone: body.phone,
        email: body.email,
        manager_id: body.manager_id,
        roles: assignments(body.roles),
    };
    Ok((
        StatusCode::CREATED,
        Json(accounts::create_user(&state.db, &caller.scope, new).await?),
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct UserQuery {
    /// Any part of the name, username or employee no.
    q: Option<String>,
    /// Only people in this org's subtree.
    org_id: Option<i64>,
    enabled: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = Page<User>), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let filter = UserFilter {
        q: q.q,
        org_id: q.org_id,
        enabled: q.enabled,
    };
    Ok(Json(
        accounts::users(
            &state.db,
            &caller.scope,
            &filter,
            limit,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "accounts", security(("bearer" = [])), responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(accounts::user(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateUser {
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    employee_no: Option<Option<String>>,
    /// Moves the person to another org.
    org_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    position: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<i64>)]
    manager_id: Option<Option<i64>>,
    /// false disables the account and ends its sessions.
    enabled: Option<bool>,
    /// Replaces all role assignments.
    roles: Option<Vec<AssignmentBody>>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "accounts", security(("bearer" = [])), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    let patch = UserPatch {
        name: body.name,
        employee_no: body.employee_no,
        org_id: body.org_id,
        position: body.position,
        phone: body.phone,
        email: body.email,
        manager_id: body.manager_id,
        enabled: body.enabled,
        roles: body.roles.map(assignments),
    };
    Ok(Json(
        accounts::update_user(&state.db, &caller.scope, id, patch).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct NewPassword {
    password: String,
}

/// A manager sets a new password for someone in his subtree; that person's sessions end.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "accounts", security(("bearer" = [])), request_body = NewPassword,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<StatusCode, ApiError> {
    validate::password("password", &body.password)?;
    accounts::set_password(&state.db, &caller.scope, id, hash(body.password).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Change one's own password; the current one is required.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "accounts", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 204), (status = 422, body = ErrorBody)))]
async fn change_own_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    change_password(
        &state,
        &caller.scope,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Shared by the API and the account page.
pub async fn change_password(
    state: &AppState,
    scope: &keping_domain::scope::Scope,
    current: &str,
    new: &str,
) -> Result<(), ApiError> {
    let creds = accounts::credentials(&state.db, &scope.username)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let (hash_now, current) = (creds.password_hash, current.to_string());
    let ok = tokio::task::spawn_blocking(move || {
        keping_domain::auth::verify_password(&hash_now, &current)
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err(ApiError::invalid(
            "current_password",
            "wrong_password",
            "the current password is wrong",
        ));
    }
    validate::password("new_password", new)?;
    accounts::set_password(&state.db, scope, scope.user_id, hash(new.to_string()).await).await?;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/users/{id}/photo", tag = "accounts", security(("bearer" = [])), responses((status = 200, content_type = "image/*"), (status = 404, body = ErrorBody)))]
async fn get_photo(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let (bytes, kind) = accounts::photo(&state.db, &caller.scope, id).await?;
    Ok(photo_response(bytes, kind))
}

/// A stored photo as an answer: private, since who may see it depends on the caller.
pub fn photo_response(bytes: Vec<u8>, kind: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=60".to_string()),
        ],
        bytes,
    )
        .into_response()
}

fn photo_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "photo_too_large",
        format!(
            "a photo may have at most {} MiB",
            MAX_PHOTO_BYTES / 1024 / 1024
        ),
    )
    .field("photo")
}

/// Checks that the bytes are a PNG, JPEG, GIF or WebP image of sane size; answers its media type.
pub fn check_photo(bytes: &[u8]) -> Result<&'static str, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid("photo", "required", "the photo is empty"));
    }
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(photo_too_large());
    }
    let kind = match imagesize::image_type(bytes) {
        Ok(imagesize::ImageType::Png) => "image/png",
        Ok(imagesize::ImageType::Jpeg) => "image/jpeg",
        Ok(imagesize::ImageType::Gif) => "image/gif",
        Ok(imagesize::ImageType::Webp) => "image/webp",
        _ => {
            return Err(ApiError::invalid(
                "photo",
                "not_an_image",
                "the photo must be a PNG, JPEG, GIF or WebP image",
            ))
        }
    };
    match imagesize::blob_size(bytes) {
        Ok(size)
            if size.width > 0 && size.height > 0 && size.width <= 8000 && size.height <= 8000 =>
        {
            Ok(kind)
        }
        _ => Err(ApiError::invalid(
            "photo",
            "not_an_image",
            "the photo is damaged or its size is not between 1 and 8000 pixels",
        )),
    }
}

/// Upload a photo as the raw body (Content-Type image/png, image/jpeg, image/gif or image/webp), at most 2 MiB.
#[utoipa::path(put, path = "/api/v1/users/{id}/photo", tag = "accounts", security(("bearer" = [])), request_body(content = Vec<u8>, content_type = "image/*"),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_photo(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    // read here with the photo's own limit: the app-wide body limit is for JSON
    let body = axum::body::to_bytes(body, MAX_PHOTO_BYTES)
        .await
        .map_err(|_| photo_too_large())?;
    let kind = check_photo(&body)?;
    accounts::set_photo(
        &state.db,
        &caller.scope,
        id,
        Some((body.to_vec(), kind.to_string())),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/users/{id}/photo", tag = "accounts", security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_photo(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    accounts::set_photo(&state.db, &caller.scope, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
