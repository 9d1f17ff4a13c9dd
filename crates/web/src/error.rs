//! One error type for the web layer and one mapping to HTTP:
//! `{"error":{"code":"…","message":"…","field":"…"|null}}` with the status that fits.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keping_store::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
        }
    }

    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such object")
    }

    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).field(field)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Forbidden(p) => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the permission '{p}'"),
            ),
            StoreError::Invalid(i) => ApiError::invalid(&i.field, i.code, i.message),
            StoreError::Conflict {
                field,
                code,
                message,
            } => ApiError {
                status: StatusCode::CONFLICT,
                code: code.to_string(),
                message,
                field,
            },
            StoreError::Database(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not complete the request; it has been logged",
                )
            }
        }
    }
}

impl From<keping_domain::Invalid> for ApiError {
    fn from(i: keping_domain::Invalid) -> Self {
        ApiError::invalid(&i.field, i.code, i.message)
    }
}

/// `Json` whose rejections speak the API's error format, naming the field where serde does.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

pub(crate) fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let text = r.body_text();
    match r {
        JsonRejection::JsonDataError(_) => {
            // "Failed to deserialize the JSON body into the target type: name: invalid type…"
            let detail = text
                .split_once("target type: ")
                .map_or(text.as_str(), |(_, d)| d)
                .to_string();
            let field = field_of(&detail);
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", detail);
            err.field = field;
            err
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than the server accepts",
        ),
        _ => ApiError::new(status, "bad_request", text),
    }
}

/// The field a serde message is about: "missing field `name`" or a "path: message" prefix.
fn field_of(detail: &str) -> Option<String> {
    if let Some(rest) = detail.split_once("missing field `").map(|(_, r)| r) {
        return rest.split('`').next().map(str::to_string);
    }
    let (path, _) = detail.split_once(": ")?;
    (!path.contains(' ') && path != ".").then(|| path.to_string())
}

/// `Query` with the API's error format.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| {
                let detail = r.body_text();
                let detail = detail
                    .split_once("query string: ")
                    .map_or(detail.as_str(), |(_, d)| d)
                    .to_string();
                let mut err =
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", detail.clone());
                err.field = field_of(&detail);
                err
            })
    }
}

/// `Path` with the API's error format: an id that is not a number names no object.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text()).field("id")
            })
    }
}

/// A list's `limit`: 1–500, 50 when left out.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(l) if (1..=500).contains(&l) => Ok(l),
        Some(l) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "out_of_range",
            format!("limit must be between 1 and 500, not {l}"),
        )
        .field("limit")),
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn fields_from_serde_messages() {
        assert_eq!(
            field_of("missing field `name` at line 1 column 2").as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of("parent_id: invalid type: string \"x\", expected i64 at line 1 column 20")
                .as_deref(),
            Some("parent_id")
        );
        assert_eq!(field_of("expected value at line 1 column 1"), None);
    }
}
