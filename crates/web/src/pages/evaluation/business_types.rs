//! 业务类型: the business types in reach and the orgs above it, and a form to add one.

use crate::auth::PageCaller;
use crate::pages::{
    empty_none, error_page, org_choices, render_status, FormError, Saved, Shell, TreeRow,
};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_store::evaluation::{self as store, BusinessType, NewBusinessType};
use serde::Deserialize;

#[derive(askama::Template)]
#[template(path = "business_types.html")]
struct BusinessTypesPage {
    shell: Shell,
    types: Vec<BusinessType>,
    orgs: Vec<TreeRow>,
    /// The add form, as sent when it was refused.
    new: NewFields,
    notice: Option<String>,
    error: FormError,
}

impl BusinessTypesPage {
    /// Whether the add form has this org chosen.
    fn chosen(&self, org_id: &i64) -> bool {
        self.new.org_id == Some(*org_id)
    }
}

#[derive(Deserialize, Default)]
pub struct NewFields {
    #[serde(default, deserialize_with = "empty_none")]
    org_id: Option<i64>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    code: String,
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<Saved>,
) -> Response {
    let notice = q.notice(caller.locale);
    draw(
        &state,
        &caller,
        NewFields::default(),
        notice,
        FormError::default(),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<NewFields>,
) -> Response {
    let new = NewBusinessType {
        org_id: f.org_id.unwrap_or_default(),
        name: f.name.clone(),
        code: f.code.clone(),
    };
    match store::create_business_type(&state.db, &caller.scope, new).await {
        Ok(_) => Redirect::to("/business-types?saved=created").into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "new", e);
            draw(&state, &caller, f, None, error).await
        }
    }
}

#[derive(Deserialize)]
pub struct RenameFields {
    #[serde(default)]
    name: String,
}

pub async fn rename(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<RenameFields>,
) -> Response {
    let renamed = store::rename_business_type(&state.db, &caller.scope, id, &f.name).await;
    after_change(&state, &caller, renamed.map(|_| "saved")).await
}

pub async fn delete(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    let deleted = store::delete_business_type(&state.db, &caller.scope, id).await;
    after_change(&state, &caller, deleted.map(|()| "deleted")).await
}

/// Back to the list with a notice, or the list again with the refusal above the table.
async fn after_change(
    state: &AppState,
    caller: &PageCaller,
    done: Result<&str, keping_store::StoreError>,
) -> Response {
    match done {
        Ok(notice) => Redirect::to(&format!("/business-types?saved={notice}")).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "list", e);
            draw(state, caller, NewFields::default(), None, error).await
        }
    }
}

async fn draw(
    state: &AppState,
    caller: &PageCaller,
    new: NewFields,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "business_types").crumb("nav.business_types", "/business-types");
    let types = match store::business_types(&state.db, &caller.scope, None).await {
        Ok(t) => t,
        Err(e) => return error_page(shell, e),
    };
    let orgs = match org_choices(&state.db, &caller.scope).await {
        Ok(o) => o,
        Err(e) => return error_page(shell, e),
    };
    let page = BusinessTypesPage {
        shell,
        types,
        orgs,
        new,
        notice,
        error,
    };
    render_status(&page, page.error.status())
}
