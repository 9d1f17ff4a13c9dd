//! 常用筛选 on the customer list page: save the list's current filter under a name, apply one,
//! delete one (after a confirmation in the browser).

use crate::auth::PageCaller;
use crate::pages::{error_page, link, FormFields, Shell};
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_store::customers::saved_filters as store;

fn shell(caller: &PageCaller) -> Shell {
    Shell::new(caller, "customers").crumb("nav.customers", "/customers")
}

/// Saves the page's filter (q, kind, pool) as the API writes it (pool → in_pool=true).
pub async fn save(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormFields(form);
    let (q, kind, pool) = (form.text("q"), form.text("kind"), form.text("pool") == "1");
    let api_query = link(
        "",
        &[
            ("q", q.trim()),
            ("kind", kind.trim()),
            ("in_pool", if pool { "true" } else { "" }),
        ],
    );
    let query = match crate::api::customer_filters::checked_query(&api_query) {
        Ok(q) => q,
        Err(e) => return error_page(shell(&caller), e),
    };
    let back = link(
        "/customers",
        &[
            ("q", q.trim()),
            ("kind", kind.trim()),
            ("pool", if pool { "1" } else { "" }),
        ],
    );
    match store::save(&state.db, &caller.scope, &form.text("name"), &query).await {
        Ok(_) => {
            let sep = if back.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{back}{sep}saved=saved")).into_response()
        }
        Err(e) => error_page(shell(&caller), e),
    }
}

/// Opens the list with a saved filter.
pub async fn apply(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match store::get(&state.db, &caller.scope, id).await {
        Ok(f) => {
            let query = f.query.replace("in_pool=true", "pool=1");
            Redirect::to(&format!("/customers?{query}")).into_response()
        }
        Err(e) => error_page(shell(&caller), e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match store::delete(&state.db, &caller.scope, id).await {
        Ok(()) => Redirect::to("/customers?saved=deleted").into_response(),
        Err(e) => error_page(shell(&caller), e),
    }
}
