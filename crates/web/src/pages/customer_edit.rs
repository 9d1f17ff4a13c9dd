//! Changing a customer through pages: the edit form (with the org's custom fields), contacts added
//! and edited, the owner (one customer from its card, many from the list), sharing with
//! colleagues read-only or read-write, and merging a duplicate after a confirmation step.

use crate::auth::PageCaller;
use crate::pages::customers::{kind_name, kinds, opt};
use crate::pages::{error_page, render, render_status, FormError, Shell};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::customers::Importance;
use keping_domain::validate::Invalid;
use keping_store::customers::{
    self as store, Contact, ContactInput, CustomField, Customer, CustomerFilter, CustomerInput,
    ImportantDate,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The fields of a form as sent (or as stored, for the first drawing): name → value.
type Fields = BTreeMap<String, String>;

fn fields_of(form: Vec<(String, String)>) -> Fields {
    form.into_iter().collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A custom field's value as a list shows it.
pub(super) fn custom_text(c: &Customer, code: &str) -> String {
    c.custom.get(code).map(value_text).unwrap_or_default()
}

// ---------------------------------------------------------------- the customer

#[derive(askama::Template)]
#[template(path = "customer_edit.html")]
struct EditPage {
    shell: Shell,
    id: i64,
    name: String,
    v: Fields,
    kinds: Vec<(&'static str, String)>,
    importances: Vec<(&'static str, String)>,
    fields: Vec<CustomField>,
    /// Without phone.view the phone is masked: it is neither shown nor sent.
    phone_editable: bool,
    error: FormError,
}

impl EditPage {
    fn val(&self, key: &str) -> &str {
        self.v.get(key).map_or("", String::as_str)
    }

    fn checked(&self, key: &str) -> bool {
        self.val(key) == "1"
    }

    fn custom(&self, code: &str) -> &str {
        self.val(&format!("custom.{code}"))
    }
}

fn stored_fields(c: &Customer) -> Fields {
    let mut v = Fields::new();
    let mut put = |k: &str, s: &Option<String>| {
        v.insert(k.to_string(), s.clone().unwrap_or_default());
    };
    put("name", &Some(c.name.clone()));
    put("kind", &Some(c.kind.clone()));
    put("company", &c.company);
    put("code", &c.code);
    put("phone", &c.phone);
    put("email", &c.email);
    put("address", &c.address);
    put("region", &c.region);
    put("industry", &c.industry);
    put("source", &c.source);
    put("customer_group", &c.customer_group);
    put("importance", &c.importance);
    put("intent", &c.intent);
    put("hobbies", &c.hobbies);
    put("birthday", &c.birthday);
    put("notes", &c.notes);
    put("blacklist_reason", &c.blacklist_reason);
    put("tags", &Some(c.tags.join(", ")));
    let flag = |b: bool| if b { "1" } else { "" }.to_string();
    v.insert("is_company".into(), flag(c.is_company));
    v.insert("birthday_reminder".into(), flag(c.birthday_reminder));
    v.insert("blacklisted".into(), flag(c.blacklisted));
    if let Value::Object(custom) = &c.custom {
        for (code, value) in custom {
            v.insert(format!("custom.{code}"), value_text(value));
        }
    }
    v
}

/// Tags as typed: separated by commas (either width), 、 or spaces.
fn split_tags(s: &str) -> Vec<String> {
    s.split([',', '，', '、', ' ', '\u{3000}'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The whole form as a patch: every field is sent, so "" clears it and an unticked box is false.
fn input_of(v: &Fields, fields: &[CustomField], phone_editable: bool) -> CustomerInput {
    let s = |k: &str| Some(v.get(k).cloned().unwrap_or_default());
    let ticked = |k: &str| Some(v.get(k).is_some_and(|x| x == "1"));
    let custom: Map<String, Value> = fields
        .iter()
        .map(|f| {
            let value = v
                .get(&format!("custom.{}", f.code))
                .cloned()
                .unwrap_or_default();
            (f.code.clone(), Value::String(value))
        })
        .collect();
    CustomerInput {
        kind: v.get("kind").and_then(|k| opt(k)),
        is_company: ticked("is_company"),
        name: s("name"),
        company: s("company"),
        code: s("code"),
        phone: if phone_editable { s("phone") } else { None },
        email: s("email"),
        address: s("address"),
        region: s("region"),
        industry: s("industry"),
        source: s("source"),
        customer_group: s("customer_group"),
        tags: Some(split_tags(v.get("tags").map_or("", String::as_str))),
        importance: s("importance"),
        intent: s("intent"),
        hobbies: s("hobbies"),
        birthday: s("birthday"),
        birthday_reminder: ticked("birthday_reminder"),
        notes: s("notes"),
        blacklisted: ticked("blacklisted"),
        blacklist_reason: s("blacklist_reason"),
        custom: Some(custom),
    }
}

fn edit_shell(caller: &PageCaller, c: &Customer) -> Shell {
    Shell::new(caller, "customers")
        .crumb("nav.customers", "/customers")
        .crumb(&c.name, &format!("/customers/{}", c.id))
        .crumb("common.edit", &format!("/customers/{}/edit", c.id))
}

fn edit_page(caller: &PageCaller, c: &Customer, v: Fields, fields: Vec<CustomField>) -> EditPage {
    EditPage {
        shell: edit_shell(caller, c),
        id: c.id,
        name: c.name.clone(),
        v,
        kinds: kinds(caller.locale),
        importances: Importance::ALL
            .iter()
            .map(|i| {
                (
                    i.code(),
                    caller.locale.pick(i.name_zh(), i.name_en()).to_string(),
                )
            })
            .collect(),
        fields,
        phone_editable: caller.scope.has("phone.view"),
        error: FormError::default(),
    }
}

/// A customer the caller may change, with the custom fields in force at its org.
async fn editable(
    state: &AppState,
    caller: &PageCaller,
    id: i64,
) -> Result<(Customer, Vec<CustomField>), Response> {
    let shell = || Shell::new(caller, "customers").crumb("nav.customers", "/customers");
    let c = store::get(&state.db, &caller.scope, id)
        .await
        .map_err(|e| error_page(shell(), e))?;
    if c.can_edit != Some(true) {
        return Err(error_page(
            shell(),
            keping_store::StoreError::Forbidden("customer.edit"),
        ));
    }
    let fields = store::fields(&state.db, &caller.scope, c.org_id)
        .await
        .map_err(|e| error_page(shell(), e))?;
    Ok((c, fields))
}

pub async fn edit(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match editable(&state, &caller, id).await {
        Ok((c, fields)) => render(&edit_page(&caller, &c, stored_fields(&c), fields)),
        Err(r) => r,
    }
}

pub async fn save(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (c, fields) = match editable(&state, &caller, id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let v = fields_of(form);
    let phone_editable = caller.scope.has("phone.view");
    let input = input_of(&v, &fields, phone_editable);
    match store::update(&state.db, &caller.scope, id, input).await {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved=saved")).into_response(),
        Err(e) => {
            let mut page = edit_page(&caller, &c, v, fields);
            page.error = FormError::new(caller.locale, "edit", e);
            render_status(&page, page.error.status())
        }
    }
}

// ---------------------------------------------------------------- contacts

#[derive(askama::Template)]
#[template(path = "customer_contact.html")]
struct ContactPage {
    shell: Shell,
    customer_id: i64,
    customer_name: String,
    /// None: a new contact.
    contact_id: Option<i64>,
    v: Fields,
    phone_editable: bool,
    error: FormError,
}

impl ContactPage {
    fn val(&self, key: &str) -> &str {
        self.v.get(key).map_or("", String::as_str)
    }

    fn action(&self) -> String {
        match self.contact_id {
            Some(k) => format!("/customers/{}/contacts/{k}", self.customer_id),
            None => format!("/customers/{}/contacts", self.customer_id),
        }
    }
}

fn contact_fields(k: &Contact) -> Fields {
    let mut v = Fields::new();
    let mut put = |key: &str, s: &Option<String>| {
        v.insert(key.to_string(), s.clone().unwrap_or_default());
    };
    put("name", &Some(k.name.clone()));
    put("department", &k.department);
    put("title", &k.title);
    put("gender", &k.gender);
    put("approx_age", &k.approx_age.map(|a| a.to_string()));
    put("phone", &k.phone);
    put("mobile", &k.mobile);
    put("email", &k.email);
    put("birthday", &k.birthday);
    put("notes", &k.notes);
    let dates: Vec<ImportantDate> = serde_json::from_str(&k.important_dates).unwrap_or_default();
    put(
        "important_dates",
        &Some(
            dates
                .iter()
                .map(|d| format!("{} {}", d.label, d.date))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    );
    v
}

/// The form as a contact: one important date per line, "label YYYY-MM-DD".
fn contact_input(v: &Fields, phone_editable: bool) -> Result<ContactInput, Invalid> {
    let s = |k: &str| Some(v.get(k).cloned().unwrap_or_default());
    let age = v.get("approx_age").map_or("", |a| a.trim());
    let approx_age = if age.is_empty() {
        None
    } else {
        Some(age.parse::<i64>().map_err(|_| {
            Invalid::new(
                "approx_age",
                "invalid_number",
                format!("'{age}' is not a number of years"),
            )
        })?)
    };
    let mut dates = Vec::new();
    for line in v
        .get("important_dates")
        .map_or("", String::as_str)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let (label, date) = line.rsplit_once(char::is_whitespace).ok_or_else(|| {
            Invalid::new(
                "important_dates",
                "invalid_date",
                format!("'{line}': write a label, a space and the date (结婚纪念日 2020-05-20)"),
            )
        })?;
        dates.push(ImportantDate {
            label: label.trim().to_string(),
            date: date.trim().to_string(),
        });
    }
    Ok(ContactInput {
        name: s("name"),
        department: s("department"),
        title: s("title"),
        gender: s("gender"),
        approx_age,
        phone: if phone_editable { s("phone") } else { None },
        mobile: if phone_editable { s("mobile") } else { None },
        email: s("email"),
        birthday: s("birthday"),
        important_dates: Some(dates),
        notes: s("notes"),
    })
}

fn contact_page(
    caller: &PageCaller,
    c: &Customer,
    contact_id: Option<i64>,
    v: Fields,
) -> ContactPage {
    let (label, href) = match contact_id {
        Some(k) => (
            "customers.edit_contact",
            format!("/customers/{}/contacts/{k}/edit", c.id),
        ),
        None => (
            "customers.add_contact",
            format!("/customers/{}/contacts/new", c.id),
        ),
    };
    ContactPage {
        shell: Shell::new(caller, "customers")
            .crumb("nav.customers", "/customers")
            .crumb(&c.name, &format!("/customers/{}", c.id))
            .crumb(label, &href),
        customer_id: c.id,
        customer_name: c.name.clone(),
        contact_id,
        v,
        phone_editable: caller.scope.has("phone.view"),
        error: FormError::default(),
    }
}

pub async fn new_contact(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match editable(&state, &caller, id).await {
        Ok((c, _)) => render(&contact_page(&caller, &c, None, Fields::new())),
        Err(r) => r,
    }
}

pub async fn edit_contact(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((id, contact_id)): Path<(i64, i64)>,
) -> Response {
    let (c, _) = match editable(&state, &caller, id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(k) = c
        .contacts
        .iter()
        .flatten()
        .find(|k| k.id == contact_id)
        .cloned()
    else {
        return error_page(
            Shell::new(&caller, "customers"),
            keping_store::StoreError::NotFound,
        );
    };
    render(&contact_page(
        &caller,
        &c,
        Some(contact_id),
        contact_fields(&k),
    ))
}

/// Adds (`contact_id` None) or changes a contact from its form.
async fn save_contact_with(
    state: &AppState,
    caller: &PageCaller,
    id: i64,
    contact_id: Option<i64>,
    v: Fields,
) -> Response {
    let (c, _) = match editable(state, caller, id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let phone_editable = caller.scope.has("phone.view");
    let saved = match contact_input(&v, phone_editable) {
        Err(e) => Err(e.into()),
        Ok(input) => match contact_id {
            None => store::add_contact(&state.db, &caller.scope, id, input).await,
            Some(k) => store::update_contact(&state.db, &caller.scope, id, k, input).await,
        },
    };
    match saved {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved=contact_saved")).into_response(),
        Err(e) => {
            let mut page = contact_page(caller, &c, contact_id, v);
            page.error = FormError::new(caller.locale, "contact", e);
            render_status(&page, page.error.status())
        }
    }
}

pub async fn add_contact(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    save_contact_with(&state, &caller, id, None, fields_of(form)).await
}

pub async fn update_contact(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((id, contact_id)): Path<(i64, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    save_contact_with(&state, &caller, id, Some(contact_id), fields_of(form)).await
}

pub async fn delete_contact(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((id, contact_id)): Path<(i64, i64)>,
) -> Response {
    match store::delete_contact(&state.db, &caller.scope, id, contact_id).await {
        Ok(()) => Redirect::to(&format!("/customers/{id}?saved=contact_deleted")).into_response(),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}

// ---------------------------------------------------------------- owner and sharing

#[derive(Deserialize)]
pub struct OwnerFields {
    owner_id: i64,
}

/// Gives one customer to a rep (from its card).
pub async fn assign_one(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<OwnerFields>,
) -> Response {
    match store::assign(&state.db, &caller.scope, &[id], f.owner_id).await {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved=assigned")).into_response(),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}

/// Gives the customers ticked in the list (`ids`, repeated) to a rep; all or none.
pub async fn assign_many(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let shell = Shell::new(&caller, "customers").crumb("nav.customers", "/customers");
    let ids: Vec<i64> = form
        .iter()
        .filter(|(k, _)| k == "ids")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let owner = form
        .iter()
        .find(|(k, _)| k == "owner_id")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let Some(owner) = owner else {
        return error_page(
            shell,
            Invalid::new("owner_id", "required", "choose whom to give them to"),
        );
    };
    match store::assign(&state.db, &caller.scope, &ids, owner).await {
        Ok(_) => Redirect::to("/customers?saved=assigned").into_response(),
        Err(e) => error_page(shell, e),
    }
}

#[derive(Deserialize)]
pub struct ShareFields {
    user_id: i64,
    /// "write": read-write; anything else read-only.
    #[serde(default)]
    access: String,
}

pub async fn share(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<ShareFields>,
) -> Response {
    match store::share(&state.db, &caller.scope, id, f.user_id, f.access == "write").await {
        Ok(()) => Redirect::to(&format!("/customers/{id}?saved=shared")).into_response(),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}

pub async fn unshare(
    State(state): State<AppState>,
    caller: PageCaller,
    Path((id, user_id)): Path<(i64, i64)>,
) -> Response {
    match store::unshare(&state.db, &caller.scope, id, user_id).await {
        Ok(()) => Redirect::to(&format!("/customers/{id}?saved=unshared")).into_response(),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}

// ---------------------------------------------------------------- merge

#[derive(askama::Template)]
#[template(path = "customer_merge.html")]
struct MergePage {
    shell: Shell,
    keep: Customer,
    q: String,
    /// Customers found by `q` to pick the duplicate from.
    found: Vec<Customer>,
    /// The chosen duplicate: the confirmation step.
    other: Option<Customer>,
}

impl MergePage {
    fn kind_label(&self, code: &str) -> String {
        kind_name(self.shell.locale, code)
    }

    /// The two sides of the confirmation: the one kept, the one merged into it.
    fn pair(&self) -> Vec<(&Customer, &'static str)> {
        let mut pair = vec![(&self.keep, "customers.merge_keep")];
        pair.extend(self.other.iter().map(|o| (o, "customers.merge_gone")));
        pair
    }
}

#[derive(Deserialize)]
pub struct MergeQuery {
    #[serde(default)]
    q: String,
    other: Option<i64>,
}

/// Picks the duplicate to fold into this customer (by search), then shows both to confirm.
pub async fn merge_form(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Query(q): Query<MergeQuery>,
) -> Response {
    let (keep, _) = match editable(&state, &caller, id).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let shell = Shell::new(&caller, "customers")
        .crumb("nav.customers", "/customers")
        .crumb(&keep.name, &format!("/customers/{id}"))
        .crumb("customers.merge", &format!("/customers/{id}/merge"));
    let other = match q.other {
        Some(other) => match store::get(&state.db, &caller.scope, other).await {
            Ok(o) if o.id != id => Some(o),
            Ok(_) => None,
            Err(e) => return error_page(shell, e),
        },
        None => None,
    };
    let found = match opt(&q.q) {
        Some(text) if other.is_none() => {
            let filter = CustomerFilter {
                q: Some(text),
                ..Default::default()
            };
            match store::list(&state.db, &caller.scope, &filter, 20, None).await {
                Ok(p) => p.items.into_iter().filter(|c| c.id != id).collect(),
                Err(e) => return error_page(shell, e),
            }
        }
        _ => Vec::new(),
    };
    render(&MergePage {
        shell,
        keep,
        q: q.q,
        found,
        other,
    })
}

#[derive(Deserialize)]
pub struct MergeFields {
    other: i64,
}

pub async fn merge(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<MergeFields>,
) -> Response {
    match store::merge(&state.db, &caller.scope, id, f.other).await {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved=merged")).into_response(),
        Err(e) => error_page(Shell::new(&caller, "customers"), e),
    }
}
