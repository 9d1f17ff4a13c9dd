//! 客户档案 pages: the customer list with live search and the public pool, the customer card with
//! contacts, follow-ups and timeline, the new-customer form with its duplicate warning, the import
//! page with its dry run, and the caller-ID stream that opens a card when the phone rings.

use crate::api::customers::{progress_token, FinishOnDrop};
use crate::auth::PageCaller;
use crate::i18n::Locale;
use crate::pages::{
    empty_none, error_page, link, notice, render, render_status, FormError, Pager, Shell,
};
use crate::AppState;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::customers::{ActivityKind, CustomerKind, DuplicateMode};
use keping_store::customers::attachments::Attachment;
use keping_store::customers::{
    self as store, Colleague, CustomField, Customer, CustomerFilter, CustomerInput, Duplicate,
    ImportOptions, ImportOutcome, ImportSource, NewActivity, NewCustomer, Share, TimelineItem,
};
use keping_store::StoreError;
use serde::Deserialize;
use std::time::Duration;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

const PAGE_SIZE: i64 = 50;

pub(super) fn kind_name(locale: Locale, code: &str) -> String {
    CustomerKind::parse(code).map_or_else(
        || code.to_string(),
        |k| locale.pick(k.name_zh(), k.name_en()).to_string(),
    )
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    /// "1": the public pool.
    #[serde(default)]
    pool: String,
    /// The latest grade (with grading.view).
    #[serde(default)]
    grade: String,
    cursor: Option<String>,
    saved: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "customers.html", blocks = ["results"])]
struct ListPage {
    shell: Shell,
    q: String,
    kind: String,
    pool: bool,
    kinds: Vec<(&'static str, String)>,
    /// The grade filtered on, and the grades to choose from (empty without grading.view: no
    /// grade column, no grade filter).
    grade: String,
    grades: Vec<String>,
    customers: Vec<Customer>,
    pager: Pager,
    filtered: bool,
    /// The export of this very list (the API's, with the session).
    export_link: String,
    notice: Option<String>,
    /// The custom fields in force at the caller's org: a column each.
    fields: Vec<CustomField>,
    /// Whom the ticked customers can be given to (empty without customer.assign).
    owners: Vec<Colleague>,
    /// The caller's saved filters (常用筛选).
    saved_filters: Vec<keping_store::customers::saved_filters::SavedFilter>,
}

impl ListPage {
    fn kind_label(&self, code: &str) -> String {
        kind_name(self.shell.locale, code)
    }

    fn custom(&self, c: &Customer, code: &str) -> String {
        crate::pages::customer_edit::custom_text(c, code)
    }
}

pub(super) fn kinds(locale: Locale) -> Vec<(&'static str, String)> {
    CustomerKind::ALL
        .iter()
        .map(|k| (k.code(), locale.pick(k.name_zh(), k.name_en()).to_string()))
        .collect()
}

/// The list (or, with `pool=1`, the public pool); an htmx request gets only the table.
pub async fn list(
    State(state): State<AppState>,
    caller: PageCaller,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let pool = q.pool == "1";
    let shell = if pool {
        Shell::new(&caller, "customer_pool").crumb("nav.customer_pool", "/customers?pool=1")
    } else {
        Shell::new(&caller, "customers").crumb("nav.customers", "/customers")
    };
    let filter = CustomerFilter {
        q: Some(q.q.trim().to_string()).filter(|s| !s.is_empty()),
        kind: Some(q.kind.clone()).filter(|s| !s.is_empty()),
        in_pool: pool.then_some(true),
        grade: Some(q.grade.trim().to_string())
            .filter(|s| !s.is_empty() && caller.scope.has("grading.view")),
        ..Default::default()
    };
    let grades = if caller.scope.has("grading.view") {
        keping_store::grading::grade_labels(&state.db, &caller.scope)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let found = match store::list(
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
    let fields = store::fields(&state.db, &caller.scope, caller.scope.org_path.id())
        .await
        .unwrap_or_default();
    let owners = if caller.scope.has("customer.assign") {
        store::colleagues(&state.db, &caller.scope, "customer.assign")
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let saved_filters = keping_store::customers::saved_filters::list(&state.db, &caller.scope)
        .await
        .unwrap_or_default();
    let params = [
        ("q", q.q.as_str()),
        ("kind", q.kind.as_str()),
        ("pool", q.pool.as_str()),
        ("grade", q.grade.as_str()),
    ];
    let page = ListPage {
        pager: Pager::new(
            "/customers",
            &params,
            q.cursor.as_deref(),
            found.next_cursor.as_deref(),
        ),
        filtered: filter.q.is_some() || filter.kind.is_some() || filter.grade.is_some(),
        export_link: link(
            "/customers/export",
            &[
                ("q", q.q.as_str()),
                ("kind", q.kind.as_str()),
                ("pool", q.pool.as_str()),
            ],
        ),
        notice: notice(caller.locale, q.saved.as_deref()),
        kinds: kinds(caller.locale),
        fields,
        owners,
        saved_filters,
        shell,
        q: q.q,
        kind: q.kind,
        pool,
        grade: q.grade,
        grades,
        customers: found.items,
    };
    let mut response = if headers.contains_key("hx-request") {
        render(&page.as_results())
    } else {
        render(&page)
    };
    response
        .headers_mut()
        .insert(header::VARY, header::HeaderValue::from_static("HX-Request"));
    response
}

// ---------------------------------------------------------------- new customer

#[derive(Deserialize, Default)]
pub struct NewFields {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    intent: String,
    #[serde(default)]
    notes: String,
}

#[derive(askama::Template)]
#[template(path = "customer_form.html")]
struct FormPage {
    shell: Shell,
    f: NewFields,
    kinds: Vec<(&'static str, String)>,
    error: FormError,
}

#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    phone: String,
}

/// The new-customer form; `?phone=` fills the number in (caller-ID opens it so).
pub async fn new(caller: PageCaller, Query(q): Query<NewQuery>) -> Response {
    let shell = Shell::new(&caller, "customers")
        .crumb("nav.customers", "/customers")
        .crumb("customers.new", "/customers/new");
    render(&FormPage {
        kinds: kinds(caller.locale),
        shell,
        f: NewFields {
            phone: q.phone,
            ..Default::default()
        },
        error: FormError::default(),
    })
}

pub(super) fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn create(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<NewFields>,
) -> Response {
    let input = CustomerInput {
        kind: opt(&f.kind),
        name: Some(f.name.clone()),
        company: opt(&f.company),
        phone: opt(&f.phone),
        email: opt(&f.email),
        address: opt(&f.address),
        intent: opt(&f.intent),
        notes: opt(&f.notes),
        ..Default::default()
    };
    match store::create(
        &state.db,
        &caller.scope,
        NewCustomer {
            input,
            org_id: None,
            owner_id: None,
        },
    )
    .await
    {
        Ok(created) => {
            if created.duplicates.is_empty() {
                Redirect::to(&format!("/customers/{}?saved=created", created.customer.id))
                    .into_response()
            } else {
                // the duplicates are shown once, on the new card
                draw_card_with(
                    &state,
                    &caller,
                    created.customer.id,
                    created.duplicates,
                    None,
                    FormError::default(),
                )
                .await
            }
        }
        Err(e) => {
            let shell = Shell::new(&caller, "customers")
                .crumb("nav.customers", "/customers")
                .crumb("customers.new", "/customers/new");
            let page = FormPage {
                kinds: kinds(caller.locale),
                error: FormError::new(caller.locale, "new", e),
                shell,
                f,
            };
            render_status(&page, page.error.status())
        }
    }
}

// ---------------------------------------------------------------- the card

#[derive(askama::Template)]
#[template(path = "customer.html")]
struct CardPage {
    shell: Shell,
    c: Customer,
    timeline: Vec<TimelineItem>,
    duplicates: Vec<Duplicate>,
    activity_kinds: Vec<(&'static str, String)>,
    /// Whom it can be given to (empty without customer.assign).
    owners: Vec<Colleague>,
    /// Whom it can be shared with, and with whom it is (only for those who may change it).
    colleagues: Vec<Colleague>,
    shares: Vec<Share>,
    /// The custom fields in force at the customer's org.
    fields: Vec<CustomField>,
    attachments: Vec<Attachment>,
    notice: Option<String>,
    error: FormError,
}

impl CardPage {
    fn kind_label(&self, code: &str) -> String {
        kind_name(self.shell.locale, code)
    }

    fn custom(&self, code: &str) -> String {
        crate::pages::customer_edit::custom_text(&self.c, code)
    }

    /// A file size for people: 830 B, 12.4 KB, 3.1 MB.
    fn size(&self, bytes: &i64) -> String {
        let b = *bytes as f64;
        if b < 1024.0 {
            format!("{bytes} B")
        } else if b < 1024.0 * 1024.0 {
            format!("{:.1} KB", b / 1024.0)
        } else {
            format!("{:.1} MB", b / 1024.0 / 1024.0)
        }
    }

    fn action_label(&self, item: &TimelineItem) -> String {
        if item.kind == "activity" {
            ActivityKind::parse(&item.action).map_or_else(
                || item.action.clone(),
                |k| self.shell.locale.pick(k.name_zh(), k.name_en()).to_string(),
            )
        } else {
            self.shell
                .locale
                .try_t(&format!("customers.event.{}", item.action))
                .unwrap_or_else(|| item.action.clone())
        }
    }
}

#[derive(Deserialize)]
pub struct CardQuery {
    saved: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Query(q): Query<CardQuery>,
) -> Response {
    let notice = notice(caller.locale, q.saved.as_deref());
    draw_card_with(
        &state,
        &caller,
        id,
        Vec::new(),
        notice,
        FormError::default(),
    )
    .await
}

pub(super) async fn draw_card_with(
    state: &AppState,
    caller: &PageCaller,
    id: i64,
    duplicates: Vec<Duplicate>,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "customers").crumb("nav.customers", "/customers");
    let c = match store::get(&state.db, &caller.scope, id).await {
        Ok(c) => c,
        Err(e) => return error_page(shell, e),
    };
    let timeline = store::timeline(&state.db, &caller.scope, id, 100)
        .await
        .unwrap_or_default();
    let shell = shell.crumb(&c.name.clone(), &format!("/customers/{id}"));
    let owners = if caller.scope.has("customer.assign") {
        store::colleagues(&state.db, &caller.scope, "customer.assign")
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (colleagues, shares) = if c.can_edit == Some(true) {
        (
            store::colleagues(&state.db, &caller.scope, "customer.edit")
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|u| Some(u.id) != c.owner_id && u.id != caller.scope.user_id)
                .collect(),
            store::shares(&state.db, &caller.scope, id)
                .await
                .unwrap_or_default(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let fields = store::fields(&state.db, &caller.scope, c.org_id)
        .await
        .unwrap_or_default();
    let attachments = store::attachments::list(&state.db, &caller.scope, id)
        .await
        .unwrap_or_default();
    let page = CardPage {
        fields,
        attachments,
        owners,
        colleagues,
        shares,
        activity_kinds: ActivityKind::ALL
            .iter()
            .map(|k| {
                (
                    k.code(),
                    caller.locale.pick(k.name_zh(), k.name_en()).to_string(),
                )
            })
            .collect(),
        shell,
        c,
        timeline,
        duplicates,
        notice,
        error,
    };
    render_status(&page, page.error.status())
}

#[derive(Deserialize)]
pub struct ActivityFields {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    content: String,
    #[serde(default, deserialize_with = "empty_none")]
    next_follow_up_on: Option<String>,
}

pub async fn add_activity(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<ActivityFields>,
) -> Response {
    let new = NewActivity {
        kind: f.kind,
        content: f.content,
        contact_id: None,
        happened_at: None,
        next_follow_up_on: f.next_follow_up_on,
    };
    match store::add_activity(&state.db, &caller.scope, id, new).await {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved=recorded")).into_response(),
        Err(e) => {
            draw_card_with(
                &state,
                &caller,
                id,
                Vec::new(),
                None,
                FormError::new(caller.locale, "activity", e),
            )
            .await
        }
    }
}

pub async fn claim(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match store::claim(&state.db, &caller.scope, id).await {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved=claimed")).into_response(),
        Err(e) => {
            draw_card_with(
                &state,
                &caller,
                id,
                Vec::new(),
                None,
                FormError::new(caller.locale, "pool", e),
            )
            .await
        }
    }
}

pub async fn release(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match store::release(&state.db, &caller.scope, id, None).await {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved=released")).into_response(),
        Err(e) => {
            draw_card_with(
                &state,
                &caller,
                id,
                Vec::new(),
                None,
                FormError::new(caller.locale, "pool", e),
            )
            .await
        }
    }
}

// ---------------------------------------------------------------- import

#[derive(askama::Template)]
#[template(path = "customer_import.html")]
struct ImportPage {
    shell: Shell,
    outcome: Option<ImportOutcome>,
    dry_run: bool,
    error: FormError,
}

pub async fn import_form(caller: PageCaller) -> Response {
    let shell = Shell::new(&caller, "customer_import")
        .crumb("nav.customers", "/customers")
        .crumb("customers.import", "/customers/import");
    render(&ImportPage {
        shell,
        outcome: None,
        dry_run: true,
        error: FormError::default(),
    })
}

/// Runs the uploaded file as a dry run or for real, and shows what happened row by row.
pub async fn import(
    State(state): State<AppState>,
    caller: PageCaller,
    mut form: Multipart,
) -> Response {
    let shell = Shell::new(&caller, "customer_import")
        .crumb("nav.customers", "/customers")
        .crumb("customers.import", "/customers/import");
    let mut file = None;
    let mut dry_run = false;
    let mut duplicates = DuplicateMode::Skip;
    let mut progress = None;
    let mut _finish = None;
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().unwrap_or("upload").to_string();
        let Ok(bytes) = field.bytes().await else {
            break;
        };
        match name.as_str() {
            "file" if !bytes.is_empty() => {
                file = Some(ImportSource {
                    file_name,
                    bytes: bytes.to_vec(),
                })
            }
            "dry_run" => dry_run = &bytes[..] == b"1",
            // the page's script follows the import under a token of its own (without script: none)
            "progress" => {
                if let Ok(token) = progress_token(&String::from_utf8_lossy(&bytes)) {
                    let p = state.imports.follow(caller.scope.user_id, token);
                    _finish = Some(FinishOnDrop(p.clone()));
                    progress = Some(p);
                }
            }
            "duplicates" => {
                duplicates = DuplicateMode::parse(&String::from_utf8_lossy(&bytes))
                    .unwrap_or(DuplicateMode::Skip)
            }
            _ => {}
        }
    }
    let Some(file) = file else {
        let error = FormError::new(
            caller.locale,
            "import",
            keping_domain::Invalid::new("file", "required", "choose a file"),
        );
        return render_status(
            &ImportPage {
                shell,
                outcome: None,
                dry_run,
                error,
            },
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    match store::import(
        &state.db,
        &caller.scope,
        file,
        ImportOptions {
            mapping: None,
            dry_run,
            duplicates,
            org_id: None,
            progress,
        },
    )
    .await
    {
        Ok(outcome) => render(&ImportPage {
            shell,
            outcome: Some(outcome),
            dry_run,
            error: FormError::default(),
        }),
        Err(e) => {
            let error = FormError::new(caller.locale, "import", e);
            render_status(
                &ImportPage {
                    shell,
                    outcome: None,
                    dry_run,
                    error,
                },
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// How far the caller's import followed under `token` has got (the page's progress bar polls it).
pub async fn import_progress(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(token): Path<String>,
) -> Response {
    match state.imports.get(caller.scope.user_id, &token) {
        Some(p) => axum::Json(p).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

// ---------------------------------------------------------------- caller-ID

#[derive(askama::Template)]
#[template(path = "call_popup.html")]
struct CallPopup {
    locale: Locale,
    phone: String,
    customer: Option<Customer>,
}

impl CallPopup {
    fn t(&self, key: &str) -> String {
        self.locale.t(key)
    }

    fn new_link(&self) -> String {
        link("/customers/new", &[("phone", self.phone.as_str())])
    }
}

/// The agent's stream: one `call` event with the pop-up's HTML per call announced for him.
pub async fn call_events(State(state): State<AppState>, caller: PageCaller) -> Response {
    if !caller.scope.has("customer.view") {
        return error_page(
            Shell::new(&caller, "customers"),
            StoreError::Forbidden("customer.view"),
        );
    }
    let me = caller.scope.user_id;
    let locale = caller.locale;
    let scope = caller.scope.clone();
    let stream = BroadcastStream::new(state.live.subscribe_calls())
        .filter_map(move |e| e.ok().filter(|e| e.agent_id == me))
        .then(move |e| {
            let (state, scope) = (state.clone(), scope.clone());
            async move {
                let (phone, customer) = store::call_for_agent(&state.db, &scope, e.call_id)
                    .await
                    .ok()?;
                let html = askama::Template::render(&CallPopup {
                    locale,
                    phone,
                    customer,
                })
                .ok()?;
                Some(Event::default().event("call").data(html))
            }
        })
        .filter_map(|e| e.map(Ok::<_, std::convert::Infallible>));
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    pool: String,
}

/// The list as shown, as an xlsx file (logged like every export).
pub async fn export(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<ExportQuery>,
) -> Response {
    let filter = CustomerFilter {
        q: opt(&q.q),
        kind: opt(&q.kind),
        in_pool: (q.pool == "1").then_some(true),
        ..Default::default()
    };
    match store::export_xlsx(&state.db, &caller.scope, &filter).await {
        Ok((bytes, _)) => crate::api::customers::xlsx_response(bytes, "customers.xlsx"),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}
