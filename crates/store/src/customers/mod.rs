//! Customer records (客户档案): customers and their contacts, follow-up records, owners, sharing,
//! the public pool (公海), duplicates and merges, the search index, custom fields and the timeline.
//!
//! Who sees a customer: the owned-record reach of `customer.view` (by org, or by owner for 本人 /
//! 本人及下属), plus pool customers (no owner) in the org reach, plus customers shared with him.
//! Who changes one: the reach of `customer.edit`, plus customers shared with him read-write.

pub mod attachments;
pub(crate) mod import;
pub mod quality;
pub mod reminders;
pub mod saved_filters;

pub use import::{
    export_xlsx, import, undo_import, ImportOptions, ImportOutcome, ImportPhase, ImportProgress,
    ImportRejection, ImportSource,
};
pub use reminders::{reminders, Reminder, Reminders};

use crate::audit::{self, Changes, Entry};
use crate::db::Backend;
use crate::{require, settings, Db, Page, Result, Sql, StoreError};
use chrono::NaiveDate;
use keping_domain::customers::{
    self as rules, ActivityKind, CustomerKind, FieldDef, FieldKind, Gender, Importance, Intent,
    Phone, PoolSettings, SearchSource,
};
use keping_domain::org::OrgPath;
use keping_domain::scope::Scope;
use keping_domain::validate::{self, Invalid};
use keping_domain::{now_millis, Millis};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{Any, Executor, Transaction};
use utoipa::ToSchema;

const POOL_SETTINGS: &str = "customer_pool";
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------- what the API shows

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Customer {
    pub id: i64,
    /// customer, lead, agent or competitor
    pub kind: String,
    pub is_company: bool,
    pub name: String,
    pub company: Option<String>,
    /// 客户编号
    pub code: Option<String>,
    /// Masked (138****8000) for roles without phone.view.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    pub customer_group: Option<String>,
    pub tags: Vec<String>,
    /// urgent, considering, watching, not_this_year, done or unknown
    pub importance: Option<String>,
    /// A, B, C or D
    pub intent: Option<String>,
    /// YYYY-MM-DD: the end of the intent's expected-close window.
    pub expected_close_by: Option<String>,
    pub hobbies: Option<String>,
    pub birthday: Option<String>,
    pub birthday_reminder: bool,
    pub notes: Option<String>,
    pub blacklisted: bool,
    pub blacklist_reason: Option<String>,
    /// Custom field code → value.
    #[schema(value_type = Object)]
    pub custom: Value,
    pub org_id: i64,
    pub org_name: String,
    /// None: in the public pool.
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
    pub in_pool: bool,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_follow_up_at: Option<i64>,
    pub next_follow_up_on: Option<String>,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    /// With one customer (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<Contact>>,
    /// In lists: the grade of the latest grading run that scored the customer (null when none,
    /// or for callers without grading.view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grade: Option<String>,
    /// With one customer: whether the caller may change it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_edit: Option<bool>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
struct CustomerRow {
    id: i64,
    kind: String,
    is_company: i64,
    name: String,
    company: Option<String>,
    code: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    region: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    customer_group: Option<String>,
    tags: String,
    importance: Option<String>,
    intent: Option<String>,
    expected_close_by: Option<String>,
    hobbies: Option<String>,
    birthday: Option<String>,
    birthday_reminder: i64,
    notes: Option<String>,
    blacklisted: i64,
    blacklist_reason: Option<String>,
    custom: String,
    org_id: i64,
    org_name: String,
    org_path: String,
    owner_id: Option<i64>,
    owner_name: Option<String>,
    last_follow_up_at: Option<i64>,
    next_follow_up_on: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const CUSTOMER_SELECT: &str = "SELECT c.id, c.kind, c.is_company, c.name, c.company, c.code, c.phone, c.email, c.address, c.region, c.industry, c.source, c.customer_group, c.tags, c.importance, c.intent, c.expected_close_by, c.hobbies, c.birthday, c.birthday_reminder, c.notes, c.blacklisted, c.blacklist_reason, c.custom, c.org_id, o.name AS org_name, o.path AS org_path, c.owner_id, u.name AS owner_name, c.last_follow_up_at, c.next_follow_up_on, c.created_at, c.updated_at \
     FROM customers c JOIN orgs o ON o.id = c.org_id LEFT JOIN users u ON u.id = c.owner_id";

/// A page of [`CUSTOMER_SELECT`] rows as one JSON array the database builds, in the page's order.
/// A list answered row by row spent most of its time outside the database: every row and column
/// crossed from SQLite's thread and through sqlx's `Any` layer as values of their own.
fn page_as_json(backend: Backend, inner: Sql, order: &str) -> Sql {
    static FIELDS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        let list = CUSTOMER_SELECT
            .trim_start_matches("SELECT ")
            .split(" FROM ")
            .next()
            .expect("a select list");
        list.split(", ")
            .map(|c| {
                c.rsplit_once(" AS ")
                    .map(|(_, alias)| alias)
                    .or_else(|| c.split_once('.').map(|(_, column)| column))
                    .unwrap_or(c)
            })
            .collect()
    });
    let pairs: Vec<String> = FIELDS.iter().map(|f| format!("'{f}', page.{f}")).collect();
    let pairs = pairs.join(", ");
    let head = match backend {
        // SQLite aggregates the page's rows in the order its subquery yields them; an ORDER BY here
        // would sort the built objects again in a temporary b-tree
        Backend::Sqlite => format!("SELECT json_group_array(json_object({pairs})) FROM ("),
        Backend::Postgres => format!("SELECT COALESCE(json_agg(json_build_object({pairs}) ORDER BY {order}), '[]')::text FROM ("),
    };
    inner.wrapped(&head, ") AS page")
}

impl CustomerRow {
    fn shown(self, scope: &Scope) -> Customer {
        Customer {
            id: self.id,
            kind: self.kind,
            is_company: self.is_company != 0,
            name: self.name,
            company: self.company,
            code: self.code,
            phone: shown_phone(scope, self.phone),
            email: self.email,
            address: self.address,
            region: self.region,
            industry: self.industry,
            source: self.source,
            customer_group: self.customer_group,
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            importance: self.importance,
            intent: self.intent,
            expected_close_by: self.expected_close_by,
            hobbies: self.hobbies,
            birthday: self.birthday,
            birthday_reminder: self.birthday_reminder != 0,
            notes: self.notes,
            blacklisted: self.blacklisted != 0,
            blacklist_reason: self.blacklist_reason,
            custom: serde_json::from_str(&self.custom).unwrap_or(Value::Object(Map::new())),
            org_id: self.org_id,
            org_name: self.org_name,
            in_pool: self.owner_id.is_none(),
            owner_id: self.owner_id,
            owner_name: self.owner_name,
            last_follow_up_at: self.last_follow_up_at,
            next_follow_up_on: self.next_follow_up_on,
            created_at: self.created_at,
            updated_at: self.updated_at,
            contacts: None,
            can_edit: None,
            grade: None,
        }
    }

    /// The row as an input with every field set: the base a patch is laid over.
    fn as_input(&self) -> CustomerInput {
        CustomerInput {
            kind: Some(self.kind.clone()),
            is_company: Some(self.is_company != 0),
            name: Some(self.name.clone()),
            company: self.company.clone(),
            code: self.code.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            address: self.address.clone(),
            region: self.region.clone(),
            industry: self.industry.clone(),
            source: self.source.clone(),
            customer_group: self.customer_group.clone(),
            tags: serde_json::from_str(&self.tags).ok(),
            importance: self.importance.clone(),
            intent: self.intent.clone(),
            hobbies: self.hobbies.clone(),
            birthday: self.birthday.clone(),
            birthday_reminder: Some(self.birthday_reminder != 0),
            notes: self.notes.clone(),
            blacklisted: Some(self.blacklisted != 0),
            blacklist_reason: self.blacklist_reason.clone(),
            custom: serde_json::from_str(&self.custom).ok(),
        }
    }
}

/// A phone number as this caller may see it: whole with phone.view, else masked.
fn shown_phone(scope: &Scope, phone: Option<String>) -> Option<String> {
    if scope.has("phone.view") {
        phone
    } else {
        phone.as_deref().map(crate::evaluation::mask_phone)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Contact {
    pub id: i64,
    pub customer_id: i64,
    pub name: String,
    pub department: Option<String>,
    pub title: Option<String>,
    /// male or female
    pub gender: Option<String>,
    pub approx_age: Option<i64>,
    /// A landline with area code and extension; masked without phone.view.
    pub phone: Option<String>,
    /// Masked without phone.view.
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub birthday: Option<String>,
    /// JSON array of {"label","date"}.
    #[schema(value_type = Vec<Object>)]
    #[serde(serialize_with = "ser_json")]
    pub important_dates: String,
    pub notes: Option<String>,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

fn ser_json<S: serde::Serializer>(v: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    serde_json::from_str::<Value>(v)
        .unwrap_or(Value::Array(vec![]))
        .serialize(s)
}

const CONTACT_SELECT: &str = "SELECT id, customer_id, name, department, title, gender, approx_age, phone, mobile, email, birthday, important_dates, notes, created_at FROM contacts";

/// A likely duplicate of a customer being created or imported. Customers the caller may not see
/// are reported without id or name: only that one exists, and whether it lies in the pool.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Duplicate {
    /// same_phone or same_name_company
    pub reason: String,
    /// Whether the caller may see the customer (then its id and name are given).
    pub visible: bool,
    pub customer_id: Option<i64>,
    pub name: Option<String>,
    /// The existing customer is in the public pool (a rep may claim it).
    pub in_pool: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Created {
    #[serde(flatten)]
    pub customer: Customer,
    pub duplicates: Vec<Duplicate>,
}

// ---------------------------------------------------------------- input

/// The fields of a customer as sent. On create, absent fields stay empty; on update, absent
/// (or null) fields keep their value and "" clears a text field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// customer (default), lead, agent or competitor
    pub kind: Option<String>,
    /// A company (default) or an individual.
    pub is_company: Option<bool>,
    pub name: Option<String>,
    pub company: Option<String>,
    pub code: Option<String>,
    /// With area code and extension for landlines, e.g. 010-62345678-123.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    pub customer_group: Option<String>,
    pub tags: Option<Vec<String>>,
    /// urgent, considering, watching, not_this_year, done or unknown (or the Chinese names)
    pub importance: Option<String>,
    /// A (within 3 months), B (4–6), C (7–12) or D (not within 12)
    pub intent: Option<String>,
    pub hobbies: Option<String>,
    /// YYYY-MM-DD
    pub birthday: Option<String>,
    pub birthday_reminder: Option<bool>,
    pub notes: Option<String>,
    pub blacklisted: Option<bool>,
    pub blacklist_reason: Option<String>,
    /// Custom field code → value (text, number, YYYY-MM-DD or one of the choices).
    #[schema(value_type = Option<Object>)]
    pub custom: Option<Map<String, Value>>,
}

impl CustomerInput {
    /// Lays `patch` over `self`: fields the patch sets replace, "" clears.
    fn overlay(mut self, patch: CustomerInput) -> CustomerInput {
        macro_rules! take {
            ($($f:ident),*) => { $(if patch.$f.is_some() { self.$f = patch.$f; })* };
        }
        take!(
            kind,
            is_company,
            name,
            company,
            code,
            phone,
            email,
            address,
            region,
            industry,
            source,
            customer_group,
            tags,
            importance,
            intent,
            hobbies,
            birthday,
            birthday_reminder,
            notes,
            blacklisted,
            blacklist_reason
        );
        if let Some(custom) = patch.custom {
            let mut merged = self.custom.take().unwrap_or_default();
            merged.extend(custom);
            self.custom = Some(merged);
        }
        self
    }
}

/// A customer's fields after checking, as stored.
#[derive(Debug, Clone, PartialEq)]
struct Fields {
    kind: CustomerKind,
    is_company: bool,
    name: String,
    company: Option<String>,
    code: Option<String>,
    phone: Option<Phone>,
    email: Option<String>,
    address: Option<String>,
    region: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    customer_group: Option<String>,
    tags: Vec<String>,
    importance: Option<Importance>,
    intent: Option<Intent>,
    hobbies: Option<String>,
    birthday: Option<NaiveDate>,
    birthday_reminder: bool,
    notes: Option<String>,
    blacklisted: bool,
    blacklist_reason: Option<String>,
    custom: Map<String, Value>,
}

fn text(field: &str, v: &Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    validate::optional_text(field, v.as_deref(), max)
}

fn check(input: &CustomerInput, defs: &[FieldDef]) -> Result<Fields, Invalid> {
    let name = validate::required_text("name", input.name.as_deref().unwrap_or_default(), 100)?;
    let phone = text("phone", &input.phone, 40)?
        .map(|p| Phone::parse("phone", &p))
        .transpose()?;
    let email = text("email", &input.email, 254)?
        .map(|e| validate::email("email", &e))
        .transpose()?;
    let mut tags: Vec<String> = Vec::new();
    for t in input.tags.iter().flatten() {
        let t = validate::required_text("tags", t, 20)?;
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    if tags.len() > 20 {
        return Err(Invalid::new(
            "tags",
            "too_many",
            "a customer has at most 20 tags",
        ));
    }
    let blacklisted = input.blacklisted.unwrap_or(false);
    let blacklist_reason = text("blacklist_reason", &input.blacklist_reason, 200)?;
    if blacklisted && blacklist_reason.is_none() {
        return Err(Invalid::new(
            "blacklist_reason",
            "required",
            "say why the customer is blacklisted",
        ));
    }
    let custom = check_custom(input.custom.as_ref(), defs)?;
    Ok(Fields {
        kind: match text("kind", &input.kind, 20)? {
            Some(k) => CustomerKind::parse_field("kind", &k)?,
            None => CustomerKind::Customer,
        },
        is_company: input.is_company.unwrap_or(true),
        name,
        company: text("company", &input.company, 100)?,
        code: text("code", &input.code, 50)?,
        phone,
        email,
        address: text("address", &input.address, 200)?,
        region: text("region", &input.region, 50)?,
        industry: text("industry", &input.industry, 50)?,
        source: text("source", &input.source, 50)?,
        customer_group: text("customer_group", &input.customer_group, 50)?,
        tags,
        importance: text("importance", &input.importance, 20)?
            .map(|v| Importance::parse_field("importance", &v))
            .transpose()?,
        intent: text("intent", &input.intent, 20)?
            .map(|v| Intent::parse_field("intent", &v))
            .transpose()?,
        hobbies: text("hobbies", &input.hobbies, 200)?,
        birthday: text("birthday", &input.birthday, 20)?
            .map(|v| rules::date("birthday", &v))
            .transpose()?,
        birthday_reminder: input.birthday_reminder.unwrap_or(true),
        notes: text("notes", &input.notes, 2000)?,
        blacklist_reason: blacklist_reason.filter(|_| blacklisted),
        blacklisted,
        custom,
    })
}

fn check_custom(
    values: Option<&Map<String, Value>>,
    defs: &[FieldDef],
) -> Result<Map<String, Value>, Invalid> {
    let empty = Map::new();
    let values = values.unwrap_or(&empty);
    if let Some(unknown) = values.keys().find(|k| !defs.iter().any(|d| &d.code == *k)) {
        return Err(Invalid::new(
            &format!("custom.{unknown}"),
            "unknown_field",
            format!("there is no custom field '{unknown}' for this customer's org"),
        ));
    }
    let mut out = Map::new();
    for d in defs {
        let v = d.check(values.get(&d.code).unwrap_or(&Value::Null))?;
        if !v.is_null() {
            out.insert(d.code.clone(), v);
        }
    }
    Ok(out)
}

/// Today in the product's home zone (China Standard Time).
fn today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&china()).date_naive()
}

/// China Standard Time: UTC+8 all year (no daylight saving), so a fixed offset is exact.
fn china() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is an offset")
}

// ---------------------------------------------------------------- scope in SQL

/// Appends the condition "the caller may see (`customer.view`) or change (`customer.edit`) the
/// customer `c` of org `o`".
pub(crate) fn reachable<'s>(sql: &'s mut Sql, scope: &Scope, permission: &str) -> &'s mut Sql {
    sql.push("(")
        .record_reach("o.path", "c.owner_id", &scope.record_reach(permission));
    if permission == "customer.view" {
        sql.push(" OR (c.owner_id IS NULL AND ")
            .reach("o.path", &scope.reach(permission))
            .push(")");
    }
    sql.push(" OR c.id IN (SELECT s.customer_id FROM customer_shares s WHERE s.user_id = ")
        .arg(scope.user_id);
    if permission != "customer.view" {
        sql.push(" AND s.can_edit = 1");
    }
    sql.push("))")
}

async fn row_for<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    scope: &Scope,
    permission: &str,
    id: i64,
) -> Result<CustomerRow> {
    let mut sql = Sql::new(&format!("{CUSTOMER_SELECT} WHERE c.id = "));
    sql.arg(id).push(" AND ");
    reachable(&mut sql, scope, permission);
    sql.fetch_one(ex).await
}

/// A customer the caller may change, read inside the write transaction.
async fn editable(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    id: i64,
) -> Result<CustomerRow> {
    require(scope, "customer.edit")?;
    match row_for(&mut **tx, scope, "customer.edit", id).await {
        // seen but not editable is a missing permission; not seen at all stays a 404
        Err(StoreError::NotFound)
            if row_for(&mut **tx, scope, "customer.view", id).await.is_ok() =>
        {
            Err(StoreError::Forbidden("customer.edit"))
        }
        other => other,
    }
}

// ---------------------------------------------------------------- timeline and audit

/// One change on the customer's timeline, and the same in the audit log.
async fn event(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    customer_id: i64,
    org_path: &str,
    action: &str,
    summary: String,
    changes: Option<Changes>,
) -> Result<()> {
    let changes_json = changes
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(|c| c.to_json());
    Sql::new("INSERT INTO customer_events (customer_id, at, user_id, username, action, summary, changes) VALUES (")
        .arg(customer_id)
        .push(", ")
        .arg(now_millis())
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(&scope.username)
        .push(", ")
        .arg(action)
        .push(", ")
        .arg(&summary)
        .push(", ")
        .arg(changes_json)
        .push(")")
        .execute(&mut **tx)
        .await?;
    audit::record(
        &mut **tx,
        scope.into(),
        Entry {
            org_path,
            action,
            entity: "customer",
            entity_id: Some(customer_id),
            summary,
            changes,
        },
    )
    .await
}

// ---------------------------------------------------------------- the search index

/// Rebuilds a customer's search terms and phone index from its row and its contacts.
async fn reindex(tx: &mut Transaction<'static, Any>, customer_id: i64) -> Result<()> {
    delete_terms(tx, &[customer_id]).await?;
    Sql::new("DELETE FROM customer_phones WHERE customer_id = ")
        .arg(customer_id)
        .execute(&mut **tx)
        .await?;
    index(tx, customer_id).await
}

/// Customers of one term part from which on their terms are deleted by reading the whole part
/// (about two million terms) rather than looking each customer's terms up.
const WHOLE_PART_DELETE: usize = 4_096;

/// Deletes these customers' search terms; their rows must still hold the search text the terms
/// were made from. The term index is kept by part and term only, so a customer's terms are
/// looked up by the terms its search text can have, or, for many customers of one part, found by
/// reading the part.
async fn delete_terms(tx: &mut Transaction<'static, Any>, ids: &[i64]) -> Result<()> {
    let mut by_part: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for id in ids {
        by_part.entry(rules::term_part(*id)).or_default().push(*id);
    }
    for (part, ids) in by_part {
        if ids.len() >= WHOLE_PART_DELETE {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            Sql::literal(&format!(
                "DELETE FROM customer_terms WHERE part = {part} AND customer_id IN ({})",
                list.join(", ")
            ))
            .execute(&mut **tx)
            .await?;
            continue;
        }
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new("SELECT id, search_text FROM customers WHERE ");
            sql.in_ids("id", chunk);
            let texts: Vec<(i64, String)> = sql.fetch_all(&mut **tx).await?;
            for (id, text) in texts {
                let terms = rules::search_text_terms(&text);
                if terms.is_empty() {
                    // a name of punctuation only
                    continue;
                }
                let mut delete = format!(
                    "DELETE FROM customer_terms WHERE part = {part} AND customer_id = {id} AND term IN ("
                );
                for (i, term) in terms.iter().enumerate() {
                    if i > 0 {
                        delete.push_str(", ");
                    }
                    crate::db::push_quoted(&mut delete, term);
                }
                delete.push(')');
                Sql::literal(&delete).execute(&mut **tx).await?;
            }
        }
    }
    Ok(())
}

/// Writes a customer's search terms and phone index (it has none yet).
async fn index(tx: &mut Transaction<'static, Any>, customer_id: i64) -> Result<()> {
    let (name, company, code, phone): (String, Option<String>, Option<String>, Option<String>) =
        Sql::new("SELECT name, company, code, phone FROM customers WHERE id = ")
            .arg(customer_id)
            .fetch_one(&mut **tx)
            .await?;
    let contacts: Vec<(String, Option<String>, Option<String>)> =
        Sql::new("SELECT name, phone, mobile FROM contacts WHERE customer_id = ")
            .arg(customer_id)
            .fetch_all(&mut **tx)
            .await?;
    let mut src = SearchSource::default();
    src.names.push(&name);
    src.names.extend(company.as_deref());
    src.names.extend(code.as_deref());
    for (n, _, _) in &contacts {
        src.names.push(n);
    }
    let mut phones: Vec<String> = Vec::new();
    for p in phone.iter().chain(
        contacts
            .iter()
            .flat_map(|(_, p, m)| p.iter().chain(m.iter())),
    ) {
        if let Ok(parsed) = Phone::parse("phone", p) {
            phones.push(parsed.digits);
        }
    }
    phones.sort();
    phones.dedup();
    src.phones = phones.iter().map(String::as_str).collect();
    let terms = rules::search_terms(&src);
    Sql::new("UPDATE customers SET search_text = ")
        .arg(rules::search_text(&src))
        .push(" WHERE id = ")
        .arg(customer_id)
        .execute(&mut **tx)
        .await?;
    insert_pairs(
        tx,
        "customer_terms (term, customer_id, part)",
        &terms,
        &[customer_id, rules::term_part(customer_id)],
    )
    .await?;
    insert_pairs(
        tx,
        "customer_phones (digits, customer_id)",
        &phones,
        &[customer_id],
    )
    .await
}

/// Inserts (value, tail…) rows, a few hundred per statement: one customer's index rows, the
/// tail being its id (and the term part).
async fn insert_pairs(
    tx: &mut Transaction<'static, Any>,
    into: &str,
    values: &[String],
    tail: &[i64],
) -> Result<()> {
    for chunk in values.chunks(300) {
        let mut sql = Sql::new(&format!("INSERT INTO {into} VALUES "));
        for (i, v) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(").arg(v);
            for t in tail {
                sql.push(", ").arg(*t);
            }
            sql.push(")");
        }
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn set_tags(
    tx: &mut Transaction<'static, Any>,
    customer_id: i64,
    tags: &[String],
) -> Result<()> {
    Sql::new("DELETE FROM customer_tags WHERE customer_id = ")
        .arg(customer_id)
        .execute(&mut **tx)
        .await?;
    insert_pairs(tx, "customer_tags (tag, customer_id)", tags, &[customer_id]).await
}

// ---------------------------------------------------------------- custom fields

/// The custom fields in force for customers of an org: its own and its ancestors'.
async fn field_defs<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    path: &OrgPath,
) -> Result<Vec<FieldDef>> {
    let mut sql =
        Sql::new("SELECT code, label, kind, choices, required FROM customer_fields WHERE ");
    sql.in_ids("org_id", &path.ids()).push(" ORDER BY id");
    let rows: Vec<(String, String, String, String, i64)> = sql.fetch_all(ex).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(code, label, kind, choices, required)| {
            Some(FieldDef {
                code,
                label,
                kind: FieldKind::parse(&kind)?,
                choices: serde_json::from_str(&choices).unwrap_or_default(),
                required: required != 0,
            })
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomField {
    pub id: i64,
    /// The org that defined it; it applies to that org's whole subtree.
    pub org_id: i64,
    pub code: String,
    pub label: String,
    /// text, number, date or choice
    pub kind: String,
    pub choices: Vec<String>,
    pub required: bool,
}

/// Defines a custom field for the customers of an org and its subtree.
pub async fn create_field(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    def: FieldDef,
) -> Result<CustomField> {
    require(scope, "settings.manage")?;
    def.validate()?;
    let mut tx = db.begin().await?;
    let path = org_within(&mut tx, scope, "settings.manage", org_id).await?;
    let id = Sql::new("INSERT INTO customer_fields (org_id, code, label, kind, choices, required, created_at) VALUES (")
        .arg(org_id)
        .push(", ")
        .arg(&def.code)
        .push(", ")
        .arg(def.label.trim())
        .push(", ")
        .arg(def.kind.code())
        .push(", ")
        .arg(serde_json::to_string(&def.choices).expect("strings serialise"))
        .push(", ")
        .arg(def.required)
        .push(", ")
        .arg(now_millis())
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await
        .map_err(|e| e.unique(&["code"]))?;
    let mut changes = Changes::new();
    changes
        .set("code", &def.code)
        .set("kind", &def.kind.code())
        .set("required", &def.required);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "create",
            entity: "customer_field",
            entity_id: Some(id),
            summary: def.label.clone(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CustomField {
        id,
        org_id,
        code: def.code,
        label: def.label.trim().to_string(),
        kind: def.kind.code().to_string(),
        choices: def.choices,
        required: def.required,
    })
}

/// The custom fields in force at an org (defined there or above).
pub async fn fields(db: &Db, scope: &Scope, org_id: i64) -> Result<Vec<CustomField>> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    let path = org_within(&mut tx, scope, "customer.view", org_id).await?;
    let mut sql = Sql::new(
        "SELECT id, org_id, code, label, kind, choices, required FROM customer_fields WHERE ",
    );
    sql.in_ids("org_id", &path.ids()).push(" ORDER BY id");
    let rows: Vec<(i64, i64, String, String, String, String, i64)> =
        sql.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, org_id, code, label, kind, choices, required)| CustomField {
                id,
                org_id,
                code,
                label,
                kind,
                choices: serde_json::from_str(&choices).unwrap_or_default(),
                required: required != 0,
            },
        )
        .collect())
}

/// An org within the caller's org reach for `permission`; one outside is a wrong choice (422).
async fn org_within(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    permission: &str,
    org_id: i64,
) -> Result<OrgPath> {
    let mut sql = Sql::new("SELECT path FROM orgs WHERE id = ");
    sql.arg(org_id)
        .push(" AND ")
        .reach("path", &scope.reach(permission));
    let found: Option<(String,)> = sql.fetch_optional(&mut **tx).await?;
    let (path,) = found.ok_or_else(|| {
        Invalid::new(
            "org_id",
            "unknown_org",
            format!("there is no org {org_id} within your reach"),
        )
    })?;
    Ok(OrgPath::parse(&path).expect("stored org paths are well formed"))
}

// ---------------------------------------------------------------- create

pub struct NewCustomer {
    pub input: CustomerInput,
    /// Default: the owner's org, else the caller's.
    pub org_id: Option<i64>,
    /// None: the caller; Some(None): into the public pool; Some(Some(id)): that rep (needs customer.assign).
    pub owner_id: Option<Option<i64>>,
}

/// Whose customer a new or reassigned one becomes: the caller himself, or someone within the
/// reach of `customer.assign`. Answers the owner's org path.
async fn owner_in_reach(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    owner_id: i64,
) -> Result<OrgPath> {
    let mut sql = Sql::new(
        "SELECT o.path FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.enabled = 1 AND u.id = ",
    );
    sql.arg(owner_id);
    if owner_id != scope.user_id {
        require(scope, "customer.assign")?;
        sql.push(" AND ")
            .reach("o.path", &scope.reach("customer.assign"));
    }
    let found: Option<(String,)> = sql.fetch_optional(&mut **tx).await?;
    let (path,) = found.ok_or_else(|| {
        Invalid::new(
            "owner_id",
            "unknown_owner",
            format!("there is no rep {owner_id} you may give customers to"),
        )
    })?;
    Ok(OrgPath::parse(&path).expect("stored org paths are well formed"))
}

pub async fn create(db: &Db, scope: &Scope, new: NewCustomer) -> Result<Created> {
    require(scope, "customer.edit")?;
    let mut tx = db.begin().await?;
    let owner_id = new.owner_id.unwrap_or(Some(scope.user_id));
    if owner_id.is_none() {
        require(scope, "customer.assign")?;
    }
    let owner_path = match owner_id {
        Some(o) => Some(owner_in_reach(&mut tx, scope, o).await?),
        None => None,
    };
    let path = match (new.org_id, &owner_path) {
        (Some(org_id), _) => org_within(&mut tx, scope, "customer.edit", org_id).await?,
        (None, Some(owner_org)) => owner_org.clone(),
        (None, None) => scope.org_path.clone(),
    };
    let org_id = path.id();
    let defs = field_defs(&mut *tx, &path).await?;
    let fields = check(&new.input, &defs)?;
    let duplicates = duplicates_of(&mut tx, scope, &fields, None).await?;
    let new_row = NewRow {
        org_id,
        owner_id,
        import_id: None,
        contact: None,
    };
    let id = insert(&mut tx, scope, new_row, &fields).await?;
    let mut changes = Changes::new();
    changes
        .set("name", &fields.name)
        .set("kind", &fields.kind.code())
        .set("owner_id", &owner_id);
    event(
        &mut tx,
        scope,
        id,
        path.as_str(),
        "create",
        fields.name.clone(),
        Some(changes),
    )
    .await?;
    // read without the view condition: one may make a customer for a rep whose customers one cannot see
    let row: CustomerRow = Sql::new(&format!("{CUSTOMER_SELECT} WHERE c.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Created {
        customer: row.shown(scope),
        duplicates,
    })
}

/// Writes a checked customer, its first contact if any, and its indexes (no event).
async fn insert(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    new: NewRow<'_>,
    f: &Fields,
) -> Result<i64> {
    let NewRow {
        org_id,
        owner_id,
        import_id,
        contact,
    } = new;
    let now = now_millis();
    let mut sql = Sql::new("INSERT INTO customers (org_id, owner_id, pool_since, name_company_key, search_text, last_touched_at, import_id, created_by, created_at, updated_at, ");
    sql.push(FIELD_COLUMNS)
        .push(") VALUES (")
        .arg(org_id)
        .push(", ")
        .arg(owner_id)
        .push(", ")
        .arg(owner_id.is_none().then_some(now))
        .push(", ")
        .arg(rules::name_company_key(&f.name, f.company.as_deref()))
        .push(", '', ")
        .arg(now)
        .push(", ")
        .arg(import_id)
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(", ");
    push_field_values(&mut sql, f, None);
    sql.push(") RETURNING id");
    let id = sql.fetch_i64(&mut **tx).await?;
    if let Some(c) = contact {
        let mut sql = Sql::new("INSERT INTO contacts (customer_id, created_at, updated_at, ");
        sql.push(CONTACT_COLUMNS)
            .push(") VALUES (")
            .arg(id)
            .push(", ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(", ");
        contact_values(&mut sql, c);
        sql.push(")").execute(&mut **tx).await?;
    }
    insert_pairs(tx, "customer_tags (tag, customer_id)", &f.tags, &[id]).await?;
    index(tx, id).await?;
    Ok(id)
}

/// Where a new customer goes and what comes with it.
struct NewRow<'a> {
    org_id: i64,
    owner_id: Option<i64>,
    import_id: Option<i64>,
    contact: Option<&'a ContactFields>,
}

const FIELD_COLUMNS: &str = "kind, is_company, name, company, code, phone, email, address, region, industry, source, customer_group, tags, importance, intent, expected_close_by, hobbies, birthday, birthday_md, birthday_reminder, notes, blacklisted, blacklist_reason, custom";

/// The values for [`FIELD_COLUMNS`], in order. The expected-close date restarts only when the
/// intent changes (`kept_close_by` holds the one in force otherwise).
fn push_field_values(sql: &mut Sql, f: &Fields, kept_close_by: Option<Option<String>>) {
    let close_by = kept_close_by.unwrap_or_else(|| {
        f.intent
            .and_then(|i| i.expected_close_by(today()))
            .map(|d| d.format("%Y-%m-%d").to_string())
    });
    sql.arg(f.kind.code())
        .push(", ")
        .arg(f.is_company)
        .push(", ")
        .arg(&f.name)
        .push(", ")
        .arg(f.company.clone())
        .push(", ")
        .arg(f.code.clone())
        .push(", ")
        .arg(f.phone.as_ref().map(|p| p.text.clone()))
        .push(", ")
        .arg(f.email.clone())
        .push(", ")
        .arg(f.address.clone())
        .push(", ")
        .arg(f.region.clone())
        .push(", ")
        .arg(f.industry.clone())
        .push(", ")
        .arg(f.source.clone())
        .push(", ")
        .arg(f.customer_group.clone())
        .push(", ")
        .arg(serde_json::to_string(&f.tags).expect("strings serialise"))
        .push(", ")
        .arg(f.importance.map(|i| i.code()))
        .push(", ")
        .arg(f.intent.map(|i| i.code()))
        .push(", ")
        .arg(close_by)
        .push(", ")
        .arg(f.hobbies.clone())
        .push(", ")
        .arg(f.birthday.map(|d| d.format("%Y-%m-%d").to_string()))
        .push(", ")
        .arg(f.birthday.map(|d| d.format("%m-%d").to_string()))
        .push(", ")
        .arg(f.birthday_reminder)
        .push(", ")
        .arg(f.notes.clone())
        .push(", ")
        .arg(f.blacklisted)
        .push(", ")
        .arg(f.blacklist_reason.clone())
        .push(", ")
        .arg(Value::Object(f.custom.clone()).to_string());
}

/// Likely duplicates of `f` among all customers, visible to the caller or not (then without id or
/// name). `except` leaves the customer itself out.
async fn duplicates_of(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    f: &Fields,
    except: Option<i64>,
) -> Result<Vec<Duplicate>> {
    let mut found: Vec<Duplicate> = Vec::new();
    let key = rules::name_company_key(&f.name, f.company.as_deref());
    let mut probes: Vec<(&str, Sql)> = Vec::new();
    if let Some(p) = &f.phone {
        let mut sql = Sql::new("SELECT c.id FROM customer_phones cp JOIN customers c ON c.id = cp.customer_id WHERE cp.digits = ");
        sql.arg(&p.digits);
        probes.push(("same_phone", sql));
    }
    let mut sql = Sql::new("SELECT c.id FROM customers c WHERE c.name_company_key = ");
    sql.arg(key);
    probes.push(("same_name_company", sql));
    for (reason, mut probe) in probes {
        if let Some(e) = except {
            probe.push(" AND c.id <> ").arg(e);
        }
        probe.push(" ORDER BY c.id LIMIT 5");
        let ids: Vec<(i64,)> = probe.fetch_all(&mut **tx).await?;
        for (id,) in ids {
            if found.iter().any(|d| d.customer_id == Some(id)) {
                continue;
            }
            let (owner,): (Option<i64>,) = Sql::new("SELECT owner_id FROM customers WHERE id = ")
                .arg(id)
                .fetch_one(&mut **tx)
                .await?;
            let seen = row_for(&mut **tx, scope, "customer.view", id).await.ok();
            found.push(Duplicate {
                reason: reason.to_string(),
                visible: seen.is_some(),
                customer_id: seen.as_ref().map(|r| r.id),
                name: seen.map(|r| r.name),
                in_pool: owner.is_none(),
            });
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------- read

pub async fn get(db: &Db, scope: &Scope, id: i64) -> Result<Customer> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    let row = row_for(&mut *tx, scope, "customer.view", id).await?;
    let can_edit =
        scope.has("customer.edit") && row_for(&mut *tx, scope, "customer.edit", id).await.is_ok();
    let contacts: Vec<Contact> = Sql::new(&format!("{CONTACT_SELECT} WHERE customer_id = "))
        .arg(id)
        .push(" ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut c = row.shown(scope);
    c.contacts = Some(
        contacts
            .into_iter()
            .map(|k| shown_contact(scope, k))
            .collect(),
    );
    c.can_edit = Some(can_edit);
    Ok(c)
}

fn shown_contact(scope: &Scope, mut c: Contact) -> Contact {
    c.phone = shown_phone(scope, c.phone);
    c.mobile = shown_phone(scope, c.mobile);
    c
}

/// How a list is ordered; every order is a keyset (value, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Newest first.
    #[default]
    Newest,
    Name,
    /// Most recently changed first.
    Updated,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "newest" | "-created_at" => Some(Sort::Newest),
            "name" => Some(Sort::Name),
            "updated" | "-updated_at" => Some(Sort::Updated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Any part of name, company, code, phone, contact name or phone, or pinyin initials.
    pub q: Option<String>,
    pub kind: Option<String>,
    pub owner_id: Option<i64>,
    /// true: only the pool; false: only owned customers.
    pub in_pool: Option<bool>,
    /// Only customers in this org's subtree.
    pub org_id: Option<i64>,
    pub importance: Option<String>,
    pub intent: Option<String>,
    pub tag: Option<String>,
    pub customer_group: Option<String>,
    pub industry: Option<String>,
    pub blacklisted: Option<bool>,
    /// Follow-ups due on or before this date (YYYY-MM-DD).
    pub follow_up_due_by: Option<String>,
    /// Created at or after / before (UTC ms).
    pub created_from: Option<Millis>,
    pub created_to: Option<Millis>,
    /// Custom field conditions: (code, op, value) with op one of eq, gte, lte.
    pub custom: Vec<(String, String, String)>,
    /// The grade of the latest grading run that scored the customer (needs grading.view).
    pub grade: Option<String>,
    pub sort: Sort,
}

/// A page of customers the caller may see, filtered and in the chosen order.
pub async fn list(
    db: &Db,
    scope: &Scope,
    filter: &CustomerFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<Customer>> {
    require(scope, "customer.view")?;
    let after = crate::db::decode_cursor(cursor)?;
    let bad_cursor = || -> StoreError {
        Invalid::new(
            "cursor",
            "invalid_cursor",
            "the cursor is not one this server made",
        )
        .into()
    };
    let (value, after_id) = match &after {
        Some(a) => {
            let (v, id) = a.rsplit_once('|').ok_or_else(bad_cursor)?;
            (
                Some(v.to_string()),
                Some(id.parse::<i64>().map_err(|_| bad_cursor())?),
            )
        }
        None => (None, None),
    };
    let mut sql = Sql::new(&format!("{CUSTOMER_SELECT} WHERE "));
    reachable(&mut sql, scope, "customer.view");
    push_filter(db, scope, &mut sql, filter).await?;
    match (filter.sort, value, after_id) {
        (Sort::Newest, _, Some(id)) => {
            sql.push(" AND c.id < ").arg(id);
        }
        (Sort::Name, Some(v), Some(id)) => {
            sql.push(" AND (c.name > ")
                .arg(v.clone())
                .push(" OR (c.name = ")
                .arg(v)
                .push(" AND c.id > ")
                .arg(id)
                .push("))");
        }
        (Sort::Updated, Some(v), Some(id)) => {
            let v: i64 = v.parse().map_err(|_| bad_cursor())?;
            sql.push(" AND (c.updated_at < ")
                .arg(v)
                .push(" OR (c.updated_at = ")
                .arg(v)
                .push(" AND c.id < ")
                .arg(id)
                .push("))");
        }
        _ => {}
    }
    let search = filter.q.as_deref().and_then(rules::search_query);
    // A search newest first reads the parts of the term index (ranges of ids) newest first and
    // stops once the page is full, so a common word costs the newest parts only; other orders
    // need every match. Without a search, one statement with no parts.
    let windows: Vec<Vec<i64>> = match &search {
        None => vec![Vec::new()],
        Some(_) => {
            let last_id = match (filter.sort, after_id) {
                (Sort::Newest, Some(id)) => id,
                _ => {
                    Sql::new("SELECT COALESCE(MAX(id), 0) FROM customers")
                        .fetch_i64(&db.pool)
                        .await?
                }
            };
            let mut parts: Vec<i64> = (0..=rules::term_part(last_id)).rev().collect();
            if filter.sort == Sort::Newest {
                let mut windows = Vec::new();
                for size in [2, 8] {
                    let rest = parts.split_off(size.min(parts.len()));
                    windows.push(std::mem::replace(&mut parts, rest));
                }
                windows.push(parts);
                windows.retain(|w| !w.is_empty());
                windows
            } else {
                vec![parts]
            }
        }
    };
    let (order, page_order) = match filter.sort {
        Sort::Newest => (" ORDER BY c.id DESC", "page.id DESC"),
        Sort::Name => (" ORDER BY c.name, c.id", "page.name, page.id"),
        Sort::Updated => (
            " ORDER BY c.updated_at DESC, c.id DESC",
            "page.updated_at DESC, page.id DESC",
        ),
    };
    let mut rows: Vec<CustomerRow> = Vec::new();
    for parts in &windows {
        let mut sql = sql.clone();
        if let Some(search) = &search {
            push_search(&mut sql, db.backend, search, parts);
        }
        sql.push(order)
            .push(" LIMIT ")
            .arg(limit + 1 - rows.len() as i64);
        let page: String = page_as_json(db.backend, sql, page_order)
            .fetch_one::<(String,), _>(&db.pool)
            .await?
            .0;
        rows.extend(
            serde_json::from_str::<Vec<CustomerRow>>(&page)
                .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
        );
        if rows.len() as i64 > limit {
            break;
        }
    }
    let sort = filter.sort;
    let page = Page::from_rows(rows, limit, |r: &CustomerRow| match sort {
        Sort::Newest => format!("|{}", r.id),
        Sort::Name => format!("{}|{}", r.name, r.id),
        Sort::Updated => format!("{}|{}", r.updated_at, r.id),
    });
    let mut items: Vec<Customer> = page.items.into_iter().map(|r| r.shown(scope)).collect();
    if scope.has("grading.view") && !items.is_empty() {
        let ids: Vec<i64> = items.iter().map(|c| c.id).collect();
        let mut sql = Sql::new("SELECT g.customer_id, g.grade FROM grade_results g WHERE ");
        sql.in_ids("g.customer_id", &ids).push(
            " AND g.run_id = (SELECT MAX(l.run_id) FROM grade_results l WHERE l.customer_id = g.customer_id)",
        );
        let grades: std::collections::HashMap<i64, String> = sql
            .fetch_all::<(i64, String), _>(&db.pool)
            .await?
            .into_iter()
            .collect();
        for c in &mut items {
            c.grade = grades.get(&c.id).cloned();
        }
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// Appends the search box's condition ([`rules::search_query`]'s prefix and full text), its term
/// range looked up in the given parts of the term index. PostgreSQL is handed the matches as an
/// array: with `IN (SELECT …)` it planned a merge join that walked customers newest first until
/// enough matched (400,000 rows for a rare word among old customers, 0.5 s); with the array it
/// looks the matches up by id.
fn push_search(
    sql: &mut Sql,
    backend: Backend,
    (prefix, full): &(String, Option<String>),
    term_parts: &[i64],
) {
    let mut hi = prefix.clone();
    hi.push(char::MAX);
    let (open, close) = match backend {
        Backend::Sqlite => (" AND c.id IN (", ")"),
        Backend::Postgres => (" AND c.id = ANY(ARRAY(", "))"),
    };
    sql.push(open)
        .push("SELECT t.customer_id FROM customer_terms t WHERE ")
        .in_ids("t.part", term_parts)
        .push(" AND t.term >= ")
        .arg(prefix.as_str())
        .push(" AND t.term < ")
        .arg(hi)
        .push(close);
    if let Some(full) = full {
        sql.push(" AND c.search_text LIKE ")
            .arg(format!("%{}%", like_escape(full)))
            .push(" ESCAPE '\\'");
    }
}

/// Appends the filter's conditions, but for the search box's (see [`push_search`]).
async fn push_filter(db: &Db, scope: &Scope, sql: &mut Sql, f: &CustomerFilter) -> Result<()> {
    if let Some(g) = f.grade.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        require(scope, "grading.view")?;
        sql.push(" AND EXISTS (SELECT 1 FROM grade_results g WHERE g.customer_id = c.id AND g.grade = ")
            .arg(g)
            .push(" AND g.run_id = (SELECT MAX(l.run_id) FROM grade_results l WHERE l.customer_id = c.id))");
    }
    if let Some(k) = &f.kind {
        sql.push(" AND c.kind = ")
            .arg(CustomerKind::parse_field("kind", k)?.code());
    }
    if let Some(o) = f.owner_id {
        sql.push(" AND c.owner_id = ").arg(o);
    }
    match f.in_pool {
        Some(true) => {
            sql.push(" AND c.owner_id IS NULL");
        }
        Some(false) => {
            sql.push(" AND c.owner_id IS NOT NULL");
        }
        None => {}
    }
    if let Some(org_id) = f.org_id {
        crate::db::only_under(
            db,
            sql,
            &scope.reach_any(&["customer.view", "org.view"]),
            org_id,
        )
        .await?;
    }
    if let Some(i) = &f.importance {
        sql.push(" AND c.importance = ")
            .arg(Importance::parse_field("importance", i)?.code());
    }
    if let Some(i) = &f.intent {
        sql.push(" AND c.intent = ")
            .arg(Intent::parse_field("intent", i)?.code());
    }
    if let Some(t) = &f.tag {
        sql.push(" AND c.id IN (SELECT customer_id FROM customer_tags WHERE tag = ")
            .arg(t.trim())
            .push(")");
    }
    if let Some(g) = &f.customer_group {
        sql.push(" AND c.customer_group = ").arg(g.trim());
    }
    if let Some(i) = &f.industry {
        sql.push(" AND c.industry = ").arg(i.trim());
    }
    if let Some(b) = f.blacklisted {
        sql.push(" AND c.blacklisted = ").arg(b);
    }
    if let Some(d) = &f.follow_up_due_by {
        let d = rules::date("follow_up_due_by", d)?;
        sql.push(" AND c.next_follow_up_on <= ")
            .arg(d.format("%Y-%m-%d").to_string());
    }
    if let Some(t) = f.created_from {
        sql.push(" AND c.created_at >= ").arg(t);
    }
    if let Some(t) = f.created_to {
        sql.push(" AND c.created_at < ").arg(t);
    }
    for (code, op, value) in &f.custom {
        push_custom_condition(sql, db.backend, code, op, value)?;
    }
    Ok(())
}

/// A condition on a custom field. Its values live in the customer's JSON text, read with each
/// backend's own JSON operator (the one place the two differ here).
fn push_custom_condition(
    sql: &mut Sql,
    backend: crate::Backend,
    code: &str,
    op: &str,
    value: &str,
) -> Result<()> {
    validate::code("custom", code, 32)?;
    let cmp = match op {
        "eq" => "=",
        "gte" => ">=",
        "lte" => "<=",
        _ => {
            return Err(Invalid::new(
                "custom",
                "invalid_choice",
                "a custom condition's operator is eq, gte or lte",
            )
            .into())
        }
    };
    // the code was checked to be letters, digits, '-', '_' and '.', so it is safe inside quotes
    let column = match backend {
        crate::Backend::Sqlite => format!("(c.custom ->> '$.\"{code}\"')"),
        crate::Backend::Postgres => format!("(c.custom::jsonb ->> '{code}')"),
    };
    match value.parse::<f64>() {
        Ok(n) if op != "eq" => {
            sql.push(" AND CAST(")
                .push(&column)
                .push(" AS REAL) ")
                .push(cmp)
                .push(" ")
                .arg(n);
        }
        _ => {
            sql.push(" AND ")
                .push(&column)
                .push(" ")
                .push(cmp)
                .push(" ")
                .arg(value.to_string());
        }
    }
    Ok(())
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

// ---------------------------------------------------------------- update

pub async fn update(db: &Db, scope: &Scope, id: i64, patch: CustomerInput) -> Result<Customer> {
    let mut tx = db.begin().await?;
    let before = editable(&mut tx, scope, id).await?;
    let path = OrgPath::parse(&before.org_path).expect("stored org paths are well formed");
    let defs = field_defs(&mut *tx, &path).await?;
    let before_fields = check(&before.as_input(), &defs).ok();
    let input = before.as_input().overlay(patch);
    let after = check(&input, &defs)?;
    let kept_close_by = (before_fields.as_ref().map(|b| b.intent) == Some(after.intent))
        .then(|| before.expected_close_by.clone());
    let mut sql = Sql::new("UPDATE customers SET (");
    sql.push(FIELD_COLUMNS).push(") = (");
    push_field_values(&mut sql, &after, kept_close_by);
    sql.push("), name_company_key = ")
        .arg(rules::name_company_key(
            &after.name,
            after.company.as_deref(),
        ))
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id);
    sql.execute(&mut *tx).await?;
    set_tags(&mut tx, id, &after.tags).await?;
    reindex(&mut tx, id).await?;
    let changes = field_changes(&before.as_input(), &input);
    // lead → customer, customer ↔ agent: a conversion, kept as such on the timeline
    let action = if before.kind != after.kind.code() {
        "convert"
    } else {
        "update"
    };
    event(
        &mut tx,
        scope,
        id,
        &before.org_path,
        action,
        after.name.clone(),
        Some(changes),
    )
    .await?;
    let row = row_for(&mut *tx, scope, "customer.view", id).await?;
    tx.commit().await?;
    Ok(row.shown(scope))
}

fn field_changes(before: &CustomerInput, after: &CustomerInput) -> Changes {
    let mut c = Changes::new();
    macro_rules! diff {
        ($($f:ident),*) => { $(c.field(stringify!($f), &before.$f, &after.$f);)* };
    }
    diff!(
        kind,
        is_company,
        name,
        company,
        code,
        phone,
        email,
        address,
        region,
        industry,
        source,
        customer_group,
        tags,
        importance,
        intent,
        hobbies,
        birthday,
        birthday_reminder,
        notes,
        blacklisted,
        blacklist_reason,
        custom
    );
    c
}

// ---------------------------------------------------------------- contacts

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub name: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
    /// male or female
    pub gender: Option<String>,
    pub approx_age: Option<i64>,
    /// A landline with area code and extension.
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    /// YYYY-MM-DD
    pub birthday: Option<String>,
    /// [{"label","date"}]
    #[schema(value_type = Option<Vec<Object>>)]
    pub important_dates: Option<Vec<ImportantDate>>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ImportantDate {
    pub label: String,
    /// YYYY-MM-DD
    pub date: String,
}

struct ContactFields {
    name: String,
    department: Option<String>,
    title: Option<String>,
    gender: Option<&'static str>,
    approx_age: Option<i64>,
    phone: Option<String>,
    mobile: Option<String>,
    email: Option<String>,
    birthday: Option<String>,
    important_dates: String,
    notes: Option<String>,
}

fn check_contact(c: &ContactInput) -> Result<ContactFields, Invalid> {
    let phone_of = |field: &str, v: &Option<String>| -> Result<Option<String>, Invalid> {
        text(field, v, 40)?
            .map(|p| Phone::parse(field, &p).map(|p| p.text))
            .transpose()
    };
    if c.approx_age.is_some_and(|a| !(1..=120).contains(&a)) {
        return Err(Invalid::new(
            "approx_age",
            "out_of_range",
            "approx_age must be between 1 and 120",
        ));
    }
    let mut dates = Vec::new();
    for d in c.important_dates.iter().flatten() {
        dates.push(ImportantDate {
            label: validate::required_text("important_dates", &d.label, 30)?,
            date: rules::date("important_dates", &d.date)?
                .format("%Y-%m-%d")
                .to_string(),
        });
    }
    Ok(ContactFields {
        name: validate::required_text("name", c.name.as_deref().unwrap_or_default(), 50)?,
        department: text("department", &c.department, 50)?,
        title: text("title", &c.title, 50)?,
        gender: text("gender", &c.gender, 10)?
            .map(|g| Gender::parse_field("gender", &g).map(Gender::code))
            .transpose()?,
        approx_age: c.approx_age,
        phone: phone_of("phone", &c.phone)?,
        mobile: phone_of("mobile", &c.mobile)?,
        email: text("email", &c.email, 254)?
            .map(|e| validate::email("email", &e))
            .transpose()?,
        birthday: text("birthday", &c.birthday, 20)?
            .map(|b| rules::date("birthday", &b).map(|d| d.format("%Y-%m-%d").to_string()))
            .transpose()?,
        important_dates: serde_json::to_string(&dates).expect("dates serialise"),
        notes: text("notes", &c.notes, 500)?,
    })
}

fn contact_values(sql: &mut Sql, f: &ContactFields) {
    sql.arg(&f.name)
        .push(", ")
        .arg(f.department.clone())
        .push(", ")
        .arg(f.title.clone())
        .push(", ")
        .arg(f.gender)
        .push(", ")
        .arg(f.approx_age)
        .push(", ")
        .arg(f.phone.clone())
        .push(", ")
        .arg(f.mobile.clone())
        .push(", ")
        .arg(f.email.clone())
        .push(", ")
        .arg(f.birthday.clone())
        .push(", ")
        .arg(&f.important_dates)
        .push(", ")
        .arg(f.notes.clone());
}

const CONTACT_COLUMNS: &str = "name, department, title, gender, approx_age, phone, mobile, email, birthday, important_dates, notes";

pub async fn add_contact(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    input: ContactInput,
) -> Result<Contact> {
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    let f = check_contact(&input)?;
    let now = now_millis();
    let mut sql = Sql::new("INSERT INTO contacts (customer_id, created_at, updated_at, ");
    sql.push(CONTACT_COLUMNS)
        .push(") VALUES (")
        .arg(customer_id)
        .push(", ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(", ");
    contact_values(&mut sql, &f);
    sql.push(") RETURNING id");
    let id = sql.fetch_i64(&mut *tx).await?;
    touch(&mut tx, customer_id).await?;
    reindex(&mut tx, customer_id).await?;
    let mut changes = Changes::new();
    changes.set("contact", &f.name);
    event(
        &mut tx,
        scope,
        customer_id,
        &customer.org_path,
        "add_contact",
        f.name.clone(),
        Some(changes),
    )
    .await?;
    let c: Contact = Sql::new(&format!("{CONTACT_SELECT} WHERE id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(shown_contact(scope, c))
}

pub async fn update_contact(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    contact_id: i64,
    patch: ContactInput,
) -> Result<Contact> {
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    let before: Contact = Sql::new(&format!("{CONTACT_SELECT} WHERE id = "))
        .arg(contact_id)
        .push(" AND customer_id = ")
        .arg(customer_id)
        .fetch_one(&mut *tx)
        .await?;
    let merged = ContactInput {
        name: patch.name.or(Some(before.name.clone())),
        department: patch.department.or(before.department.clone()),
        title: patch.title.or(before.title.clone()),
        gender: patch.gender.or(before.gender.clone()),
        approx_age: patch.approx_age.or(before.approx_age),
        phone: patch.phone.or(before.phone.clone()),
        mobile: patch.mobile.or(before.mobile.clone()),
        email: patch.email.or(before.email.clone()),
        birthday: patch.birthday.or(before.birthday.clone()),
        important_dates: patch
            .important_dates
            .or_else(|| serde_json::from_str(&before.important_dates).ok()),
        notes: patch.notes.or(before.notes.clone()),
    };
    let f = check_contact(&merged)?;
    let mut sql = Sql::new("UPDATE contacts SET (");
    sql.push(CONTACT_COLUMNS).push(") = (");
    contact_values(&mut sql, &f);
    sql.push("), updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(contact_id);
    sql.execute(&mut *tx).await?;
    reindex(&mut tx, customer_id).await?;
    let mut changes = Changes::new();
    changes
        .field("name", &before.name, &f.name)
        .field("phone", &before.phone, &f.phone)
        .field("mobile", &before.mobile, &f.mobile)
        .field("title", &before.title, &f.title)
        .field("department", &before.department, &f.department)
        .field("email", &before.email, &f.email);
    event(
        &mut tx,
        scope,
        customer_id,
        &customer.org_path,
        "update_contact",
        f.name.clone(),
        Some(changes),
    )
    .await?;
    let c: Contact = Sql::new(&format!("{CONTACT_SELECT} WHERE id = "))
        .arg(contact_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(shown_contact(scope, c))
}

pub async fn delete_contact(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    contact_id: i64,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    let (name,): (String,) = Sql::new("SELECT name FROM contacts WHERE id = ")
        .arg(contact_id)
        .push(" AND customer_id = ")
        .arg(customer_id)
        .fetch_one(&mut *tx)
        .await?;
    Sql::new("UPDATE activities SET contact_id = NULL WHERE contact_id = ")
        .arg(contact_id)
        .execute(&mut *tx)
        .await?;
    Sql::new("DELETE FROM contacts WHERE id = ")
        .arg(contact_id)
        .execute(&mut *tx)
        .await?;
    reindex(&mut tx, customer_id).await?;
    let mut changes = Changes::new();
    changes.field("contact", &Some(name.clone()), &None::<String>);
    event(
        &mut tx,
        scope,
        customer_id,
        &customer.org_path,
        "delete_contact",
        name,
        Some(changes),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- follow-up records

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Activity {
    pub id: i64,
    pub customer_id: i64,
    pub contact_id: Option<i64>,
    pub user_id: Option<i64>,
    pub user_name: Option<String>,
    /// call, visit, email, meeting or note
    pub kind: String,
    pub content: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub happened_at: i64,
    /// YYYY-MM-DD
    pub next_follow_up_on: Option<String>,
}

const ACTIVITY_SELECT: &str = "SELECT a.id, a.customer_id, a.contact_id, a.user_id, u.name AS user_name, a.kind, a.content, a.happened_at, a.next_follow_up_on FROM activities a LEFT JOIN users u ON u.id = a.user_id";

pub struct NewActivity {
    pub kind: String,
    pub content: String,
    pub contact_id: Option<i64>,
    /// Default: now.
    pub happened_at: Option<Millis>,
    pub next_follow_up_on: Option<String>,
}

/// Records a follow-up (沟通记录); it restarts the pool clock and sets the next follow-up date.
pub async fn add_activity(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    new: NewActivity,
) -> Result<Activity> {
    let kind = ActivityKind::parse_field("kind", &new.kind)?;
    let content = validate::required_text("content", &new.content, 2000)?;
    let next = validate::optional_text("next_follow_up_on", new.next_follow_up_on.as_deref(), 20)?
        .map(|d| rules::date("next_follow_up_on", &d).map(|d| d.format("%Y-%m-%d").to_string()))
        .transpose()?;
    let now = now_millis();
    let happened_at = new.happened_at.unwrap_or(now);
    if happened_at > now + 60_000 {
        return Err(Invalid::new(
            "happened_at",
            "in_future",
            "a follow-up record cannot lie in the future",
        )
        .into());
    }
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    if let Some(c) = new.contact_id {
        let found: Option<(i64,)> = Sql::new("SELECT id FROM contacts WHERE id = ")
            .arg(c)
            .push(" AND customer_id = ")
            .arg(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(Invalid::new(
                "contact_id",
                "unknown_contact",
                "the contact is not one of this customer's",
            )
            .into());
        }
    }
    let id = Sql::new("INSERT INTO activities (customer_id, contact_id, user_id, kind, content, happened_at, next_follow_up_on, created_at) VALUES (")
        .arg(customer_id).push(", ")
        .arg(new.contact_id).push(", ")
        .arg(scope.user_id).push(", ")
        .arg(kind.code()).push(", ")
        .arg(&content).push(", ")
        .arg(happened_at).push(", ")
        .arg(next.clone()).push(", ")
        .arg(now).push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
    Sql::new("UPDATE customers SET last_follow_up_at = ")
        .arg(happened_at)
        .push(", next_follow_up_on = ")
        .arg(next)
        .push(", last_touched_at = ")
        .arg(now)
        .push(", updated_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(customer_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &customer.org_path,
            action: "create",
            entity: "activity",
            entity_id: Some(id),
            summary: format!("{} {}", customer.name, kind.code()),
            changes: None,
        },
    )
    .await?;
    let a: Activity = Sql::new(&format!("{ACTIVITY_SELECT} WHERE a.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(a)
}

/// Restarts the pool clock (a contact added counts as work on the customer).
async fn touch(tx: &mut Transaction<'static, Any>, customer_id: i64) -> Result<()> {
    let now = now_millis();
    Sql::new("UPDATE customers SET last_touched_at = ")
        .arg(now)
        .push(", updated_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(customer_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One line of a customer's timeline: a follow-up record or a change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineItem {
    /// activity or event
    pub kind: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// The follow-up's kind (call, visit…) or the change's action (create, update, assign, release, claim, merge, convert, call…).
    pub action: String,
    pub user_name: Option<String>,
    pub summary: String,
    /// For changes: field → [before, after].
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
    pub next_follow_up_on: Option<String>,
}

/// Follow-ups and changes in one stream, newest first (at most `limit` of each kind).
pub async fn timeline(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    limit: i64,
) -> Result<Vec<TimelineItem>> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    row_for(&mut *tx, scope, "customer.view", customer_id).await?;
    let activities: Vec<Activity> = Sql::new(&format!("{ACTIVITY_SELECT} WHERE a.customer_id = "))
        .arg(customer_id)
        .push(" ORDER BY a.happened_at DESC, a.id DESC LIMIT ")
        .arg(limit)
        .fetch_all(&mut *tx)
        .await?;
    let events: Vec<(i64, String, String, String, Option<String>)> = Sql::new(
        "SELECT at, username, action, summary, changes FROM customer_events WHERE customer_id = ",
    )
    .arg(customer_id)
    .push(" ORDER BY id DESC LIMIT ")
    .arg(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut items: Vec<TimelineItem> = activities
        .into_iter()
        .map(|a| TimelineItem {
            kind: "activity".into(),
            at: a.happened_at,
            action: a.kind,
            user_name: a.user_name,
            summary: a.content,
            changes: None,
            next_follow_up_on: a.next_follow_up_on,
        })
        .chain(
            events
                .into_iter()
                .map(|(at, username, action, summary, changes)| TimelineItem {
                    kind: "event".into(),
                    at,
                    action,
                    user_name: Some(username),
                    summary,
                    changes: changes
                        .and_then(|c| serde_json::from_str(&c).ok())
                        .map(|c| mask_changes(scope, c)),
                    next_follow_up_on: None,
                }),
        )
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse(i.at));
    Ok(items)
}

/// Phone numbers in a change are masked like everywhere else.
fn mask_changes(scope: &Scope, mut changes: Value) -> Value {
    if scope.has("phone.view") {
        return changes;
    }
    for field in ["phone", "mobile"] {
        if let Some(Value::Array(pair)) = changes.get_mut(field) {
            for v in pair.iter_mut() {
                if let Value::String(s) = v {
                    *s = crate::evaluation::mask_phone(s);
                }
            }
        }
    }
    changes
}

// ---------------------------------------------------------------- owners, sharing, the pool

/// Gives customers to a rep (bulk): all or none. Every customer must be within the reach of
/// `customer.assign` (or in the pool within it); an unknown or unreachable one answers 404.
pub async fn assign(db: &Db, scope: &Scope, ids: &[i64], owner_id: i64) -> Result<usize> {
    require(scope, "customer.assign")?;
    if ids.is_empty() || ids.len() > 1000 {
        return Err(Invalid::new(
            "customer_ids",
            "out_of_range",
            "give between 1 and 1000 customer ids",
        )
        .into());
    }
    let mut tx = db.begin().await?;
    owner_in_reach(&mut tx, scope, owner_id).await?;
    let (owner_name,): (String,) = Sql::new("SELECT name FROM users WHERE id = ")
        .arg(owner_id)
        .fetch_one(&mut *tx)
        .await?;
    let now = now_millis();
    let mut moved = 0;
    for &id in ids {
        let mut sql = Sql::new(&format!("{CUSTOMER_SELECT} WHERE c.id = "));
        sql.arg(id)
            .push(" AND (")
            .record_reach(
                "o.path",
                "c.owner_id",
                &scope.record_reach("customer.assign"),
            )
            .push(" OR (c.owner_id IS NULL AND ")
            .reach("o.path", &scope.reach("customer.assign"))
            .push("))");
        let before: CustomerRow = sql.fetch_one(&mut *tx).await?;
        if before.owner_id == Some(owner_id) {
            continue;
        }
        Sql::new("UPDATE customers SET owner_id = ")
            .arg(owner_id)
            .push(", pool_since = NULL, last_touched_at = ")
            .arg(now)
            .push(", updated_at = ")
            .arg(now)
            .push(" WHERE id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        let mut changes = Changes::new();
        changes.field("owner_id", &before.owner_id, &Some(owner_id));
        event(
            &mut tx,
            scope,
            id,
            &before.org_path,
            "assign",
            format!("{} → {owner_name}", before.name),
            Some(changes),
        )
        .await?;
        moved += 1;
    }
    tx.commit().await?;
    Ok(moved)
}

/// Someone a customer can be given to or shared with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Colleague {
    pub id: i64,
    pub name: String,
    pub org_name: String,
}

/// Enabled people in the orgs within the reach of `permission` (customer.assign for giving
/// customers, customer.edit for sharing them), by org and name; at most 500.
pub async fn colleagues(
    db: &Db,
    scope: &Scope,
    permission: &'static str,
) -> Result<Vec<Colleague>> {
    require(scope, permission)?;
    let mut sql = Sql::new("SELECT u.id, u.name, o.name AS org_name FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.enabled = 1 AND ");
    sql.reach("o.path", &scope.reach(permission))
        .push(" ORDER BY o.path, u.name, u.id LIMIT 500");
    sql.fetch_all(&db.pool).await
}

/// Shares a customer with a colleague, read-only or read-write; sharing again changes the right.
pub async fn share(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    user_id: i64,
    can_edit: bool,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    let found: Option<(String,)> = Sql::new("SELECT name FROM users WHERE enabled = 1 AND id = ")
        .arg(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let (name,) = found.ok_or_else(|| {
        Invalid::new(
            "user_id",
            "unknown_user",
            format!("there is no user {user_id}"),
        )
    })?;
    Sql::new("DELETE FROM customer_shares WHERE customer_id = ")
        .arg(customer_id)
        .push(" AND user_id = ")
        .arg(user_id)
        .execute(&mut *tx)
        .await?;
    Sql::new("INSERT INTO customer_shares (customer_id, user_id, can_edit, created_at) VALUES (")
        .arg(customer_id)
        .push(", ")
        .arg(user_id)
        .push(", ")
        .arg(can_edit)
        .push(", ")
        .arg(now_millis())
        .push(")")
        .execute(&mut *tx)
        .await?;
    let mut changes = Changes::new();
    changes
        .set("shared_with", &user_id)
        .set("can_edit", &can_edit);
    event(
        &mut tx,
        scope,
        customer_id,
        &customer.org_path,
        "share",
        name,
        Some(changes),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn unshare(db: &Db, scope: &Scope, customer_id: i64, user_id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let customer = editable(&mut tx, scope, customer_id).await?;
    let gone = Sql::new("DELETE FROM customer_shares WHERE customer_id = ")
        .arg(customer_id)
        .push(" AND user_id = ")
        .arg(user_id)
        .execute(&mut *tx)
        .await?;
    if gone == 0 {
        return Err(StoreError::NotFound);
    }
    let mut changes = Changes::new();
    changes.field("shared_with", &Some(user_id), &None::<i64>);
    event(
        &mut tx,
        scope,
        customer_id,
        &customer.org_path,
        "unshare",
        user_id.to_string(),
        Some(changes),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Share {
    pub user_id: i64,
    pub user_name: String,
    #[serde(serialize_with = "ser_bool")]
    #[schema(value_type = bool)]
    pub can_edit: i64,
}

fn ser_bool<S: serde::Serializer>(v: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(*v != 0)
}

pub async fn shares(db: &Db, scope: &Scope, customer_id: i64) -> Result<Vec<Share>> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    row_for(&mut *tx, scope, "customer.view", customer_id).await?;
    let rows = Sql::new("SELECT s.user_id, u.name AS user_name, s.can_edit FROM customer_shares s JOIN users u ON u.id = s.user_id WHERE s.customer_id = ")
        .arg(customer_id)
        .push(" ORDER BY s.user_id")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The pool rules in force for an org.
pub async fn pool_settings_for<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    path: &OrgPath,
) -> Result<PoolSettings> {
    Ok(settings::nearest(ex, path, POOL_SETTINGS)
        .await?
        .map(|(_, s)| s)
        .unwrap_or_default())
}

pub async fn pool_settings(db: &Db, scope: &Scope, org_id: i64) -> Result<PoolSettings> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    let path = org_within(&mut tx, scope, "customer.view", org_id).await?;
    let s = pool_settings_for(&mut *tx, &path).await?;
    tx.commit().await?;
    Ok(s)
}

pub async fn put_pool_settings(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    s: &PoolSettings,
) -> Result<PoolSettings> {
    require(scope, "settings.manage")?;
    s.validate()?;
    let mut tx = db.begin().await?;
    let path = org_within(&mut tx, scope, "settings.manage", org_id).await?;
    let before = pool_settings_for(&mut *tx, &path).await?;
    settings::put(&mut tx, org_id, POOL_SETTINGS, s).await?;
    let mut changes = Changes::new();
    changes.field("pool_settings", &before, s);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "update",
            entity: "pool_settings",
            entity_id: Some(org_id),
            summary: String::new(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(s.clone())
}

/// A rep takes a pool customer, within his org's claim limit (customers he owns).
pub async fn claim(db: &Db, scope: &Scope, customer_id: i64) -> Result<Customer> {
    require(scope, "customer.pool")?;
    let mut tx = db.begin().await?;
    if db.backend == crate::Backend::Postgres {
        // two claims by one rep at once must not both pass the limit: they queue on his row
        Sql::new("SELECT id FROM users WHERE id = ")
            .arg(scope.user_id)
            .push(" FOR UPDATE")
            .execute(&mut *tx)
            .await?;
    }
    let mut sql = Sql::new(&format!("{CUSTOMER_SELECT} WHERE c.id = "));
    sql.arg(customer_id).push(" AND ");
    reachable(&mut sql, scope, "customer.view");
    let row: CustomerRow = sql.fetch_one(&mut *tx).await?;
    if row.owner_id.is_some() {
        return Err(StoreError::conflict(
            "customer_id",
            "not_in_pool",
            "the customer is not in the public pool (someone may have claimed it just now)",
        ));
    }
    let limit = pool_settings_for(&mut *tx, &scope.org_path)
        .await?
        .claim_limit;
    let owned = Sql::new("SELECT COUNT(*) FROM customers WHERE owner_id = ")
        .arg(scope.user_id)
        .fetch_i64(&mut *tx)
        .await?;
    if owned >= i64::from(limit) {
        return Err(StoreError::conflict("customer_id", "claim_limit", format!("you own {owned} customers; the limit is {limit}: release some before claiming more")));
    }
    let now = now_millis();
    let claimed = Sql::new("UPDATE customers SET owner_id = ")
        .arg(scope.user_id)
        .push(", pool_since = NULL, last_touched_at = ")
        .arg(now)
        .push(", updated_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(customer_id)
        .push(" AND owner_id IS NULL")
        .execute(&mut *tx)
        .await?;
    if claimed != 1 {
        return Err(StoreError::conflict(
            "customer_id",
            "not_in_pool",
            "someone claimed the customer just now",
        ));
    }
    let mut changes = Changes::new();
    changes.field("owner_id", &None::<i64>, &Some(scope.user_id));
    event(
        &mut tx,
        scope,
        customer_id,
        &row.org_path,
        "claim",
        row.name.clone(),
        Some(changes),
    )
    .await?;
    let after = row_for(&mut *tx, scope, "customer.view", customer_id).await?;
    tx.commit().await?;
    Ok(after.shown(scope))
}

/// Puts a customer back into the pool (its owner, or someone who may assign it).
pub async fn release(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    reason: Option<String>,
) -> Result<Customer> {
    let reason = validate::optional_text("reason", reason.as_deref(), 200)?;
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(&format!("{CUSTOMER_SELECT} WHERE c.id = "));
    sql.arg(customer_id).push(" AND ");
    reachable(&mut sql, scope, "customer.view");
    let row: CustomerRow = sql.fetch_one(&mut *tx).await?;
    let may = row.owner_id == Some(scope.user_id)
        || (scope.has("customer.assign") && {
            let mut s = Sql::new(
                "SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id WHERE c.id = ",
            );
            s.arg(customer_id).push(" AND ").record_reach(
                "o.path",
                "c.owner_id",
                &scope.record_reach("customer.assign"),
            );
            s.fetch_optional::<(i64,), _>(&mut *tx).await?.is_some()
        });
    if !may {
        return Err(StoreError::Forbidden("customer.assign"));
    }
    if row.owner_id.is_none() {
        return Err(StoreError::conflict(
            "customer_id",
            "in_pool",
            "the customer is already in the public pool",
        ));
    }
    let now = now_millis();
    Sql::new("UPDATE customers SET owner_id = NULL, pool_since = ")
        .arg(now)
        .push(", updated_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(customer_id)
        .execute(&mut *tx)
        .await?;
    let mut changes = Changes::new();
    changes.field("owner_id", &row.owner_id, &None::<i64>);
    if let Some(r) = &reason {
        changes.set("reason", r);
    }
    event(
        &mut tx,
        scope,
        customer_id,
        &row.org_path,
        "release",
        row.name.clone(),
        Some(changes),
    )
    .await?;
    let after = row_for(&mut *tx, scope, "customer.view", customer_id).await?;
    tx.commit().await?;
    Ok(after.shown(scope))
}

/// Returns to the pool every owned customer untouched for longer than its org's
/// `return_after_days`. Run by the housekeeping worker; answers how many moved.
pub async fn return_idle_to_pool(db: &Db) -> Result<usize> {
    let orgs: Vec<(i64, String)> = Sql::new("SELECT id, path FROM orgs")
        .fetch_all(&db.pool)
        .await?;
    let rules: Vec<(i64, String)> =
        Sql::new("SELECT org_id, value FROM org_settings WHERE name = ")
            .arg(POOL_SETTINGS)
            .fetch_all(&db.pool)
            .await?;
    if rules.is_empty() {
        return Ok(0);
    }
    let now = now_millis();
    let mut moved = 0;
    for (org_id, path) in orgs {
        let Some(path) = OrgPath::parse(&path) else {
            continue;
        };
        let in_force: Option<PoolSettings> = path
            .ids()
            .iter()
            .rev()
            .find_map(|id| rules.iter().find(|(o, _)| o == id))
            .and_then(|(_, json)| serde_json::from_str(json).ok());
        let Some(days) = in_force.and_then(|s| s.return_after_days) else {
            continue;
        };
        let cutoff = now - i64::from(days) * DAY_MS;
        let idle = |sql: &mut Sql| {
            sql.push(" AND owner_id IS NOT NULL AND last_touched_at < ")
                .arg(cutoff);
        };
        // a cheap read first: most orgs have nothing due, and need no write lock
        let mut probe = Sql::new("SELECT id FROM customers WHERE org_id = ");
        probe.arg(org_id);
        idle(&mut probe);
        if probe
            .push(" LIMIT 1")
            .fetch_optional::<(i64,), _>(&db.pool)
            .await?
            .is_none()
        {
            continue;
        }
        let mut tx = db.begin().await?;
        let mut select = Sql::new("SELECT id, owner_id, name FROM customers WHERE org_id = ");
        select.arg(org_id);
        idle(&mut select);
        let due: Vec<(i64, i64, String)> = select.push(" LIMIT 1000").fetch_all(&mut *tx).await?;
        for (id, owner, name) in &due {
            // a follow-up recorded since the select keeps the customer where it is
            let mut update = Sql::new("UPDATE customers SET owner_id = NULL, pool_since = ");
            update.arg(now).push(" WHERE id = ").arg(*id);
            idle(&mut update);
            if update.execute(&mut *tx).await? == 0 {
                continue;
            }
            moved += 1;
            let mut changes = Changes::new();
            changes.field("owner_id", &Some(*owner), &None::<i64>);
            let summary = format!("{name}: {days}");
            Sql::new("INSERT INTO customer_events (customer_id, at, user_id, username, action, summary, changes) VALUES (")
                .arg(*id).push(", ").arg(now).push(", NULL, 'system', 'auto_return', ").arg(&summary).push(", ").arg(changes.to_json()).push(")")
                .execute(&mut *tx)
                .await?;
            audit::record(
                &mut *tx,
                audit::Actor {
                    user_id: None,
                    username: "system",
                },
                Entry {
                    org_path: path.as_str(),
                    action: "auto_return",
                    entity: "customer",
                    entity_id: Some(*id),
                    summary,
                    changes: Some(changes),
                },
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(moved)
}

// ---------------------------------------------------------------- merge

/// Merges `other` into `keep`: contacts, follow-ups, changes, calls and shares move over, empty
/// fields of `keep` take `other`'s values, and `other` is gone. Both must be the caller's to
/// change; otherwise 404, and nothing moves.
pub async fn merge(db: &Db, scope: &Scope, keep: i64, other: i64) -> Result<Customer> {
    if keep == other {
        return Err(Invalid::new(
            "merge_id",
            "same_customer",
            "a customer cannot be merged into itself",
        )
        .into());
    }
    let mut tx = db.begin().await?;
    let kept = editable(&mut tx, scope, keep).await?;
    let gone = editable(&mut tx, scope, other).await?;
    let path = OrgPath::parse(&kept.org_path).expect("stored org paths are well formed");
    let defs = field_defs(&mut *tx, &path).await?;
    // fill the gaps of the kept record from the other one
    let mut input = kept.as_input();
    let theirs = gone.as_input();
    macro_rules! fill {
        ($($f:ident),*) => { $(if input.$f.is_none() { input.$f = theirs.$f.clone(); })* };
    }
    fill!(
        company,
        code,
        phone,
        email,
        address,
        region,
        industry,
        source,
        customer_group,
        importance,
        intent,
        hobbies,
        birthday,
        notes
    );
    let mut tags = input.tags.clone().unwrap_or_default();
    for t in theirs.tags.clone().unwrap_or_default() {
        if !tags.contains(&t) && tags.len() < 20 {
            tags.push(t);
        }
    }
    input.tags = Some(tags);
    let mut custom = theirs.custom.clone().unwrap_or_default();
    custom.extend(input.custom.clone().unwrap_or_default());
    custom.retain(|k, _| defs.iter().any(|d| &d.code == k));
    input.custom = Some(custom);
    let f = check(&input, &defs)?;
    let mut sql = Sql::new("UPDATE customers SET (");
    sql.push(FIELD_COLUMNS).push(") = (");
    push_field_values(
        &mut sql,
        &f,
        Some(
            kept.expected_close_by
                .clone()
                .or(gone.expected_close_by.clone()),
        ),
    );
    let last_follow_up = kept.last_follow_up_at.max(gone.last_follow_up_at);
    sql.push("), name_company_key = ")
        .arg(rules::name_company_key(&f.name, f.company.as_deref()))
        .push(", last_follow_up_at = ")
        .arg(last_follow_up)
        .push(", next_follow_up_on = ")
        .arg(
            kept.next_follow_up_on
                .clone()
                .or(gone.next_follow_up_on.clone()),
        )
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(keep);
    sql.execute(&mut *tx).await?;
    for table in [
        "contacts",
        "activities",
        "customer_events",
        "calls",
        "customer_attachments",
    ] {
        Sql::new(&format!("UPDATE {table} SET customer_id = "))
            .arg(keep)
            .push(" WHERE customer_id = ")
            .arg(other)
            .execute(&mut *tx)
            .await?;
    }
    // shares the kept customer lacks move over; the rest go with the merged one
    Sql::new("UPDATE customer_shares SET customer_id = ")
        .arg(keep)
        .push(" WHERE customer_id = ")
        .arg(other)
        .push(" AND user_id NOT IN (SELECT user_id FROM customer_shares WHERE customer_id = ")
        .arg(keep)
        .push(")")
        .execute(&mut *tx)
        .await?;
    delete_terms(&mut tx, &[other]).await?;
    for table in [
        "customer_shares",
        "customer_phones",
        "customer_tags",
        "customer_import_updates",
    ] {
        Sql::new(&format!("DELETE FROM {table} WHERE customer_id = "))
            .arg(other)
            .execute(&mut *tx)
            .await?;
    }
    Sql::new("DELETE FROM customers WHERE id = ")
        .arg(other)
        .execute(&mut *tx)
        .await?;
    set_tags(&mut tx, keep, &f.tags).await?;
    reindex(&mut tx, keep).await?;
    let mut changes = field_changes(&kept.as_input(), &input);
    changes
        .set("merged_id", &other)
        .set("merged_name", &gone.name);
    event(
        &mut tx,
        scope,
        keep,
        &kept.org_path,
        "merge",
        format!("{} ← {}", kept.name, gone.name),
        Some(changes),
    )
    .await?;
    let after = row_for(&mut *tx, scope, "customer.view", keep).await?;
    tx.commit().await?;
    Ok(after.shown(scope))
}

// ---------------------------------------------------------------- caller-ID

/// A call announced by the telephony system.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    pub call_id: i64,
    pub agent_id: i64,
    /// The matching customer as the agent may see it.
    pub customer_for_agent: Option<Customer>,
    /// The matching customer as the caller (the telephony integration) may see it.
    pub customer_for_caller: Option<Customer>,
    pub phone: String,
}

/// Looks the number up for the agent (with his scope) and logs the call.
pub async fn incoming_call(
    db: &Db,
    scope: &Scope,
    phone: &str,
    agent_employee_no: &str,
) -> Result<IncomingCall> {
    require(scope, "telephony.notify")?;
    let phone = validate::required_text("phone", phone, 40)?;
    let digits = rules::phone_key(&phone);
    if digits.len() < 3 {
        return Err(Invalid::new(
            "phone",
            "invalid_phone",
            format!("'{phone}' has no phone number in it"),
        )
        .into());
    }
    let agent_no = validate::required_text("agent_employee_no", agent_employee_no, 64)?;
    let found: Option<(i64, String, String, String, String)> = Sql::new("SELECT u.id, u.username, u.name, u.locale, o.path FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.enabled = 1 AND u.employee_no = ")
        .arg(&agent_no)
        .fetch_optional(&db.pool)
        .await?;
    let (agent_id, username, name, locale, org_path) = found.ok_or_else(|| {
        Invalid::new(
            "agent_employee_no",
            "unknown_agent",
            format!("there is no agent with employee no. {agent_no}"),
        )
    })?;
    let agent = crate::accounts::scope_of(
        db,
        &crate::tokens::Holder {
            user_id: agent_id,
            username,
            name,
            locale,
            org_path,
        },
    )
    .await?;
    let matches: Vec<(i64,)> = Sql::new("SELECT customer_id FROM customer_phones WHERE digits = ")
        .arg(&digits)
        .push(" ORDER BY customer_id DESC LIMIT 20")
        .fetch_all(&db.pool)
        .await?;
    let mut customer_for_agent = None;
    let mut customer_for_caller = None;
    for (id,) in &matches {
        if customer_for_agent.is_none() && agent.has("customer.view") {
            customer_for_agent = get(db, &agent, *id).await.ok();
        }
        if customer_for_caller.is_none() && scope.has("customer.view") {
            customer_for_caller = get(db, scope, *id).await.ok();
        }
    }
    let mut tx = db.begin().await?;
    let (agent_org,): (i64,) = Sql::new("SELECT org_id FROM users WHERE id = ")
        .arg(agent_id)
        .fetch_one(&mut *tx)
        .await?;
    let logged_customer = customer_for_agent.as_ref().map(|c| c.id);
    let call_id = Sql::new("INSERT INTO calls (customer_id, agent_id, org_id, phone, at) VALUES (")
        .arg(logged_customer)
        .push(", ")
        .arg(agent_id)
        .push(", ")
        .arg(agent_org)
        .push(", ")
        .arg(&phone)
        .push(", ")
        .arg(now_millis())
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
    if let Some(c) = &customer_for_agent {
        let (path,): (String,) = Sql::new("SELECT o.path FROM orgs o WHERE o.id = ")
            .arg(c.org_id)
            .fetch_one(&mut *tx)
            .await?;
        let mut changes = Changes::new();
        changes.set("agent_id", &agent_id);
        event(
            &mut tx,
            scope,
            c.id,
            &path,
            "call",
            agent_no.clone(),
            Some(changes),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(IncomingCall {
        call_id,
        agent_id,
        customer_for_agent,
        customer_for_caller,
        phone,
    })
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Call {
    pub id: i64,
    pub customer_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub agent_name: Option<String>,
    /// Masked without phone.view.
    pub phone: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
}

/// A customer's call log, newest first.
pub async fn calls(db: &Db, scope: &Scope, customer_id: i64, limit: i64) -> Result<Vec<Call>> {
    require(scope, "customer.view")?;
    let mut tx = db.read().await?;
    row_for(&mut *tx, scope, "customer.view", customer_id).await?;
    let rows: Vec<Call> = Sql::new("SELECT k.id, k.customer_id, k.agent_id, u.name AS agent_name, k.phone, k.at FROM calls k LEFT JOIN users u ON u.id = k.agent_id WHERE k.customer_id = ")
        .arg(customer_id)
        .push(" ORDER BY k.id DESC LIMIT ")
        .arg(limit)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|mut c| {
            c.phone = shown_phone(scope, Some(c.phone)).unwrap_or_default();
            c
        })
        .collect())
}

/// The call an agent is told about, read again for his browser.
pub async fn call_for_agent(
    db: &Db,
    agent: &Scope,
    call_id: i64,
) -> Result<(String, Option<Customer>)> {
    let (phone, customer_id, agent_id): (String, Option<i64>, Option<i64>) =
        Sql::new("SELECT phone, customer_id, agent_id FROM calls WHERE id = ")
            .arg(call_id)
            .fetch_one(&db.pool)
            .await?;
    if agent_id != Some(agent.user_id) {
        return Err(StoreError::NotFound);
    }
    let customer = match customer_id {
        Some(id) => get(db, agent, id).await.ok(),
        None => None,
    };
    Ok((phone, customer))
}
