//! 机构设置: the org tree on the left; the chosen node's details and forms on the right.

use super::{
    choices, empty_none, error_page, notice, org_tree, render_status, Choice, FormError, Shell,
    TreeRow,
};
use crate::auth::PageCaller;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::org::{OrgKind, DEFAULT_TIMEZONE};
use keping_store::org::{self, NewOrg, Org, OrgPatch};
use keping_store::StoreError;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(askama::Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    shell: Shell,
    rows: Vec<TreeRow>,
    selected: Option<Selected>,
    /// The "add child" form; with an empty tree, the "first org" form.
    child: Fields,
    kinds: Vec<Choice>,
    notice: Option<String>,
    error: FormError,
}

struct Selected {
    org: Org,
    /// Names from the top of the caller's tree down to the parent.
    lineage: Vec<String>,
    children: usize,
    edit: Fields,
    /// The zone the node follows when it sets none of its own.
    inherited_timezone: String,
    /// Where the node may move: every visible node outside its own subtree.
    parents: Vec<Parent>,
}

struct Parent {
    id: i64,
    label: String,
    current: bool,
}

/// What the edit and add forms show.
#[derive(Default)]
struct Fields {
    name: String,
    code: String,
    kind: String,
    timezone: String,
    enabled: bool,
}

impl OrgsPage {
    fn is_selected(&self, id: &i64) -> bool {
        self.selected.as_ref().is_some_and(|s| s.org.id == *id)
    }

    /// Branches stay open near the top and along the way to the chosen node.
    fn is_open(&self, row: &TreeRow) -> bool {
        row.level < 2
            || self
                .selected
                .as_ref()
                .is_some_and(|s| s.org.path.starts_with(&row.org.path))
    }

    fn kind_label(&self, code: &str) -> String {
        self.shell.t(&format!("org.kind.{code}"))
    }
}

#[derive(Deserialize)]
pub struct OrgsQuery {
    #[serde(default, deserialize_with = "empty_none")]
    id: Option<i64>,
    saved: Option<String>,
}

/// One form shape for add, edit, disable and move: each sends the fields it has.
#[derive(Deserialize, Default)]
pub struct OrgForm {
    name: Option<String>,
    code: Option<String>,
    kind: Option<String>,
    timezone: Option<String>,
    #[serde(default, deserialize_with = "empty_none")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "empty_none")]
    parent_id: Option<i64>,
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<OrgsQuery>,
) -> Response {
    let notice = notice(caller.locale, q.saved.as_deref());
    show(
        &state,
        &caller,
        q.id,
        notice,
        FormError::default(),
        OrgForm::default(),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<OrgForm>,
) -> Response {
    let new = NewOrg {
        name: f.name.clone().unwrap_or_default(),
        code: f.code.clone().unwrap_or_default(),
        parent_id: f.parent_id,
        kind: f.kind.clone().filter(|k| !k.is_empty()),
        timezone: None,
    };
    match org::create(&state.db, &caller.scope, new).await {
        Ok(o) => Redirect::to(&format!("/orgs?id={}&saved=created", o.id)).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "child", e);
            show(&state, &caller, f.parent_id, None, error, f).await
        }
    }
}

pub async fn update(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<OrgForm>,
) -> Response {
    let patch = OrgPatch {
        name: f.name.clone(),
        code: f.code.clone(),
        kind: f.kind.clone(),
        // a blank zone returns the node to the one it inherits
        timezone: f
            .timezone
            .as_deref()
            .map(|t| Some(t.trim().to_string()).filter(|t| !t.is_empty())),
        enabled: f.enabled,
    };
    // the disable and enable buttons send nothing but the state
    let saved = match (&f.name, f.enabled) {
        (None, Some(false)) => "disabled",
        (None, Some(true)) => "enabled",
        _ => "saved",
    };
    match org::update(&state.db, &caller.scope, id, patch).await {
        Ok(_) => Redirect::to(&format!("/orgs?id={id}&saved={saved}")).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "edit", e);
            show(&state, &caller, Some(id), None, error, f).await
        }
    }
}

pub async fn move_node(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<OrgForm>,
) -> Response {
    let moved = match f.parent_id {
        Some(parent) => org::move_to(&state.db, &caller.scope, id, parent)
            .await
            .map_err(ApiError::from),
        None => Err(ApiError::invalid(
            "parent_id",
            "required",
            "choose the new parent",
        )),
    };
    match moved {
        Ok(_) => Redirect::to(&format!("/orgs?id={id}&saved=moved")).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "move", e);
            show(&state, &caller, Some(id), None, error, f).await
        }
    }
}

/// Draws the page; after a failed post the form that failed shows what was sent and why.
async fn show(
    state: &AppState,
    caller: &PageCaller,
    id: Option<i64>,
    notice: Option<String>,
    error: FormError,
    sent: OrgForm,
) -> Response {
    let shell = Shell::new(caller, "orgs").crumb("nav.orgs", "/orgs");
    let rows = match org_tree(&state.db, &caller.scope).await {
        Ok(rows) => rows,
        Err(e) => return error_page(shell, e),
    };
    let chosen = match id {
        Some(id) => match rows.iter().find(|r| r.org.id == id) {
            Some(r) => Some(r),
            None => return error_page(shell, StoreError::NotFound),
        },
        None => rows.first(),
    };
    let selected = chosen.map(|row| {
        let sent = error.on("edit").is_some().then_some(&sent);
        selected(row, &rows, sent)
    });
    let mut child = Fields {
        kind: OrgKind::default_for_depth(chosen.map_or(0, |r| r.org.depth as usize + 1))
            .code()
            .to_string(),
        ..Fields::default()
    };
    if error.on("child").is_some() {
        overlay(&mut child, &sent);
    }
    let page = OrgsPage {
        kinds: choices(caller.locale, "org.kind", &OrgKind::ALL.map(OrgKind::code)),
        shell,
        rows,
        selected,
        child,
        notice,
        error,
    };
    render_status(&page, page.error.status())
}

fn selected(row: &TreeRow, rows: &[TreeRow], sent: Option<&OrgForm>) -> Selected {
    let org = row.org.clone();
    let by_id: HashMap<i64, &Org> = rows.iter().map(|r| (r.org.id, &r.org)).collect();
    let ids = org.org_path().ids();
    let lineage = ids[..ids.len() - 1]
        .iter()
        .filter_map(|id| by_id.get(id).map(|o| o.name.clone()))
        .collect();
    let inherited_timezone = if org.timezone_inherited {
        org.timezone.clone()
    } else {
        org.parent_id
            .and_then(|p| by_id.get(&p))
            .map_or_else(|| DEFAULT_TIMEZONE.to_string(), |p| p.timezone.clone())
    };
    let mut edit = Fields {
        name: org.name.clone(),
        code: org.code.clone(),
        kind: org.kind.clone(),
        timezone: if org.timezone_inherited {
            String::new()
        } else {
            org.timezone.clone()
        },
        enabled: org.enabled,
    };
    if let Some(sent) = sent {
        overlay(&mut edit, sent);
    }
    Selected {
        children: rows
            .iter()
            .filter(|r| r.org.parent_id == Some(org.id))
            .count(),
        parents: rows
            .iter()
            .filter(|r| !r.org.path.starts_with(&org.path))
            .map(|r| Parent {
                id: r.org.id,
                label: format!("{}{}", r.indent(), r.org.name),
                current: org.parent_id == Some(r.org.id),
            })
            .collect(),
        lineage,
        inherited_timezone,
        edit,
        org,
    }
}

/// Puts what was sent back into the form, so a mistake costs one correction, not a retype.
fn overlay(fields: &mut Fields, sent: &OrgForm) {
    let put = |field: &mut String, value: &Option<String>| {
        if let Some(v) = value {
            field.clone_from(v);
        }
    };
    put(&mut fields.name, &sent.name);
    put(&mut fields.code, &sent.code);
    put(&mut fields.kind, &sent.kind);
    put(&mut fields.timezone, &sent.timezone);
    if let Some(e) = sent.enabled {
        fields.enabled = e;
    }
}
