//! Attachments (附件) of a customer: upload, list, download and remove.

use crate::auth::{urlencode, Caller};
use crate::error::{ApiError, ApiPath, ErrorBody};
use crate::AppState;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keping_domain::scope::Scope;
use keping_store::customers::attachments::{self as store, Attachment, MAX_ATTACHMENT_BYTES};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_attachments, add_attachment))
        .routes(routes!(download_attachment, delete_attachment))
        // room for the multipart framing around the largest file
        .layer(DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES + 64 * 1024))
}

/// A file from a multipart form's `file` field: its name, its type and its bytes.
struct UploadedFile {
    name: String,
    content_type: Option<String>,
    bytes: axum::body::Bytes,
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the file is larger than {} MiB",
            MAX_ATTACHMENT_BYTES / 1024 / 1024
        ),
    )
}

/// Reads the `file` field of an upload; other fields are ignored.
async fn uploaded_file(
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<UploadedFile, ApiError> {
    let mut multipart = multipart
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", r.body_text()))?;
    let read_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(read_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or_default().to_string();
        let content_type = field.content_type().map(str::to_string);
        let bytes = field.bytes().await.map_err(read_error)?;
        return Ok(UploadedFile {
            name,
            content_type,
            bytes,
        });
    }
    Err(ApiError::invalid(
        "file",
        "required",
        "send the file in a multipart field named 'file'",
    ))
}

/// The customer's files, newest first; 404 outside the caller's scope.
#[utoipa::path(get, path = "/api/v1/customers/{id}/attachments", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Vec<Attachment>), (status = 404, body = ErrorBody)))]
async fn list_attachments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Attachment>>, ApiError> {
    Ok(Json(store::list(&state.db, &caller.scope, id).await?))
}

/// Attach a file (multipart field `file`, at most 20 MiB; at most 100 files per customer).
#[utoipa::path(post, path = "/api/v1/customers/{id}/attachments", tag = "customers", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "`file`: the file"),
    responses((status = 201, body = Attachment), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_attachment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Attachment>), ApiError> {
    let a = attach(&state, &caller.scope, id, multipart).await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Keeps the upload's `file` with customer `id`.
pub async fn attach(
    state: &AppState,
    scope: &Scope,
    id: i64,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Attachment, ApiError> {
    let file = uploaded_file(multipart).await?;
    Ok(store::add(
        &state.db,
        scope,
        id,
        &file.name,
        file.content_type.as_deref(),
        &file.bytes,
    )
    .await?)
}

/// A file's bytes as a download, under its own name.
pub fn download(a: &Attachment, data: Vec<u8>) -> Response {
    let ascii: String = a
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, a.content_type.clone()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
                    urlencode(&a.file_name)
                ),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        data,
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/attachments/{attachment_id}", tag = "customers", security(("bearer" = [])),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
async fn download_attachment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, attachment_id)): ApiPath<(i64, i64)>,
) -> Result<Response, ApiError> {
    let (a, data) = store::get(&state.db, &caller.scope, id, attachment_id).await?;
    Ok(download(&a, data))
}

/// Remove a file from the customer.
#[utoipa::path(delete, path = "/api/v1/customers/{id}/attachments/{attachment_id}", tag = "customers", security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_attachment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, attachment_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    store::delete(&state.db, &caller.scope, id, attachment_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
