//! 职员与账号: the staff list with live search, and one person's form (details, roles, photo,
//! password reset).

use super::{
    empty_none, error_page, notice, org_choices, render, render_status, FormError, FormFields,
    Pager, Saved, Shell, TreeRow,
};
use crate::api::accounts::{check_photo, photo_response};
use crate::auth::PageCaller;
use crate::error::ApiError;
use crate::login::hash;
use crate::AppState;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::scope::Scope;
use keping_domain::validate;
use keping_store::accounts::{self, AssignmentInput, NewUser, Role, User, UserFilter, UserPatch};
use keping_store::{Db, StoreError};
use serde::Deserialize;

const PAGE_SIZE: i64 = 50;
/// The manager select lists at most this many people.
const MAX_MANAGERS: i64 = 500;
/// Role rows the form always offers, filled or blank.
const MIN_ROLE_ROWS: usize = 3;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default, deserialize_with = "empty_none")]
    org: Option<i64>,
    /// enabled, disabled, or empty for all
    #[serde(default)]
    status: String,
    cursor: Option<String>,
    saved: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "staff.html", blocks = ["results"])]
struct StaffList {
    shell: Shell,
    q: String,
    org: i64,
    status: String,
    orgs: Vec<TreeRow>,
    users: Vec<User>,
    pager: Pager,
    filtered: bool,
    notice: Option<String>,
}

/// The list; an htmx request (the live search) gets only the table.
pub async fn list(
    State(state): State<AppState>,
    caller: PageCaller,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let shell = Shell::new(&caller, "staff").crumb("nav.staff", "/staff");
    let filter = UserFilter {
        q: Some(q.q.trim().to_string()).filter(|s| !s.is_empty()),
        org_id: q.org,
        enabled: match q.status.as_str() {
            "enabled" => Some(true),
            "disabled" => Some(false),
            _ => None,
        },
    };
    let found = accounts::users(
        &state.db,
        &caller.scope,
        &filter,
        PAGE_SIZE,
        q.cursor.as_deref(),
    )
    .await;
    let found = match found {
        Ok(p) => p,
        Err(e) => return error_page(shell, e),
    };
    let partial = headers.contains_key("hx-request");
    let orgs = if partial {
        Vec::new()
    } else {
        match org_choices(&state.db, &caller.scope).await {
            Ok(o) => o,
            Err(e) => return error_page(shell, e),
        }
    };
    let org = q.org.map(|o| o.to_string()).unwrap_or_default();
    let params = [
        ("q", q.q.as_str()),
        ("org", org.as_str()),
        ("status", q.status.as_str()),
    ];
    let page = StaffList {
        pager: Pager::new(
            "/staff",
            &params,
            q.cursor.as_deref(),
            found.next_cursor.as_deref(),
        ),
        filtered: filter.q.is_some() || filter.org_id.is_some() || filter.enabled.is_some(),
        notice: notice(caller.locale, q.saved.as_deref()),
        shell,
        q: q.q,
        org: q.org.unwrap_or_default(),
        status: q.status,
        orgs,
        users: found.items,
    };
    let mut response = if partial {
        render(&page.as_results())
    } else {
        render(&page)
    };
    // the same URL answers a whole page or a fragment; caches must keep them apart
    response
        .headers_mut()
        .insert(header::VARY, header::HeaderValue::from_static("HX-Request"));
    response
}

#[derive(askama::Template)]
#[template(path = "staff_form.html")]
struct PersonPage {
    shell: Shell,
    /// None while creating.
    user: Option<User>,
    f: Fields,
    orgs: Vec<TreeRow>,
    roles: Vec<Role>,
    managers: Vec<User>,
    can_manage: bool,
    /// One's own account: no reset here (that is 我的账号), no disabling.
    is_self: bool,
    notice: Option<String>,
    error: FormError,
}

/// What the person form shows; 0 stands for "none chosen" in the selects.
struct Fields {
    username: String,
    name: String,
    employee_no: String,
    org_id: i64,
    position: String,
    phone: String,
    email: String,
    manager_id: i64,
    enabled: bool,
    roles: Vec<Assignment>,
}

struct Assignment {
    role_id: i64,
    /// 0: wherever the person is placed.
    org_id: i64,
}

impl Fields {
    fn of(u: &User) -> Fields {
        Fields {
            username: u.username.clone(),
            name: u.name.clone(),
            employee_no: u.employee_no.clone().unwrap_or_default(),
            org_id: u.org_id,
            position: u.position.clone().unwrap_or_default(),
            phone: u.phone.clone().unwrap_or_default(),
            email: u.email.clone().unwrap_or_default(),
            manager_id: u.manager_id.unwrap_or_default(),
            enabled: u.enabled,
            roles: u
                .roles
                .iter()
                .map(|a| Assignment {
                    role_id: a.role_id,
                    org_id: a.org_id,
                })
                .collect(),
        }
        .padded()
    }

    fn sent(form: &FormFields) -> Fields {
        let org_id = form.id("org_id").unwrap_or_default();
        let roles = form
            .all("role_id")
            .into_iter()
            .zip(form.all("role_org_id"))
            .filter_map(|(role, org)| {
                Some(Assignment {
                    role_id: role.parse().ok()?,
                    org_id: org.parse().unwrap_or_default(),
                })
            })
            .collect();
        Fields {
            username: form.text("username"),
            name: form.text("name"),
            employee_no: form.text("employee_no"),
            org_id,
            position: form.text("position"),
            phone: form.text("phone"),
            email: form.text("email"),
            manager_id: form.id("manager_id").unwrap_or_default(),
            enabled: form.checked("enabled"),
            roles,
        }
    }

    fn blank(org_id: i64) -> Fields {
        Fields {
            username: String::new(),
            name: String::new(),
            employee_no: String::new(),
            org_id,
            position: String::new(),
            phone: String::new(),
            email: String::new(),
            manager_id: 0,
            enabled: true,
            roles: Vec::new(),
        }
        .padded()
    }

    /// Blank role rows to fill in: at least three rows, and always one spare.
    fn padded(mut self) -> Fields {
        let rows = (self.roles.len() + 1).max(MIN_ROLE_ROWS);
        while self.roles.len() < rows {
            self.roles.push(Assignment {
                role_id: 0,
                org_id: 0,
            });
        }
        self
    }

    fn assignments(&self) -> Vec<AssignmentInput> {
        self.roles
            .iter()
            .filter(|a| a.role_id != 0)
            .map(|a| AssignmentInput {
                role_id: a.role_id,
                org_id: if a.org_id == 0 { self.org_id } else { a.org_id },
            })
            .collect()
    }
}

/// A person's `name` is 姓名, not the 名称 of an org or a role.
fn person_error(e: impl Into<ApiError>) -> ApiError {
    let mut e = e.into();
    if e.field.as_deref() == Some("name") {
        e.field = Some("person_name".to_string());
    }
    e
}

fn optional(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn new(State(state): State<AppState>, caller: PageCaller) -> Response {
    if !caller.scope.has("user.manage") {
        let shell = Shell::new(&caller, "staff");
        return error_page(shell, StoreError::Forbidden("user.manage"));
    }
    let fields = Fields::blank(caller_org(&state.db, &caller.scope).await);
    show(&state, &caller, None, fields, None, FormError::default()).await
}

/// A new person lands in the creator's own org unless another is chosen.
async fn caller_org(db: &Db, scope: &Scope) -> i64 {
    accounts::user(db, scope, scope.user_id)
        .await
        .map_or(0, |u| u.org_id)
}

pub async fn edit(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Query(q): Query<Saved>,
) -> Response {
    match accounts::user(&state.db, &caller.scope, id).await {
        Ok(user) => {
            let fields = Fields::of(&user);
            let notice = q.notice(caller.locale);
            show(
                &state,
                &caller,
                Some(user),
                fields,
                notice,
                FormError::default(),
            )
            .await
        }
        Err(e) => error_page(Shell::new(&caller, "staff"), e),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormFields(form);
    let f = Fields::sent(&form);
    let password = form.text("password");
    let created = async {
        validate::password("password", &password)?;
        let new = NewUser {
            username: f.username.clone(),
            password_hash: hash(password).await,
            name: f.name.clone(),
            employee_no: optional(&f.employee_no),
            org_id: f.org_id,
            position: optional(&f.position),
            phone: optional(&f.phone),
            email: optional(&f.email),
            manager_id: Some(f.manager_id).filter(|m| *m != 0),
            roles: f.assignments(),
        };
        Ok::<_, ApiError>(accounts::create_user(&state.db, &caller.scope, new).await?)
    }
    .await;
    match created {
        Ok(u) => Redirect::to(&format!("/staff/{}?saved=created", u.id)).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "main", person_error(e));
            show(&state, &caller, None, f.padded(), None, error).await
        }
    }
}

pub async fn update(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields::sent(&FormFields(form));
    let patch = UserPatch {
        name: Some(f.name.clone()),
        employee_no: Some(optional(&f.employee_no)),
        org_id: Some(f.org_id).filter(|o| *o != 0),
        position: Some(optional(&f.position)),
        phone: Some(optional(&f.phone)),
        email: Some(optional(&f.email)),
        manager_id: Some(Some(f.manager_id).filter(|m| *m != 0)),
        enabled: Some(f.enabled),
        roles: Some(f.assignments()),
    };
    match accounts::update_user(&state.db, &caller.scope, id, patch).await {
        Ok(_) => Redirect::to(&format!("/staff/{id}?saved=saved")).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "main", person_error(e));
            again(&state, &caller, id, Some(f.padded()), error).await
        }
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    password: String,
    repeat: String,
}

pub async fn reset_password(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<ResetForm>,
) -> Response {
    let reset = async {
        if f.password != f.repeat {
            return Err(ApiError::invalid(
                "repeat",
                "mismatch",
                "the two passwords differ",
            ));
        }
        validate::password("password", &f.password)?;
        let hashed = hash(f.password).await;
        Ok(accounts::set_password(&state.db, &caller.scope, id, hashed).await?)
    }
    .await;
    match reset {
        Ok(()) => Redirect::to(&format!("/staff/{id}?saved=password_reset")).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "password", e);
            again(&state, &caller, id, None, error).await
        }
    }
}

/// The photo for the `<img>` of the person form.
pub async fn photo(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match accounts::photo(&state.db, &caller.scope, id).await {
        Ok((bytes, kind)) => photo_response(bytes, kind),
        Err(e) => ApiError::from(e).status.into_response(),
    }
}

pub async fn upload_photo(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    mut multipart: Multipart,
) -> Response {
    let uploaded = async {
        let mut bytes = None;
        while let Some(field) = multipart.next_field().await.map_err(upload_failed)? {
            if field.name() == Some("photo") {
                bytes = Some(field.bytes().await.map_err(upload_failed)?);
            }
        }
        let bytes = bytes.unwrap_or_default();
        let kind = check_photo(&bytes)?;
        let photo = Some((bytes.to_vec(), kind.to_string()));
        Ok::<_, ApiError>(accounts::set_photo(&state.db, &caller.scope, id, photo).await?)
    }
    .await;
    match uploaded {
        Ok(()) => Redirect::to(&format!("/staff/{id}?saved=photo")).into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "photo", e);
            again(&state, &caller, id, None, error).await
        }
    }
}

/// A broken or oversized upload, in the API's terms (413 past the route's body limit).
fn upload_failed(e: axum::extract::multipart::MultipartError) -> ApiError {
    let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        "photo_too_large"
    } else {
        "bad_upload"
    };
    ApiError::new(e.status(), code, e.body_text()).field("photo")
}

/// The person form again after a failed post: what was sent if given, else what is stored.
async fn again(
    state: &AppState,
    caller: &PageCaller,
    id: i64,
    sent: Option<Fields>,
    error: FormError,
) -> Response {
    match accounts::user(&state.db, &caller.scope, id).await {
        Ok(user) => {
            let fields = sent.unwrap_or_else(|| Fields::of(&user));
            show(state, caller, Some(user), fields, None, error).await
        }
        Err(e) => error_page(Shell::new(caller, "staff"), e),
    }
}

async fn show(
    state: &AppState,
    caller: &PageCaller,
    user: Option<User>,
    f: Fields,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "staff").crumb("nav.staff", "/staff");
    let shell = match &user {
        Some(u) => shell.crumb(&u.name, &format!("/staff/{}", u.id)),
        None => shell.crumb("staff.new", "/staff/new"),
    };
    let scope = &caller.scope;
    let orgs = match org_choices(&state.db, scope).await {
        Ok(o) => o,
        Err(e) => return error_page(shell, e),
    };
    // a viewer without user.manage sees the form read-only and needs neither list
    let roles = match accounts::roles(&state.db, scope).await {
        Ok(r) => r,
        Err(StoreError::Forbidden(_)) => Vec::new(),
        Err(e) => return error_page(shell, e),
    };
    let managers =
        match accounts::users(&state.db, scope, &UserFilter::default(), MAX_MANAGERS, None).await {
            Ok(p) => p
                .items
                .into_iter()
                .filter(|m| user.as_ref().is_none_or(|u| u.id != m.id))
                .collect(),
            Err(StoreError::Forbidden(_)) => Vec::new(),
            Err(e) => return error_page(shell, e),
        };
    let page = PersonPage {
        can_manage: scope.has("user.manage"),
        is_self: user.as_ref().is_some_and(|u| u.id == scope.user_id),
        shell,
        user,
        f,
        orgs,
        roles,
        managers,
        notice,
        error,
    };
    render_status(&page, page.error.status())
}
