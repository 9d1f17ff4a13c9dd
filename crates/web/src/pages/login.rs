use super::{render, visitor_locale};
use crate::auth::{cookie, PageCaller, SESSION_COOKIE};
use crate::i18n::Locale;
use crate::login::{attempt, LoginError};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_store::{accounts, tokens};
use serde::Deserialize;

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage {
    locale: Locale,
    next: String,
    username: String,
    error: Option<String>,
}

impl LoginPage {
    fn t(&self, key: &str) -> String {
        self.locale.t(key)
    }
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
    lang: Option<String>,
}

/// Only local paths are followed after login, so the login page cannot be used to send people elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn form(headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let locale = q
        .lang
        .as_deref()
        .map_or_else(|| visitor_locale(&headers), Locale::parse);
    let page = render(&LoginPage {
        locale,
        next: safe_next(q.next.as_deref()),
        username: String::new(),
        error: None,
    });
    if q.lang.is_some() {
        (
            [(
                header::SET_COOKIE,
                format!(
                    "keping_lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
                    locale.code()
                ),
            )],
            page,
        )
            .into_response()
    } else {
        page
    }
}

/// The browser's session cookie, for a login and for the new session after a password change.
pub fn session_cookie(secret: &str) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        tokens::SESSION_DAYS * 86_400
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let locale = visitor_locale(&headers);
    let next = safe_next(f.next.as_deref());
    match attempt(&state, &f.username, &f.password, "browser").await {
        Ok((secret, ..)) => (
            [(header::SET_COOKIE, session_cookie(&secret))],
            Redirect::to(&next),
        )
            .into_response(),
        Err(e) => {
            let error = match e {
                LoginError::WrongPair => locale.t("login.wrong_pair"),
                LoginError::Locked { minutes } => locale
                    .t("login.locked")
                    .replace("{minutes}", &minutes.to_string()),
                LoginError::Disabled => locale.t("login.disabled"),
                LoginError::Store(e) => {
                    tracing::error!(error = %e, "login failed");
                    locale.t("error.internal")
                }
            };
            let mut response = render(&LoginPage {
                locale,
                next,
                username: f.username,
                error: Some(error),
            });
            *response.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            response
        }
    }
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = tokens::revoke_secret(&state.db, secret).await {
            tracing::error!(error = %e, "logout failed");
        }
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

#[derive(Deserialize)]
pub struct LocaleForm {
    locale: String,
    back: Option<String>,
}

/// The language switch: remembered on the account, so it follows the person to any browser.
pub async fn set_locale(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<LocaleForm>,
) -> Response {
    let locale = Locale::parse(&f.locale);
    if let Err(e) = accounts::set_locale(&state.db, caller.scope.user_id, locale.code()).await {
        return crate::error::ApiError::from(e).into_response();
    }
    let cookie = format!(
        "keping_lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
        locale.code()
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&safe_next(f.back.as_deref())),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_redirects() {
        assert_eq!(super::safe_next(Some("/orgs?x=1")), "/orgs?x=1");
        assert_eq!(super::safe_next(Some("//evil.example")), "/");
        assert_eq!(super::safe_next(Some("https://evil.example")), "/");
        assert_eq!(super::safe_next(None), "/");
    }
}
