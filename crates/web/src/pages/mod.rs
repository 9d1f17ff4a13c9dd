//! Server-rendered pages (askama + htmx), in Chinese by default and English on request.

mod account;
mod audit;
mod customer_attachments;
mod customer_edit;
mod customer_filters;
mod customer_quality;
mod customers;
mod data;
mod deliveries;
mod evaluation;
mod grading;
mod grading_settings;
mod home;
mod kiosk;
mod login;
mod monitor;
mod orgs;
mod qr;
mod roles;
mod staff;
mod stats;
mod tokens;

pub use qr::QrLimits;

use crate::auth::{urlencode, PageCaller};
use crate::error::ApiError;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::{DefaultBodyLimit, Path, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Asia::Shanghai;
use keping_domain::auth::DataLevel;
use keping_domain::scope::Scope;
use keping_store::org::{self, Org, OrgFilter};
use keping_store::{Db, StoreError};
use rust_embed::RustEmbed;
use serde::{Deserialize, Deserializer};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/locale", post(login::set_locale))
        .route("/orgs", get(orgs::page).post(orgs::create))
        .route("/orgs/{id}", post(orgs::update))
        .route("/orgs/{id}/move", post(orgs::move_node))
        .route("/staff", get(staff::list).post(staff::create))
        .route("/staff/new", get(staff::new))
        .route("/staff/{id}", get(staff::edit).post(staff::update))
        .route("/staff/{id}/password", post(staff::reset_password))
        .route(
            "/staff/{id}/photo",
            get(staff::photo)
                .post(staff::upload_photo)
                // a photo may be 2 MiB, more than the 1 MiB every other form gets
                .layer(DefaultBodyLimit::max(3 * 1024 * 1024)),
        )
        .route("/roles", get(roles::list).post(roles::create))
        .route("/roles/new", get(roles::new))
        .route("/roles/{id}", get(roles::edit).post(roles::update))
        .route("/roles/{id}/delete", post(roles::delete))
        .route("/tokens", get(tokens::page).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/account", get(account::page))
        .route("/account/password", post(account::change_password))
        .route("/account/reminders", post(account::set_reminder_email))
        .route("/audit", get(audit::page))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}/retry", post(deliveries::retry))
        .route(
            "/report-schedules",
            get(deliveries::schedules).post(deliveries::create_schedule),
        )
        .route(
            "/report-schedules/{id}/enabled",
            post(deliveries::toggle_schedule),
        )
        .route(
            "/report-schedules/{id}/delete",
            post(deliveries::delete_schedule),
        )
        .route("/data", get(data::page))
        .route("/data/cleanups", post(data::start))
        .route("/data/cleanups/{id}", get(data::run_page))
        .route("/data/retention", post(data::save_retention))
        .route("/data/backup", get(data::backup))
        .route("/stats", get(stats::page))
        .route("/stats/export", get(stats::export))
        .route("/stats/ratings", get(stats::ratings))
        .route("/stats/ratings/export", get(stats::ratings_export))
        .route("/stats/me", get(stats::me))
        .route("/stats/me/ratings", get(stats::my_ratings))
        .route("/monitor", get(monitor::page))
        .route("/monitor/events", get(monitor::events))
        .route("/kiosk", get(kiosk::page))
        .route("/r/{token}", get(qr::page).post(qr::press))
        .route("/r/{token}/staff/{id}/photo", get(qr::photo))
        .route("/windows/{id}/qr", get(qr::card).post(qr::rotate))
        .route("/customers", get(customers::list).post(customers::create))
        .route("/customers/new", get(customers::new))
        .route("/customers/saved-filters", post(customer_filters::save))
        .route(
            "/customers/saved-filters/{id}",
            get(customer_filters::apply),
        )
        .route(
            "/customers/saved-filters/{id}/delete",
            post(customer_filters::delete),
        )
        .route("/customers/quality", get(customer_quality::show))
        .route(
            "/customers/quality/rules",
            post(customer_quality::save_rules),
        )
        .route("/customers/quality/export", get(customer_quality::export))
        .route("/customers/export", get(customers::export))
        .route(
            "/customers/import",
            get(customers::import_form)
                .post(customers::import)
                .layer(DefaultBodyLimit::max(
                    crate::api::customers::MAX_IMPORT_BYTES,
                )),
        )
        .route(
            "/customers/import/progress/{token}",
            get(customers::import_progress),
        )
        .route("/customers/assign", post(customer_edit::assign_many))
        .route("/customers/{id}", get(customers::show))
        .route(
            "/customers/{id}/edit",
            get(customer_edit::edit).post(customer_edit::save),
        )
        .route("/customers/{id}/contacts", post(customer_edit::add_contact))
        .route(
            "/customers/{id}/contacts/new",
            get(customer_edit::new_contact),
        )
        .route(
            "/customers/{id}/contacts/{contact_id}",
            post(customer_edit::update_contact),
        )
        .route(
            "/customers/{id}/contacts/{contact_id}/edit",
            get(customer_edit::edit_contact),
        )
        .route(
            "/customers/{id}/contacts/{contact_id}/delete",
            post(customer_edit::delete_contact),
        )
        .route("/customers/{id}/owner", post(customer_edit::assign_one))
        .route("/customers/{id}/shares", post(customer_edit::share))
        .route(
            "/customers/{id}/shares/{user_id}/delete",
            post(customer_edit::unshare),
        )
        .route(
            "/customers/{id}/merge",
            get(customer_edit::merge_form).post(customer_edit::merge),
        )
        .route("/customers/{id}/activities", post(customers::add_activity))
        .route(
            "/customers/{id}/attachments",
            post(customer_attachments::add).layer(DefaultBodyLimit::max(
                keping_store::customers::attachments::MAX_ATTACHMENT_BYTES + 64 * 1024,
            )),
        )
        .route(
            "/customers/{id}/attachments/{attachment_id}",
            get(customer_attachments::get),
        )
        .route(
            "/customers/{id}/attachments/{attachment_id}/delete",
            post(customer_attachments::delete),
        )
        .route("/customers/{id}/claim", post(customers::claim))
        .route("/customers/{id}/release", post(customers::release))
        .route("/customers/{id}/grades", get(grading::grade_card))
        .route("/grading", get(grading::page))
        .route(
            "/grading/settings",
            get(grading_settings::settings_page).post(grading_settings::save_settings),
        )
        .route(
            "/grading/settings/inherit",
            post(grading_settings::inherit_settings),
        )
        .route(
            "/grading/schedules",
            get(grading_settings::schedules_page).post(grading_settings::create_schedule),
        )
        .route(
            "/grading/schedules/{id}/delete",
            post(grading_settings::delete_schedule),
        )
        .route("/grading/runs", post(grading::start_run))
        .route("/grading/runs/{id}", get(grading::run_page))
        .route("/grading/runs/{id}/export", get(grading::export_run))
        .route("/grading/models/preview", post(grading::preview))
        .route(
            "/grading/models/{id}",
            get(grading::model_page).post(grading::save_model),
        )
        .route("/calls/events", get(customers::call_events))
        .merge(evaluation::router())
}

/// Vendored CSS, JS and fonts, compiled into the binary; cached by the browser for a day.
pub async fn asset(Path(path): Path<String>) -> Response {
    match Assets::get(&path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_string();
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "public, max-age=86400".to_string()),
                ],
                file.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// What every page's layout needs: who is signed in, his language, what the menu may show and
/// the breadcrumbs.
pub struct Shell {
    pub locale: Locale,
    pub user_name: String,
    pub permissions: std::collections::BTreeSet<String>,
    /// The menu entry to highlight.
    pub active: &'static str,
    /// Below 首页: (label, link); the last one is the page itself.
    pub crumbs: Vec<(String, String)>,
}

impl Shell {
    pub fn new(caller: &PageCaller, active: &'static str) -> Shell {
        Shell {
            locale: caller.locale,
            user_name: caller.name.clone(),
            permissions: caller.scope.permissions(),
            active,
            crumbs: Vec::new(),
        }
    }

    /// Adds a breadcrumb; `label` is a catalogue key or, when it has none, the text itself.
    pub fn crumb(mut self, label: &str, href: &str) -> Shell {
        let label = self
            .locale
            .try_t(label)
            .unwrap_or_else(|| label.to_string());
        self.crumbs.push((label, href.to_string()));
        self
    }

    /// A stored UTC time as people read it, e.g. `2026-03-01 09:30:00`.
    pub fn time(&self, ms: &i64) -> String {
        local_time(*ms)
    }

    pub fn time_opt(&self, ms: &Option<i64>) -> String {
        ms.map_or_else(|| "—".to_string(), local_time)
    }

    pub fn t(&self, key: &str) -> String {
        self.locale.t(key)
    }

    pub fn can(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    pub fn lang(&self) -> &'static str {
        self.locale.code()
    }
}

/// The language of a visitor who is not signed in: his cookie, else his browser's.
pub fn visitor_locale(headers: &HeaderMap) -> Locale {
    crate::auth::cookie(headers, "keping_lang")
        .map(Locale::parse)
        .unwrap_or_else(|| {
            Locale::from_accept_language(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })
}

#[derive(askama::Template)]
#[template(path = "not_found.html")]
struct NotFound {
    locale: Locale,
}

pub async fn not_found_page(req: Request) -> Response {
    let locale = visitor_locale(req.headers());
    match askama::Template::render(&NotFound { locale }) {
        Ok(html) => (StatusCode::NOT_FOUND, axum::response::Html(html)).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// For answers that show a secret once (a new token): no cache may keep them.
pub fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Renders a page with a status other than 200 (a form sent back with its error, a 404).
pub fn render_status<T: askama::Template>(t: &T, status: StatusCode) -> Response {
    let mut response = render(t);
    if response.status().is_success() {
        *response.status_mut() = status;
    }
    response
}

/// Renders a template, answering 500 (and logging why) if it fails.
pub fn render<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn; it has been logged",
            )
                .into_response()
        }
    }
}

/// A page that could not be drawn for a reason the person should read: 404 for what is missing
/// or out of reach, 403 for a missing permission, 500 for the server's own failure.
pub fn error_page(shell: Shell, e: impl Into<ApiError>) -> Response {
    let e = e.into();
    let page = ErrorPage {
        message: error_text(shell.locale, &e),
        shell,
    };
    render_status(&page, e.status)
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage {
    shell: Shell,
    message: String,
}

/// An error as a sentence for the person at the form, in his language. Codes without a text in
/// the catalogue keep the store's own (English) sentence.
pub fn error_text(locale: Locale, e: &ApiError) -> String {
    let Some(text) = locale.try_t(&format!("problem.{}", e.code)) else {
        return e.message.clone();
    };
    let field = e
        .field
        .as_deref()
        .map_or_else(|| locale.t("field.value"), |f| field_label(locale, f));
    text.replace("{field}", &field)
}

/// A field's name for people (表单字段 / audit changes); unknown fields keep their code.
pub fn field_label(locale: Locale, field: &str) -> String {
    locale
        .try_t(&format!("field.{field}"))
        .unwrap_or_else(|| field.to_string())
}

/// The error of the form just sent, shown next to that form only (a page may hold several).
#[derive(Default)]
pub struct FormError(Option<(&'static str, String)>);

impl FormError {
    pub fn new(locale: Locale, form: &'static str, e: impl Into<ApiError>) -> FormError {
        FormError(Some((form, error_text(locale, &e.into()))))
    }

    pub fn on(&self, form: &str) -> Option<&str> {
        self.0
            .as_ref()
            .filter(|(f, _)| *f == form)
            .map(|(_, m)| m.as_str())
    }

    /// The status a re-drawn form answers with: 422 while it shows an error.
    pub fn status(&self) -> StatusCode {
        if self.0.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        }
    }
}

/// The success line after a redirect (`?saved=created`); unknown values show nothing.
pub fn notice(locale: Locale, saved: Option<&str>) -> Option<String> {
    saved.and_then(|s| locale.try_t(&format!("notice.{s}")))
}

/// The query of a page that only takes the `?saved=…` of a redirect.
#[derive(Deserialize)]
pub struct Saved {
    saved: Option<String>,
}

impl Saved {
    pub fn notice(&self, locale: Locale) -> Option<String> {
        notice(locale, self.saved.as_deref())
    }
}

/// A data level (本人 … 全部) by name; an unknown code stays as it is.
pub fn level_name(locale: Locale, code: &str) -> String {
    DataLevel::parse(code).map_or_else(
        || code.to_string(),
        |l| locale.pick(l.name_zh(), l.name_en()).to_string(),
    )
}

/// An option of a select or radio group.
pub struct Choice {
    pub code: &'static str,
    pub label: String,
}

/// Choices whose labels live in the catalogue under `prefix.code`.
pub fn choices(locale: Locale, prefix: &str, codes: &[&'static str]) -> Vec<Choice> {
    codes
        .iter()
        .map(|code| Choice {
            code,
            label: locale.t(&format!("{prefix}.{code}")),
        })
        .collect()
}

/// Form and query fields where an empty value means "none" (an unchosen select, a blank input).
pub fn empty_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(d)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A form whose names repeat (ticked permissions, role rows), which serde's form reader cannot
/// put in a struct.
pub struct FormFields(pub Vec<(String, String)>);

impl FormFields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A text field, "" when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_string()
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn id(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A link with query parameters; empty values are left out.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// Keyset paging: back to the first page, or on to the next.
pub struct Pager {
    pub first: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `params` are the list's filters; `cursor` the page shown; `next` what the store answered.
    pub fn new(
        path: &str,
        params: &[(&str, &str)],
        cursor: Option<&str>,
        next: Option<&str>,
    ) -> Pager {
        let with_cursor = |c: &str| {
            let mut all = params.to_vec();
            all.push(("cursor", c));
            link(path, &all)
        };
        Pager {
            first: cursor.filter(|c| !c.is_empty()).map(|_| link(path, params)),
            next: next.map(with_cursor),
        }
    }
}

// ---------------------------------------------------------------- time

/// Times are shown in China Standard Time, the product's home zone (orgs elsewhere come later).
fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&Shanghai)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// The UTC millisecond at which a `YYYY-MM-DD` day begins in China Standard Time.
pub fn day_start(date: &str) -> Option<i64> {
    let day = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    Shanghai
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .single()
        .map(|t| t.timestamp_millis())
}

// ---------------------------------------------------------------- the org tree

/// Pages read the whole visible tree, 500 nodes a request, up to this many nodes.
const MAX_TREE_NODES: usize = 5_000;

/// One line of the org tree in display order: parents before children, siblings by code.
pub struct TreeRow {
    pub org: Org,
    /// Depth below the nearest node the caller sees without its parent.
    pub level: usize,
    pub has_children: bool,
    /// How many nested lists end after this line (for the nested `<ul>` markup).
    pub closes: usize,
}

impl TreeRow {
    /// Indentation for the line in a `<select>`, where lists cannot nest.
    pub fn indent(&self) -> String {
        if self.level == 0 {
            String::new()
        } else {
            format!("{}└ ", "\u{3000}".repeat(self.level - 1))
        }
    }
}

/// The caller's part of the org tree, ready to draw.
pub async fn org_tree(db: &Db, scope: &Scope) -> Result<Vec<TreeRow>, StoreError> {
    let mut orgs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = org::list(db, scope, &OrgFilter::default(), 500, cursor.as_deref()).await?;
        orgs.extend(page.items);
        match page.next_cursor {
            Some(next) if orgs.len() < MAX_TREE_NODES => cursor = Some(next),
            _ => break,
        }
    }
    Ok(build_tree(orgs))
}

/// The tree for selects and labels on other pages: someone who may not view orgs gets none.
pub async fn org_choices(db: &Db, scope: &Scope) -> Result<Vec<TreeRow>, StoreError> {
    match org_tree(db, scope).await {
        Err(StoreError::Forbidden(_)) => Ok(Vec::new()),
        other => other,
    }
}

fn build_tree(orgs: Vec<Org>) -> Vec<TreeRow> {
    let ids: HashSet<i64> = orgs.iter().map(|o| o.id).collect();
    let mut children: HashMap<Option<i64>, Vec<Org>> = HashMap::new();
    for o in orgs {
        // a node whose parent the caller cannot see stands at the top of his tree
        let parent = o.parent_id.filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(o);
    }
    for siblings in children.values_mut() {
        // reversed, so that popping from the end yields the smallest code first
        siblings.sort_by(|a, b| b.code.cmp(&a.code));
    }
    let mut rows: Vec<TreeRow> = Vec::with_capacity(ids.len());
    // depth first with an explicit stack: a deep tree cannot overflow the thread's stack
    let mut stack: Vec<(Org, usize)> = children
        .remove(&None)
        .unwrap_or_default()
        .into_iter()
        .map(|o| (o, 0))
        .collect();
    while let Some((org, level)) = stack.pop() {
        let kids = children.remove(&Some(org.id)).unwrap_or_default();
        let has_children = !kids.is_empty();
        stack.extend(kids.into_iter().map(|k| (k, level + 1)));
        rows.push(TreeRow {
            org,
            level,
            has_children,
            closes: 0,
        });
    }
    for i in 0..rows.len() {
        let next = rows.get(i + 1).map_or(0, |r| r.level);
        rows[i].closes = rows[i].level.saturating_sub(next);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: i64, parent_id: Option<i64>, code: &str) -> Org {
        Org {
            id,
            parent_id,
            name: code.to_string(),
            code: code.to_string(),
            kind: "branch".into(),
            path: String::new(),
            depth: 0,
            timezone: "Asia/Shanghai".into(),
            timezone_inherited: true,
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn tree_orders_siblings_by_code_and_closes_lists() {
        let rows = build_tree(vec![
            org(1, None, "HQ"),
            org(3, Some(1), "SH"),
            org(2, Some(1), "BJ"),
            org(4, Some(2), "BJ-CY"),
            // its parent is out of sight: it becomes a top node
            org(9, Some(99), "X"),
        ]);
        let line: Vec<(&str, usize, bool, usize)> = rows
            .iter()
            .map(|r| (r.org.code.as_str(), r.level, r.has_children, r.closes))
            .collect();
        assert_eq!(
            line,
            vec![
                ("HQ", 0, true, 0),
                ("BJ", 1, true, 0),
                ("BJ-CY", 2, false, 1),
                ("SH", 1, false, 1),
                ("X", 0, false, 0),
            ]
        );
        assert_eq!(rows[2].indent(), "\u{3000}└ ");
    }

    #[test]
    fn days_begin_at_midnight_in_china() {
        // 2026-01-02 00:00 +08:00 is 2026-01-01 16:00 UTC
        assert_eq!(day_start("2026-01-02"), Some(1_767_283_200_000));
        assert_eq!(local_time(1_767_283_200_000), "2026-01-02 00:00:00");
        assert_eq!(day_start("2026-13-01"), None);
    }

    #[test]
    fn links_and_pages() {
        assert_eq!(
            link("/staff", &[("q", "王 芳"), ("org", "")]),
            "/staff?q=%E7%8E%8B%20%E8%8A%B3"
        );
        let p = Pager::new("/audit", &[("entity", "org")], Some("ab"), Some("cd"));
        assert_eq!(p.first.as_deref(), Some("/audit?entity=org"));
        assert_eq!(p.next.as_deref(), Some("/audit?entity=org&cursor=cd"));
        assert!(Pager::new("/audit", &[], None, None).first.is_none());
    }
}
