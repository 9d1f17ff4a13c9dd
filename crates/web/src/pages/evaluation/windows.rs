//! 窗口管理: the window list with live search and an add form; one window's page with its
//! business type and its terminals (register, revoke, new token — a token is shown once).

use crate::auth::PageCaller;
use crate::pages::{
    choices, empty_none, error_page, no_store, notice, org_choices, render, render_status, Choice,
    FormError, Pager, Saved, Shell, TreeRow,
};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_store::evaluation::{
    self as store, BusinessType, NewWindow, Terminal, Window, WindowFilter, WindowPatch,
};
use keping_store::StoreError;
use serde::Deserialize;

const PAGE_SIZE: i64 = 50;
const TERMINAL_KINDS: [&str; 3] = ["keypad", "kiosk", "qr"];

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default, deserialize_with = "empty_none")]
    org: Option<i64>,
    cursor: Option<String>,
    saved: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "windows.html", blocks = ["results"])]
struct WindowsPage {
    shell: Shell,
    q: String,
    org: i64,
    orgs: Vec<TreeRow>,
    windows: Vec<Window>,
    pager: Pager,
    filtered: bool,
    /// The add form, as sent when it was refused.
    new: NewFields,
    notice: Option<String>,
    error: FormError,
}

impl WindowsPage {
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

/// The list; an htmx request (the live search) gets only the table.
pub async fn list(
    State(state): State<AppState>,
    caller: PageCaller,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let notice = notice(caller.locale, q.saved.as_deref());
    let partial = headers.contains_key("hx-request");
    let new = NewFields {
        org_id: q.org,
        ..NewFields::default()
    };
    let mut response = draw_list(
        &state,
        &caller,
        q,
        partial,
        new,
        notice,
        FormError::default(),
    )
    .await;
    // the same URL answers a whole page or a fragment; caches must keep them apart
    response
        .headers_mut()
        .insert(header::VARY, header::HeaderValue::from_static("HX-Request"));
    response
}

pub async fn create(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<NewFields>,
) -> Response {
    let new = NewWindow {
        org_id: f.org_id.unwrap_or_default(),
        name: f.name.clone(),
        code: f.code.clone(),
    };
    match store::create_window(&state.db, &caller.scope, new).await {
        Ok(w) => Redirect::to(&format!("/windows/{}?saved=created", w.id)).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "new", e);
            let q = ListQuery {
                q: String::new(),
                org: None,
                cursor: None,
                saved: None,
            };
            draw_list(&state, &caller, q, false, f, None, error).await
        }
    }
}

async fn draw_list(
    state: &AppState,
    caller: &PageCaller,
    q: ListQuery,
    partial: bool,
    new: NewFields,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "windows").crumb("nav.windows", "/windows");
    let filter = WindowFilter {
        q: Some(q.q.trim().to_string()).filter(|s| !s.is_empty()),
        org_id: q.org,
    };
    let found = match store::windows(
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
    let orgs = if partial {
        Vec::new()
    } else {
        match org_choices(&state.db, &caller.scope).await {
            Ok(o) => o,
            Err(e) => return error_page(shell, e),
        }
    };
    let org = q.org.map(|o| o.to_string()).unwrap_or_default();
    let params = [("q", q.q.as_str()), ("org", org.as_str())];
    let page = WindowsPage {
        pager: Pager::new(
            "/windows",
            &params,
            q.cursor.as_deref(),
            found.next_cursor.as_deref(),
        ),
        filtered: filter.q.is_some() || filter.org_id.is_some(),
        shell,
        q: q.q,
        org: q.org.unwrap_or_default(),
        orgs,
        windows: found.items,
        new,
        notice,
        error,
    };
    if partial {
        render(&page.as_results())
    } else {
        render_status(&page, page.error.status())
    }
}

// ---------------------------------------------------------------- one window

#[derive(askama::Template)]
#[template(path = "window.html")]
struct WindowPage {
    shell: Shell,
    window: Window,
    edit: EditFields,
    /// The types this window may take; empty for those who may not change the window.
    business_types: Vec<BusinessType>,
    /// None for those who may see neither terminals nor their changes.
    terminals: Option<Vec<Terminal>>,
    kinds: Vec<Choice>,
    terminal: TerminalFields,
    /// A token just issued: shown in this answer and never again.
    issued: Option<Issued>,
    notice: Option<String>,
    error: FormError,
}

struct EditFields {
    name: String,
    code: String,
    /// 0: none.
    business_type_id: i64,
}

#[derive(Deserialize, Default)]
pub struct TerminalFields {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

struct Issued {
    terminal: Terminal,
    token: String,
}

impl WindowPage {
    fn kind_label(&self, kind: &str) -> String {
        self.shell.t(&format!("terminals.kind.{kind}"))
    }

    /// How a just-issued token goes into a terminal of this kind.
    fn kind_hint(&self, kind: &str) -> String {
        self.shell.t(&format!("terminals.hint.{kind}"))
    }
}

/// One form shape for the edit form and the close / reopen buttons: each sends what it has.
#[derive(Deserialize)]
pub struct WindowForm {
    name: Option<String>,
    code: Option<String>,
    /// Blank: no business type.
    business_type_id: Option<String>,
    #[serde(default, deserialize_with = "empty_none")]
    is_open: Option<bool>,
}

pub async fn show(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Query(q): Query<Saved>,
) -> Response {
    let notice = q.notice(caller.locale);
    draw(
        &state,
        &caller,
        id,
        Draw {
            notice,
            ..Draw::default()
        },
    )
    .await
}

pub async fn update(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<WindowForm>,
) -> Response {
    // the close and reopen buttons send nothing but the state
    let saved = match (&f.name, f.is_open) {
        (None, Some(false)) => "window_closed",
        (None, Some(true)) => "window_reopened",
        _ => "saved",
    };
    let patch = WindowPatch {
        name: f.name.clone(),
        code: f.code.clone(),
        is_open: f.is_open,
        business_type_id: f.business_type_id.as_deref().map(|v| v.trim().parse().ok()),
    };
    match store::update_window(&state.db, &caller.scope, id, patch).await {
        Ok(_) => Redirect::to(&format!("/windows/{id}?saved={saved}")).into_response(),
        Err(e) => {
            let redraw = Draw {
                error: FormError::new(caller.locale, "edit", e),
                sent: Some(f),
                ..Draw::default()
            };
            draw(&state, &caller, id, redraw).await
        }
    }
}

pub async fn register_terminal(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<TerminalFields>,
) -> Response {
    let name = Some(f.name.as_str()).filter(|n| !n.trim().is_empty());
    let redraw = match store::create_terminal(&state.db, &caller.scope, id, &f.kind, name).await {
        Ok((terminal, token)) => Draw {
            notice: Some(caller.locale.t("notice.terminal_created")),
            issued: Some(Issued { terminal, token }),
            ..Draw::default()
        },
        Err(e) => Draw {
            error: FormError::new(caller.locale, "terminal", e),
            terminal: f,
            ..Draw::default()
        },
    };
    draw(&state, &caller, id, redraw).await
}

pub async fn revoke_terminal(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match store::revoke_terminal(&state.db, &caller.scope, id).await {
        Ok(t) => Redirect::to(&format!("/windows/{}?saved=terminal_revoked", t.window_id))
            .into_response(),
        Err(e) => error_page(Shell::new(&caller, "windows"), e),
    }
}

pub async fn rotate_terminal(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match store::rotate_terminal(&state.db, &caller.scope, id).await {
        Ok((terminal, token)) => {
            let window = terminal.window_id;
            let redraw = Draw {
                notice: Some(caller.locale.t("notice.token_rotated")),
                issued: Some(Issued { terminal, token }),
                ..Draw::default()
            };
            draw(&state, &caller, window, redraw).await
        }
        Err(e) => error_page(Shell::new(&caller, "windows"), e),
    }
}

/// What a drawing of the window page carries besides the stored window.
#[derive(Default)]
struct Draw {
    notice: Option<String>,
    error: FormError,
    /// The edit form as sent, when it was refused.
    sent: Option<WindowForm>,
    /// The register form as sent, when it was refused.
    terminal: TerminalFields,
    issued: Option<Issued>,
}

async fn draw(state: &AppState, caller: &PageCaller, id: i64, d: Draw) -> Response {
    let shell = Shell::new(caller, "windows").crumb("nav.windows", "/windows");
    let scope = &caller.scope;
    let window = match store::window(&state.db, scope, id).await {
        Ok(w) => w,
        Err(e) => return error_page(shell, e),
    };
    let shell = shell.crumb(&window.name, &format!("/windows/{id}"));
    let business_types = if scope.has("window.manage") {
        match store::business_types(&state.db, scope, Some(window.org_id)).await {
            Ok(t) => t,
            Err(e) => return error_page(shell, e),
        }
    } else {
        Vec::new()
    };
    let terminals = match store::terminals(&state.db, scope, id).await {
        Ok(t) => Some(t),
        Err(StoreError::Forbidden(_)) => None,
        Err(e) => return error_page(shell, e),
    };
    let mut edit = EditFields {
        name: window.name.clone(),
        code: window.code.clone(),
        business_type_id: window.business_type_id.unwrap_or_default(),
    };
    if let Some(sent) = d.sent {
        if let Some(n) = sent.name {
            edit.name = n;
        }
        if let Some(c) = sent.code {
            edit.code = c;
        }
        if let Some(bt) = sent.business_type_id {
            edit.business_type_id = bt.trim().parse().unwrap_or_default();
        }
    }
    let mut terminal = d.terminal;
    if terminal.kind.is_empty() {
        terminal.kind = "keypad".into();
    }
    let page = WindowPage {
        kinds: choices(caller.locale, "terminals.kind", &TERMINAL_KINDS),
        shell,
        window,
        edit,
        business_types,
        terminals,
        terminal,
        issued: d.issued,
        notice: d.notice,
        error: d.error,
    };
    // the page may carry a token
    no_store(render_status(&page, page.error.status()))
}
