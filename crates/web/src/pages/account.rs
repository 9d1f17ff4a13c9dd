//! 我的账号: one's own details and password.

use super::login::session_cookie;
use super::{error_page, render_status, FormError, Saved, Shell};
use crate::api::accounts::change_password as change;
use crate::auth::PageCaller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_store::accounts::{self, User};
use keping_store::tokens;
use serde::Deserialize;

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage {
    shell: Shell,
    me: User,
    notice: Option<String>,
    error: FormError,
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<Saved>,
) -> Response {
    let notice = q.notice(caller.locale);
    show(&state, &caller, notice, FormError::default()).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    repeat: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<PasswordForm>,
) -> Response {
    let changed = async {
        if f.new != f.repeat {
            return Err(ApiError::invalid(
                "repeat",
                "mismatch",
                "the two passwords differ",
            ));
        }
        change(&state, &caller.scope, &f.current, &f.new).await?;
        // the change ends every session, this one too; the person who just proved himself stays in
        Ok(tokens::create_session(&state.db, caller.scope.user_id, "browser").await?)
    }
    .await;
    match changed {
        Ok(secret) => (
            [(header::SET_COOKIE, session_cookie(&secret))],
            Redirect::to("/account?saved=password"),
        )
            .into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "password", e);
            show(&state, &caller, None, error).await
        }
    }
}

async fn show(
    state: &AppState,
    caller: &PageCaller,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "account").crumb("nav.account", "/account");
    match accounts::user(&state.db, &caller.scope, caller.scope.user_id).await {
        Ok(me) => {
            let page = AccountPage {
                shell,
                me,
                notice,
                error,
            };
            render_status(&page, page.error.status())
        }
        Err(e) => error_page(shell, e),
    }
}
