//! 角色权限: roles as ticked permissions plus a data level.

use super::{error_page, level_name, render, render_status, FormError, FormFields, Saved, Shell};
use crate::auth::PageCaller;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::auth::{DataLevel, PERMISSIONS};
use keping_store::accounts::{self, Role, RoleInput};
use keping_store::StoreError;
use std::collections::BTreeSet;

/// The modules of the permission catalogue, in the order the role form shows them.
const MODULES: [&str; 4] = ["platform", "evaluation", "customers", "grading"];

#[derive(askama::Template)]
#[template(path = "roles.html")]
struct RolesPage {
    shell: Shell,
    roles: Vec<Role>,
    notice: Option<String>,
}

impl RolesPage {
    fn level_label(&self, code: &str) -> String {
        level_name(self.shell.locale, code)
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<Saved>,
) -> Response {
    let shell = Shell::new(&caller, "roles").crumb("nav.roles", "/roles");
    match accounts::roles(&state.db, &caller.scope).await {
        Ok(roles) => render(&RolesPage {
            notice: q.notice(caller.locale),
            shell,
            roles,
        }),
        Err(e) => error_page(shell, e),
    }
}

#[derive(askama::Template)]
#[template(path = "role_form.html")]
struct RoleForm {
    shell: Shell,
    /// None while creating.
    role: Option<Role>,
    name: String,
    level: String,
    modules: Vec<Module>,
    levels: Vec<Level>,
    notice: Option<String>,
    error: FormError,
}

impl RoleForm {
    /// The built-in role cannot change; someone who only assigns roles may look, not edit.
    fn read_only(&self) -> bool {
        self.role.as_ref().is_some_and(|r| r.builtin) || !self.shell.can("role.manage")
    }
}

struct Module {
    code: &'static str,
    label: String,
    items: Vec<Item>,
}

impl Module {
    fn all_checked(&self) -> bool {
        self.items.iter().all(|i| i.checked)
    }
}

struct Item {
    code: &'static str,
    label: String,
    checked: bool,
}

struct Level {
    code: &'static str,
    label: String,
    hint: String,
}

/// Draws the role form with `values` (the stored role, or what was sent); 422 with an error.
fn draw(
    caller: &PageCaller,
    role: Option<Role>,
    values: RoleInput,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let locale = caller.locale;
    let shell = Shell::new(caller, "roles").crumb("nav.roles", "/roles");
    let shell = match &role {
        Some(r) => shell.crumb(&r.name, &format!("/roles/{}", r.id)),
        None => shell.crumb("roles.new", "/roles/new"),
    };
    let ticked: BTreeSet<&str> = values.permissions.iter().map(String::as_str).collect();
    let modules = MODULES
        .iter()
        .map(|m| Module {
            code: m,
            label: locale.t(&format!("roles.module.{m}")),
            items: PERMISSIONS
                .iter()
                .filter(|p| p.module == *m)
                .map(|p| Item {
                    code: p.code,
                    label: locale.pick(p.name_zh, p.name_en).to_string(),
                    checked: ticked.contains(p.code),
                })
                .collect(),
        })
        .collect();
    let levels = DataLevel::ALL
        .iter()
        .map(|l| Level {
            code: l.code(),
            label: level_name(locale, l.code()),
            hint: locale.t(&format!("roles.level_hint.{}", l.code())),
        })
        .collect();
    let form = RoleForm {
        shell,
        role,
        name: values.name,
        level: values.data_level,
        modules,
        levels,
        notice,
        error,
    };
    render_status(&form, form.error.status())
}

fn values_of(role: &Role) -> RoleInput {
    RoleInput {
        name: role.name.clone(),
        permissions: role.permissions.clone(),
        data_level: role.data_level.clone(),
    }
}

fn sent(form: &FormFields) -> RoleInput {
    RoleInput {
        name: form.text("name"),
        permissions: form
            .all("permissions")
            .into_iter()
            .map(str::to_string)
            .collect(),
        data_level: form.text("data_level"),
    }
}

pub async fn new(caller: PageCaller) -> Response {
    if !caller.scope.has("role.manage") {
        let shell = Shell::new(&caller, "roles");
        return error_page(shell, StoreError::Forbidden("role.manage"));
    }
    let blank = RoleInput {
        name: String::new(),
        permissions: Vec::new(),
        data_level: DataLevel::OrgAndChildren.code().to_string(),
    };
    draw(&caller, None, blank, None, FormError::default())
}

pub async fn edit(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Query(q): Query<Saved>,
) -> Response {
    match accounts::role(&state.db, &caller.scope, id).await {
        Ok(role) => {
            let values = values_of(&role);
            let notice = q.notice(caller.locale);
            draw(&caller, Some(role), values, notice, FormError::default())
        }
        Err(e) => error_page(Shell::new(&caller, "roles"), e),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormFields(form);
    match accounts::create_role(&state.db, &caller.scope, sent(&form)).await {
        Ok(r) => Redirect::to(&format!("/roles/{}?saved=created", r.id)).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "main", e);
            draw(&caller, None, sent(&form), None, error)
        }
    }
}

pub async fn update(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormFields(form);
    match accounts::update_role(&state.db, &caller.scope, id, sent(&form)).await {
        Ok(_) => Redirect::to(&format!("/roles/{id}?saved=saved")).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "main", e);
            match accounts::role(&state.db, &caller.scope, id).await {
                Ok(role) => draw(&caller, Some(role), sent(&form), None, error),
                Err(e) => error_page(Shell::new(&caller, "roles"), e),
            }
        }
    }
}

/// Deletes a role nobody holds; a refusal (built-in, in use) shows on the role's form.
pub async fn delete(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match accounts::delete_role(&state.db, &caller.scope, id).await {
        Ok(()) => Redirect::to("/roles?saved=deleted").into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "delete", e);
            match accounts::role(&state.db, &caller.scope, id).await {
                Ok(role) => {
                    let values = values_of(&role);
                    draw(&caller, Some(role), values, None, error)
                }
                Err(e) => error_page(Shell::new(&caller, "roles"), e),
            }
        }
    }
}
