use super::{render, Shell};
use crate::auth::PageCaller;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use keping_store::accounts::{self, UserFilter};
use keping_store::customers::{self, Reminders};
use keping_store::org::{self, OrgFilter};

#[derive(askama::Template)]
#[template(path = "home.html")]
struct Home {
    shell: Shell,
    org_count: Option<usize>,
    staff_count: Option<usize>,
    /// For those who keep customers: birthdays, due follow-ups, pool returns.
    reminders: Option<Reminders>,
}

/// The landing page: a greeting and where to go next.
pub async fn home(State(state): State<AppState>, caller: PageCaller) -> Response {
    // counts are capped at a page of 500 ("500+"): the home page is no place for a full count
    let org_count = org::list(&state.db, &caller.scope, &OrgFilter::default(), 500, None)
        .await
        .ok()
        .map(|p| p.items.len());
    let staff_count = accounts::users(&state.db, &caller.scope, &UserFilter::default(), 500, None)
        .await
        .ok()
        .map(|p| p.items.len());
    let reminders = customers::reminders(&state.db, &caller.scope).await.ok();
    render(&Home {
        shell: Shell::new(&caller, "home"),
        org_count,
        staff_count,
        reminders,
    })
}
