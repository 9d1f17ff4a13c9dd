//! Server-rendered pages (askama + htmx), in Chinese by default and English on request.

mod home;
mod login;

use crate::auth::PageCaller;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/locale", post(login::set_locale))
}

/// Vendored CSS, JS and fonts, compiled into the binary; cached by the browser for a day.
pub async fn asset(Path(path): Path<String>) -> Response {
    match Assets::get(&path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_string();
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "public, max-age=86400".to_string()),
                ],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// What every page's layout needs: who is signed in, his language and what the menu may show.
pub struct Shell {
    pub locale: Locale,
    pub user_name: String,
    pub permissions: std::collections::BTreeSet<String>,
    /// The menu entry to highlight.
    pub active: &'static str,
}

impl Shell {
    pub fn new(caller: &PageCaller, active: &'static str) -> Shell {
        Shell {
            locale: caller.locale,
            user_name: caller.name.clone(),
            permissions: caller.scope.permissions(),
            active,
        }
    }

    pub fn t(&self, key: &str) -> String {
        self.locale.t(key)
    }

    pub fn can(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    pub fn lang(&self) -> &'static str {
        self.locale.code()
    }
}

/// The language of a visitor who is not signed in: his cookie, else his browser's.
pub fn visitor_locale(headers: &HeaderMap) -> Locale {
    crate::auth::cookie(headers, "keping_lang")
        .map(Locale::parse)
        .unwrap_or_else(|| {
            Locale::from_accept_language(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })
}

#[derive(askama::Template)]
#[template(path = "not_found.html")]
struct NotFound {
    locale: Locale,
}

pub async fn not_found_page(req: Request) -> Response {
    let locale = visitor_locale(req.headers());
    match askama::Template::render(&NotFound { locale }) {
        Ok(html) => (StatusCode::NOT_FOUND, axum::response::Html(html)).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// Renders a template, answering 500 (and logging why) if it fails.
pub fn render<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn; it has been logged",
            )
                .into_response()
        }
    }
}
