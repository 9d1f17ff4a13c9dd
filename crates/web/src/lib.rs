//! keping's HTTP face: the JSON API under `/api/v1`, the pages, health and metrics.

pub mod api;
pub mod auth;
pub mod error;
pub mod i18n;
pub mod live;
pub mod login;
pub mod pages;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keping_store::Db;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Deserializer};
use std::sync::OnceLock;
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

rust_i18n::i18n!("locales", fallback = "zh-CN");

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// JSON and form bodies; photo uploads have their own, larger limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// The instance's press writer (group commit).
    pub presses: keping_store::press::Presses,
    /// Requests per terminal, so one misbehaving device cannot flood the server.
    pub device_limiter: std::sync::Arc<governor::DefaultKeyedRateLimiter<i64>>,
    /// Wakes the outbox worker when something was queued, so alerts leave within a second.
    pub outbox_wake: std::sync::Arc<tokio::sync::Notify>,
    pub live: live::Live,
    /// Presses through QR pages, per visitor address and per QR code.
    pub qr_limits: std::sync::Arc<pages::QrLimits>,
    /// Customer imports followed by their progress tokens.
    pub imports: std::sync::Arc<api::customers::ImportWatch>,
}

impl AppState {
    pub fn new(db: Db) -> AppState {
        AppState {
            presses: keping_store::press::Presses::start(db.clone()),
            db,
            device_limiter: api::device::limiter(),
            outbox_wake: Default::default(),
            live: Default::default(),
            qr_limits: Default::default(),
            imports: Default::default(),
        }
    }
}

/// The whole application: API, pages, assets, health and metrics, with tracing and request ids.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api::router().split_for_parts();
    let openapi_json = openapi
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    Router::new()
        .merge(api)
        .merge(pages::router())
        .route("/api/openapi.json", get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi_json) }))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/static/{*path}", get(pages::asset))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(record_metrics))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
    } else {
        pages::not_found_page(req).await
    }
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(_) => Json(Health {
            status: "ok",
            database: state.db.backend.name(),
            version: VERSION,
        })
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    database: state.db.backend.name(),
                    version: VERSION,
                }),
            )
                .into_response()
        }
    }
}

/// The Prometheus recorder is process-wide; tests start many apps in one process, so it is made once.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // another recorder may already be installed (e.g. by an embedding program); then ours just stays empty
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        prometheus().render(),
    )
}

async fn record_metrics(req: Request, next: Next) -> Response {
    prometheus();
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// For PATCH bodies: a field left out is `None`, a field set to null is `Some(None)`.
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
