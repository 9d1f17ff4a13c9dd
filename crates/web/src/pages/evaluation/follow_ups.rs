//! 待跟进: follow-ups opened by negative ratings, open and handled; closing one takes a note.

use crate::auth::PageCaller;
use crate::pages::{error_page, notice, render_status, FormError, Pager, Shell};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_store::evaluation::{self as store, FollowUp, FollowUpFilter};
use serde::Deserialize;

const PAGE_SIZE: i64 = 50;

#[derive(askama::Template)]
#[template(path = "follow_ups.html")]
struct FollowUpsPage {
    shell: Shell,
    /// open or closed: the tab shown.
    status: String,
    items: Vec<FollowUp>,
    pager: Pager,
    /// The item whose close form was refused, and the note it carried.
    failed: Option<(i64, String)>,
    notice: Option<String>,
    error: FormError,
}

impl FollowUpsPage {
    fn is_open_tab(&self) -> bool {
        self.status == "open"
    }

    fn failed_note(&self, id: &i64) -> Option<&str> {
        self.failed
            .as_ref()
            .filter(|(f, _)| f == id)
            .map(|(_, note)| note.as_str())
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    cursor: Option<String>,
    saved: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<ListQuery>,
) -> Response {
    let notice = notice(caller.locale, q.saved.as_deref());
    draw(&state, &caller, q, None, notice, FormError::default()).await
}

#[derive(Deserialize)]
pub struct CloseForm {
    #[serde(default)]
    note: String,
}

pub async fn close(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<CloseForm>,
) -> Response {
    match store::close_follow_up(&state.db, &caller.scope, id, &f.note).await {
        Ok(_) => Redirect::to("/follow-ups?saved=follow_up_closed").into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "close", e);
            let q = ListQuery {
                status: "open".into(),
                cursor: None,
                saved: None,
            };
            draw(&state, &caller, q, Some((id, f.note)), None, error).await
        }
    }
}

async fn draw(
    state: &AppState,
    caller: &PageCaller,
    q: ListQuery,
    failed: Option<(i64, String)>,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "follow_ups").crumb("nav.follow_ups", "/follow-ups");
    let status = if q.status == "closed" {
        "closed"
    } else {
        "open"
    };
    let filter = FollowUpFilter {
        status: Some(status.to_string()),
        org_id: None,
    };
    let found = match store::follow_ups(
        &state.db,
        &caller.scope,
        &filter,
        PAGE_SIZE,
        q.cursor.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return error_page(shell, e),
    };
    let page = FollowUpsPage {
        pager: Pager::new(
            "/follow-ups",
            &[("status", status)],
            q.cursor.as_deref(),
            found.next_cursor.as_deref(),
        ),
        status: status.to_string(),
        shell,
        items: found.items,
        failed,
        notice,
        error,
    };
    render_status(&page, page.error.status())
}
