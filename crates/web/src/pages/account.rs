//! 我的账号: one's own details, password and the daily reminder e-mail.

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
use keping_store::customers::reminders;
use keping_store::tokens;
use serde::Deserialize;

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage {
    shell: Shell,
    me: User,
    notice: Option<String>,
    error: FormError,
    /// Whether the daily reminder e-mail is on.
    reminder_email: bool,
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

#[derive(Deserialize)]
pub struct ReminderForm {
    /// Present (a ticked box) to switch the e-mail on.
    on: Option<String>,
}

pub async fn set_reminder_email(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<ReminderForm>,
) -> Response {
    match reminders::set_reminder_email(&state.db, caller.scope.user_id, f.on.is_some()).await {
        Ok(()) => Redirect::to("/account?saved=saved").into_response(),
        Err(e) => error_page(Shell::new(&caller, "account"), e),
    }
}

async fn show(
    state: &AppState,
    caller: &PageCaller,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "account").crumb("nav.account", "/account");
    let me = accounts::user(&state.db, &caller.scope, caller.scope.user_id).await;
    let reminder_email = reminders::reminder_email(&state.db, caller.scope.user_id).await;
    match me.and_then(|me| Ok((me, reminder_email?))) {
        Ok((me, reminder_email)) => {
            let page = AccountPage {
                shell,
                me,
                notice,
                error,
                reminder_email,
            };
            render_status(&page, page.error.status())
        }
        Err(e) => error_page(shell, e),
    }
}
