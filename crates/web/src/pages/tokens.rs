//! API 令牌: one's own sessions and personal tokens; a new token's secret is shown once.

use super::{empty_none, error_page, no_store, render_status, FormError, Saved, Shell};
use crate::auth::PageCaller;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_store::tokens::{self, Token};
use serde::Deserialize;

#[derive(askama::Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    shell: Shell,
    tokens: Vec<Token>,
    /// The secret of the token just made: shown in this answer and never again.
    secret: Option<String>,
    /// The create form as sent, kept after a refusal.
    name: String,
    days: String,
    notice: Option<String>,
    error: FormError,
}

impl TokensPage {
    fn kind_label(&self, kind: &str) -> String {
        self.shell.t(&format!("tokens.kind.{kind}"))
    }

    /// Sessions are named after the client that signed in ("browser", "api").
    fn name(&self, t: &Token) -> String {
        match t.kind.as_str() {
            "session" => self
                .shell
                .locale
                .try_t(&format!("tokens.client.{}", t.name))
                .unwrap_or_else(|| t.name.clone()),
            _ => t.name.clone(),
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<Saved>,
) -> Response {
    let notice = q.notice(caller.locale);
    show(
        &state,
        &caller,
        None,
        NewToken::default(),
        notice,
        FormError::default(),
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct NewToken {
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "empty_none")]
    expires_in_days: Option<i64>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<NewToken>,
) -> Response {
    match tokens::create_personal(&state.db, &caller.scope, &f.name, f.expires_in_days).await {
        Ok((_, secret)) => {
            let notice = Some(caller.locale.t("notice.token_created"));
            show(
                &state,
                &caller,
                Some(secret),
                NewToken::default(),
                notice,
                FormError::default(),
            )
            .await
        }
        Err(e) => {
            let error = FormError::new(caller.locale, "create", e);
            show(&state, &caller, None, f, None, error).await
        }
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match tokens::revoke(&state.db, &caller.scope, id).await {
        Ok(()) => Redirect::to("/tokens?saved=revoked").into_response(),
        Err(e) => error_page(Shell::new(&caller, "tokens"), e),
    }
}

async fn show(
    state: &AppState,
    caller: &PageCaller,
    secret: Option<String>,
    sent: NewToken,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "tokens").crumb("nav.tokens", "/tokens");
    let tokens = match tokens::list(&state.db, &caller.scope).await {
        Ok(t) => t,
        Err(e) => return error_page(shell, e),
    };
    let page = TokensPage {
        shell,
        tokens,
        secret,
        name: sent.name,
        days: sent
            .expires_in_days
            .map(|d| d.to_string())
            .unwrap_or_default(),
        notice,
        error,
    };
    // the page may carry a secret
    no_store(render_status(&page, page.error.status()))
}
