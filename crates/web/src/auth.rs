//! Who is calling: a bearer token for the API, a session cookie for pages. Either way the
//! request gets the caller's [`Scope`], computed once, which every store call then takes.

use crate::error::ApiError;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keping_domain::scope::Scope;
use keping_store::accounts;

pub const SESSION_COOKIE: &str = "keping_session";

/// A caller of `/api/v1`, authenticated by `Authorization: Bearer <token>`.
pub struct Caller {
    pub scope: Scope,
    pub locale: Locale,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let (holder, scope) = accounts::caller(&state.db, secret)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Caller {
            scope,
            locale: Locale::parse(&holder.locale),
        })
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in person on a page. Without a live session the page sends him to the login.
pub struct PageCaller {
    pub scope: Scope,
    pub locale: Locale,
    pub name: String,
}

pub enum PageRejection {
    Login(String),
    Forbidden,
    Error(ApiError),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            PageRejection::Login(next) => {
                Redirect::to(&format!("/login?next={}", urlencode(&next))).into_response()
            }
            PageRejection::Forbidden => {
                (StatusCode::FORBIDDEN, "cross-site request refused").into_response()
            }
            PageRejection::Error(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = PageRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET && parts.method != Method::HEAD && !same_origin(parts) {
            return Err(PageRejection::Forbidden);
        }
        let next = parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        let next = if parts.method == Method::GET {
            next
        } else {
            "/".to_string()
        };
        let secret = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or_else(|| PageRejection::Login(next.clone()))?;
        let (holder, scope) = accounts::caller(&state.db, secret)
            .await
            .map_err(|e| PageRejection::Error(e.into()))?
            .ok_or(PageRejection::Login(next))?;
        Ok(PageCaller {
            scope,
            locale: Locale::parse(&holder.locale),
            name: holder.name,
        })
    }
}

/// The session cookie is SameSite=Strict; a form post whose Origin names another host is refused too.
pub fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin.split_once("://").map(|(_, h)| h) == Some(host)
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
