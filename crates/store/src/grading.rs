//! Customer grading (客户分级): scoring models as versioned data, inputs and deduction events per
//! customer and period, runs over the caller's scope with per-criterion breakdowns, grade history
//! and the run-to-run diff. Customers are reached through the customer records' own scope rules.

use crate::audit::{self, Entry};
use crate::customers::reachable;
use crate::db::{decode_cursor, enlarge_page_cache, id_cursor, push_quoted, restore_page_cache};
use crate::{grading_settings, require, Db, Page, Result, Sql, StoreError};
use keping_domain::grading::{
    self as rules, read_breakdown, GradingSettings, Inputs, Line, Period, ScoringModel, Source,
    Value, Values,
};
use keping_domain::org::OrgPath;
use keping_domain::scope::{Reach, Scope};
use keping_domain::{now_millis, ser_time, Invalid, Millis};
use serde::Serialize;
use sqlx::{Any, Executor, Transaction};
use std::collections::{BTreeMap, HashMap};

// ---------------------------------------------------------------- models

/// A scoring model as listed: its current version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelSummary {
    pub id: i64,
    /// The built-in template's code (composite, key_account, points_deduction); null for others.
    pub template: Option<String>,
    pub name: String,
    /// The org whose subtree uses it; null for templates.
    pub org_id: Option<i64>,
    pub version: i64,
    pub scale: f64,
    pub criteria: usize,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String)]
    pub updated_at: Millis,
}

/// One version of a model, with its definition in the format of API.md.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelVersion {
    pub id: i64,
    pub template: Option<String>,
    pub org_id: Option<i64>,
    pub version: i64,
    pub current_version: i64,
    pub name: String,
    pub scale: f64,
    #[schema(value_type = Vec<Object>)]
    pub criteria: Vec<rules::Criterion>,
    #[schema(value_type = Vec<Object>)]
    pub grades: Vec<rules::GradeBand>,
    /// Every version: number, when and by whom.
    pub versions: Vec<VersionInfo>,
    /// Whether the caller may edit it (templates are read-only: copy one to change it).
    pub can_edit: bool,
}

impl ModelVersion {
    pub fn definition(&self) -> ScoringModel {
        ScoringModel {
            name: self.name.clone(),
            scale: self.scale,
            criteria: self.criteria.clone(),
            grades: self.grades.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub version: i64,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String)]
    pub created_at: Millis,
    pub created_by: Option<String>,
}

/// Installs the built-in templates that are missing (at migration time).
pub(crate) async fn install_templates(tx: &mut Transaction<'static, Any>) -> Result<()> {
    for code in rules::TEMPLATE_CODES {
        let exists: Option<(i64,)> = Sql::new("SELECT id FROM scoring_models WHERE template = ")
            .arg(code)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            continue;
        }
        let model = rules::template(code).expect("known template");
        let now = now_millis();
        let id = Sql::new("INSERT INTO scoring_models (org_id, template, name, current_version, created_at, updated_at) VALUES (NULL, ")
            .arg(code)
            .push(", ")
            .arg(&model.name)
            .push(", 1, ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(") RETURNING id")
            .fetch_i64(&mut **tx)
            .await?;
        insert_version(tx, id, 1, &model, None).await?;
    }
    Ok(())
}

async fn insert_version(
    tx: &mut Transaction<'static, Any>,
    model_id: i64,
    version: i64,
    model: &ScoringModel,
    by: Option<i64>,
) -> Result<()> {
    Sql::new("INSERT INTO scoring_model_versions (model_id, version, definition, created_by, created_at) VALUES (")
        .arg(model_id)
        .push(", ")
        .arg(version)
        .push(", ")
        .arg(serde_json::to_string(model).expect("models serialise"))
        .push(", ")
        .arg(by)
        .push(", ")
        .arg(now_millis())
        .push(")")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// "The caller may see model `m` (of org `o`, left-joined)": templates, models of orgs within
/// reach, and models of the orgs above the caller's own (they are made for the caller's subtree).
fn model_visible<'s>(sql: &'s mut Sql, scope: &Scope) -> &'s mut Sql {
    sql.push("(m.org_id IS NULL OR ")
        .reach(
            "o.path",
            &scope.reach_any(&["grading.view", "grading.manage"]),
        )
        .push(" OR ")
        .in_ids("m.org_id", &scope.org_path.ids())
        .push(")")
}

const MODEL_SELECT: &str = "SELECT m.id, m.template, m.name, m.org_id, o.path, m.current_version, m.updated_at, v.definition \
     FROM scoring_models m LEFT JOIN orgs o ON o.id = m.org_id \
     JOIN scoring_model_versions v ON v.model_id = m.id";

type ModelRow = (
    i64,
    Option<String>,
    String,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    String,
);

fn parse_definition(json: &str) -> ScoringModel {
    serde_json::from_str(json).expect("stored models were checked")
}

pub async fn list_models(db: &Db, scope: &Scope) -> Result<Vec<ModelSummary>> {
    require(scope, "grading.view")?;
    let mut sql = Sql::new(&format!(
        "{MODEL_SELECT} AND v.version = m.current_version WHERE "
    ));
    model_visible(&mut sql, scope).push(" ORDER BY m.org_id IS NOT NULL, m.id");
    let rows: Vec<ModelRow> = sql.fetch_all(&db.pool).await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, template, name, org_id, _, version, updated_at, def)| {
                let d = parse_definition(&def);
                ModelSummary {
                    id,
                    template,
                    name,
                    org_id,
                    version,
                    scale: d.scale,
                    criteria: d.criteria.len(),
                    updated_at,
                }
            },
        )
        .collect())
}

/// Every grade the caller's models give (current versions), for a filter by grade.
pub async fn grade_labels(db: &Db, scope: &Scope) -> Result<Vec<String>> {
    require(scope, "grading.view")?;
    let mut sql = Sql::new(&format!(
        "{MODEL_SELECT} AND v.version = m.current_version WHERE "
    ));
    model_visible(&mut sql, scope);
    let rows: Vec<ModelRow> = sql.fetch_all(&db.pool).await?;
    let labels: std::collections::BTreeSet<String> = rows
        .into_iter()
        .flat_map(|r| parse_definition(&r.7).grades.into_iter().map(|g| g.grade))
        .collect();
    Ok(labels.into_iter().collect())
}

/// A model at one version (default the current one); 404 when the caller cannot see it.
pub async fn get_model(
    db: &Db,
    scope: &Scope,
    id: i64,
    version: Option<i64>,
) -> Result<ModelVersion> {
    require(scope, "grading.view")?;
    model_version(&mut *db.pool.acquire().await?, scope, id, version).await
}

async fn model_version(
    ex: &mut sqlx::AnyConnection,
    scope: &Scope,
    id: i64,
    version: Option<i64>,
) -> Result<ModelVersion> {
    let mut sql = Sql::new(&format!("{MODEL_SELECT} AND v.version = "));
    match version {
        Some(v) => sql.arg(v),
        None => sql.push("m.current_version"),
    };
    sql.push(" WHERE m.id = ").arg(id).push(" AND ");
    model_visible(&mut sql, scope);
    let (id, template, _, org_id, org_path, current_version, _, def): ModelRow =
        sql.fetch_one(&mut *ex).await?;
    let versions: Vec<(i64, i64, Option<String>)> = Sql::new("SELECT v.version, v.created_at, u.name FROM scoring_model_versions v LEFT JOIN users u ON u.id = v.created_by WHERE v.model_id = ")
        .arg(id)
        .push(" ORDER BY v.version")
        .fetch_all(&mut *ex)
        .await?;
    let d = parse_definition(&def);
    let can_edit = template.is_none()
        && org_path
            .as_deref()
            .and_then(OrgPath::parse)
            .is_some_and(|p| scope.reaches("grading.manage", &p));
    Ok(ModelVersion {
        id,
        template,
        org_id,
        version: version.unwrap_or(current_version),
        current_version,
        name: d.name,
        scale: d.scale,
        criteria: d.criteria,
        grades: d.grades,
        versions: versions
            .into_iter()
            .map(|(version, created_at, created_by)| VersionInfo {
                version,
                created_at,
                created_by,
            })
            .collect(),
        can_edit,
    })
}

/// Creates a model at an org within the caller's grading.manage reach (default the caller's org).
pub async fn create_model(
    db: &Db,
    scope: &Scope,
    org_id: Option<i64>,
    model: ScoringModel,
) -> Result<ModelVersion> {
    require(scope, "grading.manage")?;
    model.check()?;
    let mut tx = db.begin().await?;
    let org_id = org_id.unwrap_or_else(|| scope.org_path.id());
    let path = managed_org(&mut tx, scope, org_id).await?;
    let now = now_millis();
    let id = Sql::new("INSERT INTO scoring_models (org_id, name, current_version, created_by, created_at, updated_at) VALUES (")
        .arg(org_id)
        .push(", ")
        .arg(&model.name)
        .push(", 1, ")
        .arg(scope.user_id)
        .push(", ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
    insert_version(&mut tx, id, 1, &model, Some(scope.user_id)).await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "scoring_model.create",
            entity: "scoring_model",
            entity_id: Some(id),
            summary: format!("scoring model {} created", model.name),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    get_model(db, scope, id, None).await
}

/// The org path of an org the caller manages grading at; 404 outside reach.
async fn managed_org(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    org_id: i64,
) -> Result<String> {
    let (path,): (String,) = Sql::new("SELECT path FROM orgs WHERE id = ")
        .arg(org_id)
        .fetch_one(&mut **tx)
        .await?;
    let p = OrgPath::parse(&path).expect("stored org paths are well formed");
    if scope.reaches("grading.manage", &p) {
        Ok(path)
    } else if scope.reaches("grading.view", &p) {
        Err(StoreError::Forbidden("grading.manage"))
    } else {
        Err(StoreError::NotFound)
    }
}

/// Saves an edited model as a new version; earlier results keep the version they used.
pub async fn update_model(
    db: &Db,
    scope: &Scope,
    id: i64,
    model: ScoringModel,
) -> Result<ModelVersion> {
    require(scope, "grading.manage")?;
    let mut tx = db.begin().await?;
    let current = model_version(&mut tx, scope, id, None).await;
    let current = match current {
        Ok(c) => c,
        Err(e) => return Err(e),
    };
    if current.template.is_some() {
        return Err(StoreError::conflict(
            "id",
            "template_read_only",
            "a built-in template cannot be changed: create a model from it and change that",
        ));
    }
    model.check()?;
    let path = managed_org(&mut tx, scope, current.org_id.expect("not a template")).await?;
    let version = current.current_version + 1;
    insert_version(&mut tx, id, version, &model, Some(scope.user_id)).await?;
    Sql::new("UPDATE scoring_models SET current_version = ")
        .arg(version)
        .push(", name = ")
        .arg(&model.name)
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "scoring_model.update",
            entity: "scoring_model",
            entity_id: Some(id),
            summary: format!("scoring model {} saved as version {version}", model.name),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    get_model(db, scope, id, None).await
}

/// Every visible model's current definition, for checking input values against.
async fn visible_definitions<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    scope: &Scope,
) -> Result<Vec<ScoringModel>> {
    let mut sql = Sql::new(&format!(
        "{MODEL_SELECT} AND v.version = m.current_version WHERE "
    ));
    model_visible(&mut sql, scope);
    let rows: Vec<ModelRow> = sql.fetch_all(ex).await?;
    Ok(rows.iter().map(|r| parse_definition(&r.7)).collect())
}

// ---------------------------------------------------------------- inputs and events

/// A customer's inputs for a period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeriodInputs {
    pub customer_id: i64,
    pub period: String,
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, Value>,
    /// Deduction events of the period, counted by type.
    pub events: BTreeMap<String, u32>,
}

/// A customer the caller may see, or 404; returns its org path.
async fn visible_customer<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    scope: &Scope,
    customer_id: i64,
) -> Result<String> {
    let mut sql =
        Sql::new("SELECT o.path FROM customers c JOIN orgs o ON o.id = c.org_id WHERE c.id = ");
    sql.arg(customer_id).push(" AND ");
    reachable(&mut sql, scope, "customer.view");
    let (path,): (String,) = sql.fetch_one(ex).await?;
    Ok(path)
}

/// Sets a customer's values for a period: the keys given are set (null removes one), the others
/// stay, so that a sheet of metrics and a manager's ratings can arrive separately.
pub async fn put_inputs(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    period: &str,
    values: serde_json::Map<String, serde_json::Value>,
) -> Result<PeriodInputs> {
    require(scope, "grading.manage")?;
    let period = Period::parse("period", period)?.to_string();
    let mut tx = db.begin().await?;
    let path = visible_customer(&mut *tx, scope, customer_id).await?;
    let models = visible_definitions(&mut *tx, scope).await?;
    let changes = checked_values(&values, &models)?;
    let stored = set_values(&mut tx, scope, customer_id, &period, changes).await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "scoring_inputs.put",
            entity: "customer",
            entity_id: Some(customer_id),
            summary: format!("grading inputs for {period} set ({} values)", values.len()),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    let events = event_counts(&db.pool, customer_id, &period).await?;
    Ok(PeriodInputs {
        customer_id,
        period,
        values: stored,
        events,
    })
}

/// Checks values entered under keys; None removes the key.
fn checked_values(
    values: &serde_json::Map<String, serde_json::Value>,
    models: &[ScoringModel],
) -> Result<Vec<(String, Option<Value>)>, Invalid> {
    let mut out = Vec::with_capacity(values.len());
    for (key, v) in values {
        let field = format!("values.{key}");
        let value = match v {
            serde_json::Value::Null => {
                out.push((key.clone(), None));
                continue;
            }
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => {
                // a number written as text (as spreadsheets and forms send them) is a number
                match s.trim().parse::<f64>() {
                    Ok(n) if rules::metric(key).is_some() => Value::Number(n),
                    _ => Value::Text(s.trim().to_string()),
                }
            }
            _ => {
                return Err(Invalid::new(
                    &field,
                    "invalid_type",
                    "a value is a number or a text",
                ))
            }
        };
        rules::check_value(key, &value, models)?;
        out.push((key.clone(), Some(value)));
    }
    Ok(out)
}

async fn set_values(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    customer_id: i64,
    period: &str,
    changes: Vec<(String, Option<Value>)>,
) -> Result<BTreeMap<String, Value>> {
    let before: Option<(String,)> =
        Sql::new("SELECT input_values FROM scoring_inputs WHERE customer_id = ")
            .arg(customer_id)
            .push(" AND period = ")
            .arg(period)
            .fetch_optional(&mut **tx)
            .await?;
    let mut values: BTreeMap<String, Value> = before
        .and_then(|(j,)| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    for (k, v) in changes {
        match v {
            Some(v) => values.insert(k, v),
            None => values.remove(&k),
        };
    }
    let json = serde_json::to_string(&values).expect("values serialise");
    Sql::new("DELETE FROM scoring_inputs WHERE customer_id = ")
        .arg(customer_id)
        .push(" AND period = ")
        .arg(period)
        .execute(&mut **tx)
        .await?;
    Sql::new("INSERT INTO scoring_inputs (customer_id, period, input_values, updated_by, updated_at) VALUES (")
        .arg(customer_id)
        .push(", ")
        .arg(period)
        .push(", ")
        .arg(json)
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(now_millis())
        .push(")")
        .execute(&mut **tx)
        .await?;
    Ok(values)
}

async fn event_counts<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    customer_id: i64,
    period: &str,
) -> Result<BTreeMap<String, u32>> {
    let rows: Vec<(String, i64)> =
        Sql::new("SELECT kind, COUNT(*) FROM scoring_events WHERE customer_id = ")
            .arg(customer_id)
            .push(" AND period = ")
            .arg(period)
            .push(" GROUP BY kind")
            .fetch_all(ex)
            .await?;
    Ok(rows.into_iter().map(|(k, n)| (k, n as u32)).collect())
}

pub async fn get_inputs(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    period: &str,
) -> Result<PeriodInputs> {
    require(scope, "grading.view")?;
    let period = Period::parse("period", period)?.to_string();
    let mut tx = db.read().await?;
    visible_customer(&mut *tx, scope, customer_id).await?;
    let row: Option<(String,)> =
        Sql::new("SELECT input_values FROM scoring_inputs WHERE customer_id = ")
            .arg(customer_id)
            .push(" AND period = ")
            .arg(&period)
            .fetch_optional(&mut *tx)
            .await?;
    let events = event_counts(&mut *tx, customer_id, &period).await?;
    tx.commit().await?;
    Ok(PeriodInputs {
        customer_id,
        period,
        values: row
            .and_then(|(j,)| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        events,
    })
}

/// A violation or lapse that deductions count.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScoringEvent {
    pub id: i64,
    pub customer_id: i64,
    pub period: String,
    /// YYYY-MM-DD
    pub occurred_on: String,
    pub kind: String,
    pub note: Option<String>,
}

pub async fn add_event(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    kind: &str,
    occurred_on: &str,
    note: Option<&str>,
) -> Result<ScoringEvent> {
    require(scope, "grading.manage")?;
    let kind = keping_domain::validate::code("kind", kind, 32)?;
    let date = chrono::NaiveDate::parse_from_str(occurred_on.trim(), "%Y-%m-%d").map_err(|_| {
        Invalid::new(
            "occurred_on",
            "invalid_date",
            "occurred_on is a date, YYYY-MM-DD",
        )
    })?;
    let note = keping_domain::validate::optional_text("note", note, 500)?;
    let period = Period::of_date(date).to_string();
    let mut tx = db.begin().await?;
    let path = visible_customer(&mut *tx, scope, customer_id).await?;
    let models = visible_definitions(&mut *tx, scope).await?;
    let known = models.iter().flat_map(|m| &m.criteria).any(|c| {
        matches!(&c.normalize, rules::Normalize::Deductions { points, .. } if points.contains_key(&kind))
    });
    if !known {
        return Err(Invalid::new(
            "kind",
            "unknown_event",
            format!("no scoring model deducts points for '{kind}'"),
        )
        .into());
    }
    let occurred_on = date.format("%Y-%m-%d").to_string();
    let id = Sql::new("INSERT INTO scoring_events (customer_id, period, occurred_on, kind, note, created_by, created_at) VALUES (")
        .arg(customer_id)
        .push(", ")
        .arg(&period)
        .push(", ")
        .arg(&occurred_on)
        .push(", ")
        .arg(&kind)
        .push(", ")
        .arg(note.clone())
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(now_millis())
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "scoring_event.create",
            entity: "customer",
            entity_id: Some(customer_id),
            summary: format!("deduction event {kind} on {occurred_on}"),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ScoringEvent {
        id,
        customer_id,
        period,
        occurred_on,
        kind,
        note,
    })
}

pub async fn list_events(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    period: Option<&str>,
) -> Result<Vec<ScoringEvent>> {
    require(scope, "grading.view")?;
    let mut tx = db.read().await?;
    visible_customer(&mut *tx, scope, customer_id).await?;
    let mut sql = Sql::new("SELECT id, customer_id, period, occurred_on, kind, note FROM scoring_events WHERE customer_id = ");
    sql.arg(customer_id);
    if let Some(p) = period {
        sql.push(" AND period = ")
            .arg(Period::parse("period", p)?.to_string());
    }
    sql.push(" ORDER BY occurred_on, id");
    let rows: Vec<(i64, i64, String, String, String, Option<String>)> =
        sql.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, customer_id, period, occurred_on, kind, note)| ScoringEvent {
                id,
                customer_id,
                period,
                occurred_on,
                kind,
                note,
            },
        )
        .collect())
}

// ---------------------------------------------------------------- runs

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Run {
    pub id: i64,
    pub model_id: i64,
    pub model_name: String,
    pub model_version: i64,
    pub period: String,
    pub org_id: Option<i64>,
    /// Customers scored (those in the caller's scope).
    pub scored: i64,
    /// manual or schedule
    pub trigger: String,
    pub previous_run_id: Option<i64>,
    /// Customers per grade.
    #[schema(value_type = Object)]
    pub distribution: BTreeMap<String, i64>,
    pub duration_ms: i64,
    pub created_by: Option<String>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String)]
    pub created_at: Millis,
}

const RUN_SELECT: &str = "SELECT r.id, r.model_id, m.name, r.model_version, r.period, r.org_id, r.scored, r.trigger_kind, r.previous_run_id, r.distribution, r.duration_ms, u.name, r.created_at \
     FROM scoring_runs r JOIN scoring_models m ON m.id = r.model_id LEFT JOIN users u ON u.id = r.created_by";

type RunRow = (
    i64,
    i64,
    String,
    i64,
    String,
    Option<i64>,
    i64,
    String,
    Option<i64>,
    String,
    i64,
    Option<String>,
    i64,
);

fn run_of(r: RunRow) -> Run {
    Run {
        id: r.0,
        model_id: r.1,
        model_name: r.2,
        model_version: r.3,
        period: r.4,
        org_id: r.5,
        scored: r.6,
        trigger: r.7,
        previous_run_id: r.8,
        distribution: serde_json::from_str(&r.9).unwrap_or_default(),
        duration_ms: r.10,
        created_by: r.11,
        created_at: r.12,
    }
}

/// Runs are seen by those whose grading reach covers the subtree they covered.
fn run_visible<'s>(sql: &'s mut Sql, scope: &Scope) -> &'s mut Sql {
    sql.reach(
        "r.org_path",
        &scope.reach_any(&["grading.view", "grading.manage"]),
    )
}

/// What a run scores: one model version over one period, within an org's subtree (default the
/// caller's whole scope).
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub model_id: i64,
    pub period: String,
    pub org_id: Option<i64>,
    /// manual or schedule
    pub trigger: &'static str,
}

/// One customer of a run's population.
struct Member {
    customer_id: i64,
    segment: Option<String>,
    created_at: Millis,
    inputs: Inputs,
    /// The values of the same period a year before, when there were any.
    last_year: Option<Values>,
    star_override: Option<rules::StarOverride>,
}

/// A customer's lifecycle category (index into the rules) and star level for a period.
type Standing = (Option<usize>, Option<i64>);

/// What a customer's lifecycle category and star level are judged by in a run's period.
struct StandingRules<'a> {
    period: Period,
    first_day: chrono::NaiveDate,
    settings: &'a GradingSettings,
}

impl StandingRules<'_> {
    /// The lifecycle category from the period's figures against last year's (first matching
    /// rule), and the star level from contribution points, an override in force for the period
    /// taking precedence.
    fn of(&self, m: &Member) -> Standing {
        use chrono::Datelike;
        let rules_list = &self.settings.lifecycle_rules;
        let new_this_year = chrono::DateTime::from_timestamp_millis(m.created_at)
            .is_some_and(|t| t.year() == self.period.year);
        let lifecycle =
            rules::annual_figures(&m.inputs.values, m.last_year.as_ref(), new_this_year).and_then(
                |f| {
                    let category = rules::lifecycle(rules_list, &f)?;
                    rules_list.iter().position(|r| r.category == category)
                },
            );
        let points = m
            .inputs
            .values
            .get("contribution_points")
            .and_then(Value::as_number);
        let in_force = m
            .star_override
            .filter(|o| o.until.is_none_or(|u| self.first_day <= u));
        let stars = (points.is_some() || in_force.is_some()).then(|| {
            i64::from(rules::star_level(
                points.unwrap_or(0.0),
                &self.settings.star_thresholds,
                in_force,
                self.first_day,
            ))
        });
        (lifecycle, stars)
    }
}

/// Where a run's time went (for `keping bench grading`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunTimings {
    /// Reading the population with its inputs and events.
    pub read: std::time::Duration,
    /// Classifying the population (ABC classes, scale tiers, rank criteria) in memory.
    pub classify: std::time::Duration,
    /// Scoring each customer and writing the run and its results with their breakdowns, up to
    /// the commit.
    pub score_and_store: std::time::Duration,
}

/// Scores every customer in the caller's scope (within `org_id`'s subtree when given) and stores
/// the results with their breakdowns in one transaction: a run that fails leaves nothing behind.
pub async fn run(db: &Db, scope: &Scope, req: RunRequest) -> Result<Run> {
    Ok(run_timed(db, scope, req).await?.0)
}

/// [`run`], with where its time went.
pub async fn run_timed(db: &Db, scope: &Scope, req: RunRequest) -> Result<(Run, RunTimings)> {
    require(scope, "grading.manage")?;
    let mut timings = RunTimings::default();
    let started = std::time::Instant::now();
    let period = Period::parse("period", &req.period)?.to_string();
    let model = model_version(&mut *db.pool.acquire().await?, scope, req.model_id, None)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => StoreError::Invalid(Invalid::new(
                "model_id",
                "not_found",
                "there is no such scoring model",
            )),
            e => e,
        })?;
    let definition = model.definition();
    // the subtree the run covers: an org within reach, or the caller's own org's subtree
    let (org_id, org_path) = match req.org_id {
        Some(org_id) => {
            let (path,): (String,) = Sql::new("SELECT path FROM orgs WHERE id = ")
                .arg(org_id)
                .fetch_one(&db.pool)
                .await?;
            let p = OrgPath::parse(&path).expect("stored org paths are well formed");
            if !scope.reaches("grading.manage", &p) {
                return Err(StoreError::NotFound);
            }
            (Some(org_id), path)
        }
        None => (None, widest_root(scope)),
    };

    let phase = std::time::Instant::now();
    let members = population(db, scope, req.org_id, &period, &definition).await?;
    timings.read = phase.elapsed();
    let phase = std::time::Instant::now();
    let scored_count = members.len() as i64;
    let period_of = Period::parse("period", &period)?;
    let settings_path = OrgPath::parse(&org_path).unwrap_or_else(|| scope.org_path.clone());
    let settings =
        grading_settings::in_force(&mut *db.pool.acquire().await?, &settings_path).await?;

    let mut tx = db.begin().await?;
    let previous: Option<(i64,)> = Sql::new("SELECT id FROM scoring_runs WHERE model_id = ")
        .arg(req.model_id)
        .push(" AND org_path = ")
        .arg(&org_path)
        .push(" ORDER BY period DESC, id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let now = now_millis();
    // the distribution is known once every result is written
    let run_id = Sql::new("INSERT INTO scoring_runs (model_id, model_version, period, org_id, org_path, scored, trigger_kind, previous_run_id, distribution, duration_ms, created_by, created_at) VALUES (")
        .arg(req.model_id)
        .push(", ")
        .arg(model.current_version)
        .push(", ")
        .arg(&period)
        .push(", ")
        .arg(org_id)
        .push(", ")
        .arg(&org_path)
        .push(", ")
        .arg(scored_count)
        .push(", ")
        .arg(req.trigger)
        .push(", ")
        .arg(previous.map(|p| p.0))
        .push(", '{}', 0, ")
        .arg(scope.user_id)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
    // a million results go into two indexes
    enlarge_page_cache(&mut tx, db.backend).await?;
    let written = insert_results(
        &mut tx,
        db.backend,
        run_id,
        Scoring {
            members,
            model: definition,
            settings,
            period: period_of,
        },
    )
    .await;
    restore_page_cache(&mut tx, db.backend).await?;
    let (distribution, classified_in) = written?;
    timings.classify = classified_in;
    let duration_ms = started.elapsed().as_millis() as i64;
    Sql::new("UPDATE scoring_runs SET duration_ms = ")
        .arg(duration_ms)
        .push(", distribution = ")
        .arg(serde_json::to_string(&distribution).expect("counts serialise"))
        .push(" WHERE id = ")
        .arg(run_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &org_path,
            action: "scoring_run.create",
            entity: "scoring_run",
            entity_id: Some(run_id),
            summary: format!(
                "{} v{} over {period}: {scored_count} customers graded",
                model.name, model.current_version
            ),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    timings.score_and_store = phase.elapsed() - classified_in;
    Ok((get_run(db, scope, run_id).await?, timings))
}

/// The root of the caller's widest grading reach, as the path a run without an org covers.
fn widest_root(scope: &Scope) -> String {
    match scope.reach("grading.manage") {
        Reach::Everything => String::new(),
        Reach::Some { subtrees, nodes } => subtrees
            .iter()
            .chain(&nodes)
            .min_by_key(|p| p.depth())
            .map_or_else(
                || scope.org_path.as_str().to_string(),
                |p| p.as_str().to_string(),
            ),
        Reach::Nothing => scope.org_path.as_str().to_string(),
    }
}

/// One customer as a run reads it: id, industry (the segment), created_at and the values.
type InputRow = (i64, Option<String>, i64, Option<Values>);

/// Customers read per query by a run (a range of ids).
const CUSTOMERS_PER_READ: i64 = 2000;

/// The customers a run scores, with their inputs and events for the period.
async fn population(
    db: &Db,
    scope: &Scope,
    org_id: Option<i64>,
    period: &str,
    model: &ScoringModel,
) -> Result<Vec<Member>> {
    let mut tx = db.read().await?;
    // One row per range of customer ids, holding the range's customers as one JSON array of
    // [id, industry, created_at, values]: a million customers are a few hundred rows, each parsed
    // straight into the values, instead of a million rows handed over one by one
    // (the values are stored as JSON already: they are joined in as they are)
    let select = match db.backend {
        // one printf per customer instead of seven concatenations, each a string of its own; no
        // ORDER BY, which would sort every range through a temporary b-tree (SQLite reads a range
        // of ids in id order anyway, and the rows are put in order below whatever it does)
        crate::Backend::Sqlite => "SELECT '[' || group_concat(printf('[%d,%s,%d,%s]', c.id, json_quote(c.industry), c.created_at, COALESCE(i.input_values, 'null')), ',') || ']'",
        crate::Backend::Postgres => "SELECT '[' || string_agg('[' || c.id || ',' || COALESCE(CAST(to_json(c.industry) AS TEXT), 'null') || ',' || c.created_at || ',' || COALESCE(i.input_values, 'null') || ']', ',' ORDER BY c.id) || ']'",
    };
    // CROSS JOIN keeps customers the outer loop on SQLite (a range of ids, then each one's org),
    // which would otherwise walk every org's index for the range; PostgreSQL plans it freely
    let mut sql = Sql::new(&format!("{select} FROM customers c CROSS JOIN orgs o LEFT JOIN scoring_inputs i ON i.customer_id = c.id AND i.period = "));
    sql.arg(period)
        .push(" WHERE o.id = c.org_id AND c.kind IN ('customer', 'agent') AND ");
    reachable(&mut sql, scope, "customer.view");
    if let Some(org_id) = org_id {
        crate::db::only_under(db, &mut sql, &scope.reach("grading.manage"), org_id).await?;
    }
    // last year's values of the same month, for lifecycle categories (usually a small table)
    let this = Period::parse("period", period)?;
    let last_year = Period {
        year: this.year - 1,
        month: this.month,
    }
    .to_string();
    let mut last: HashMap<i64, Values> =
        Sql::new("SELECT customer_id, input_values FROM scoring_inputs WHERE period = ")
            .arg(&last_year)
            .fetch_all::<(i64, String), _>(&mut *tx)
            .await?
            .into_iter()
            .filter_map(|(c, j)| Some((c, serde_json::from_str(&j).ok()?)))
            .collect();
    let mut overrides: HashMap<i64, rules::StarOverride> =
        Sql::new("SELECT customer_id, level, until_on FROM star_overrides")
            .fetch_all::<(i64, i64, Option<String>), _>(&mut *tx)
            .await?
            .into_iter()
            .map(|(c, level, until)| {
                (
                    c,
                    rules::StarOverride {
                        level: level.clamp(0, 255) as u8,
                        until: until.and_then(|u| u.parse().ok()),
                    },
                )
            })
            .collect();
    let mut events: HashMap<i64, HashMap<String, u32>> = HashMap::new();
    if model.criteria.iter().any(|c| c.source() == Source::Events) {
        let rows: Vec<(i64, String, i64)> =
            Sql::new("SELECT customer_id, kind, COUNT(*) FROM scoring_events WHERE period = ")
                .arg(period)
                .push(" GROUP BY customer_id, kind")
                .fetch_all(&mut *tx)
                .await?;
        for (c, kind, n) in rows {
            events.entry(c).or_default().insert(kind, n as u32);
        }
    }
    let (first, last_id): (Option<i64>, Option<i64>) =
        Sql::new("SELECT MIN(id), MAX(id) FROM customers")
            .fetch_one(&mut *tx)
            .await?;
    // the ranges are parsed on a thread of their own while the database reads the next ones,
    // straight into the members (room for every id: pages never written are never touched)
    let room = match (first, last_id) {
        (Some(first), Some(last_id)) => usize::try_from(last_id - first + 1).unwrap_or(0),
        _ => 0,
    };
    let (send, mut ranges) = tokio::sync::mpsc::channel::<(i64, String)>(2);
    let parser = tokio::task::spawn_blocking(move || -> Result<Vec<Member>> {
        let mut members: Vec<Member> = Vec::with_capacity(room);
        while let Some((lo, json)) = ranges.blocking_recv() {
            let part: Vec<InputRow> = serde_json::from_str(&json).map_err(|e| {
                StoreError::Database(sqlx::Error::Protocol(format!(
                    "grading inputs of the customers from {lo}: {e}"
                )))
            })?;
            members.extend(
                part.into_iter()
                    .map(|(customer_id, segment, created_at, values)| Member {
                        customer_id,
                        segment,
                        created_at,
                        last_year: last.remove(&customer_id),
                        star_override: overrides.remove(&customer_id),
                        inputs: Inputs {
                            values: values.unwrap_or_default(),
                            events: events.remove(&customer_id).unwrap_or_default(),
                        },
                    }),
            );
        }
        Ok(members)
    });
    if let (Some(first), Some(last_id)) = (first, last_id) {
        let mut lo = first;
        while lo <= last_id {
            let hi = lo.saturating_add(CUSTOMERS_PER_READ);
            let mut chunk = sql.clone();
            chunk
                .push(" AND c.id >= ")
                .arg(lo)
                .push(" AND c.id < ")
                .arg(hi);
            let (json,): (Option<String>,) = chunk.fetch_one(&mut *tx).await?;
            if let Some(json) = json {
                if send.send((lo, json)).await.is_err() {
                    // the parser stopped at a range it could not read: its error tells
                    break;
                }
            }
            lo = hi;
        }
    }
    drop(send);
    let mut members = parser.await.expect("parsing inputs does not panic")?;
    tx.commit().await?;
    // in customer order, as results are written (already so: this only checks, in linear time)
    members.sort_unstable_by_key(|m| m.customer_id);
    Ok(members)
}

/// A customer's ABC class and business scale tier, by code.
type Classes = (Option<&'static str>, Option<&'static str>);

/// ABC class by sales amount over the whole population, and the business scale tier within
/// each industry (the segment) by volume and amount; None where the figures are missing.
fn classify(members: &[Member]) -> Vec<Classes> {
    let number = |m: &Member, key: &str| m.inputs.values.get(key).and_then(Value::as_number);
    // (amount, volume) of each customer, looked up once
    let figures: Vec<(Option<f64>, Option<f64>)> = members
        .iter()
        .map(|m| (number(m, "sales_amount"), number(m, "sales_volume")))
        .collect();
    let mut out = vec![(None, None); members.len()];
    let (with_amount, amounts): (Vec<usize>, Vec<f64>) = figures
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.0?)))
        .unzip();
    for (i, class) in with_amount.iter().zip(rules::abc(&amounts)) {
        out[*i].0 = Some(class.code());
    }
    let mut segments: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, (m, f)) in members.iter().zip(&figures).enumerate() {
        if f.0.is_some() || f.1.is_some() {
            segments.entry(m.segment.as_deref()).or_default().push(i);
        }
    }
    for idx in segments.values() {
        let segment: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| {
                let (amount, volume) = figures[i];
                (volume.unwrap_or_default(), amount.unwrap_or_default())
            })
            .collect();
        for (i, tier) in idx.iter().zip(rules::scale_tiers(&segment)) {
            out[*i].1 = Some(tier.code());
        }
    }
    out
}

/// Rows per INSERT. Every value is written into the statement (ids, scores and class codes are
/// numbers and fixed codes; grades and breakdowns are quoted): binding a million texts through
/// sqlx's `Any` costs more than the insert itself.
const RESULT_BATCH: usize = 1000;

/// Statements written ahead of the one the database is running.
const STATEMENTS_AHEAD: usize = 4;

/// What a run scores: its population, the model version, and the rules its lifecycle
/// categories and star levels follow.
struct Scoring {
    members: Vec<Member>,
    model: ScoringModel,
    settings: GradingSettings,
    period: Period,
}

/// The INSERT of one batch of results, each customer scored as its row is written.
fn results_statement(
    run_id: i64,
    batch: &[Member],
    classes: &[Classes],
    scorer: &rules::Scorer,
    standing_rules: &StandingRules,
    grades: &mut HashMap<String, i64>,
) -> String {
    use std::fmt::Write;
    let code = |out: &mut String, c: Option<&str>| match c {
        Some(c) => {
            out.push_str(", ");
            push_quoted(out, c);
        }
        None => out.push_str(", NULL"),
    };
    let mut text = String::with_capacity(200 * batch.len() + 128);
    let mut breakdown = String::with_capacity(256);
    text.push_str("INSERT INTO grade_results (run_id, customer_id, score, grade, abc, scale_tier, lifecycle, stars, breakdown) VALUES ");
    for (i, (m, (abc, scale_tier))) in batch.iter().zip(classes).enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let s = scorer.score(&m.inputs);
        let (lifecycle, stars) = standing_rules.of(m);
        let _ = write!(text, "({run_id}, {}, ", m.customer_id);
        rules::push_json_number(&mut text, s.score);
        text.push_str(", ");
        push_quoted(&mut text, &s.grade);
        code(&mut text, *abc);
        code(&mut text, *scale_tier);
        code(
            &mut text,
            lifecycle.map(|r| standing_rules.settings.lifecycle_rules[r].category.as_str()),
        );
        match stars {
            Some(n) => {
                let _ = write!(text, ", {n}, ");
            }
            None => text.push_str(", NULL, "),
        }
        breakdown.clear();
        s.write_breakdown(&mut breakdown);
        push_quoted(&mut text, &breakdown);
        text.push(')');
        match grades.get_mut(&s.grade) {
            Some(n) => *n += 1,
            None => {
                grades.insert(s.grade, 1);
            }
        }
    }
    text
}

/// Scores a run's population and writes the results, answering the distribution of grades and
/// how long classifying the population took. Once the population is classified (which needs
/// everyone), two threads score batches of customers and write their statements, taking turns,
/// while the database runs the ones before: the customers are scored as they are written rather
/// than all kept in memory first.
async fn insert_results(
    tx: &mut Transaction<'static, Any>,
    backend: crate::Backend,
    run_id: i64,
    run: Scoring,
) -> Result<(BTreeMap<String, i64>, std::time::Duration)> {
    let (send_even, mut even) = tokio::sync::mpsc::channel::<String>(STATEMENTS_AHEAD);
    let (send_odd, mut odd) = tokio::sync::mpsc::channel::<String>(STATEMENTS_AHEAD);
    let writer = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let refs: Vec<&Inputs> = run.members.iter().map(|m| &m.inputs).collect();
        let scorer = rules::Scorer::new(&run.model, &refs);
        drop(refs);
        let classes = classify(&run.members);
        let classified_in = started.elapsed();
        let standing_rules = StandingRules {
            period: run.period,
            first_day: chrono::NaiveDate::from_ymd_opt(run.period.year, run.period.month, 1)
                .expect("periods are valid months"),
            settings: &run.settings,
        };
        let batches: Vec<(&[Member], &[Classes])> = run
            .members
            .chunks(RESULT_BATCH)
            .zip(classes.chunks(RESULT_BATCH))
            .collect();
        let mut grades: HashMap<String, i64> = HashMap::new();
        std::thread::scope(|s| {
            let turns: Vec<_> = [send_even, send_odd]
                .into_iter()
                .enumerate()
                .map(|(turn, send)| {
                    let (batches, scorer, standing_rules) = (&batches, &scorer, &standing_rules);
                    s.spawn(move || {
                        let mut grades = HashMap::new();
                        for (batch, classes) in batches.iter().skip(turn).step_by(2) {
                            let text = results_statement(
                                run_id,
                                batch,
                                classes,
                                scorer,
                                standing_rules,
                                &mut grades,
                            );
                            if send.blocking_send(text).is_err() {
                                // the insert failed and stopped listening
                                break;
                            }
                        }
                        grades
                    })
                })
                .collect();
            for turn in turns {
                for (grade, n) in turn.join().expect("scoring does not panic") {
                    *grades.entry(grade).or_default() += n;
                }
            }
        });
        (grades.into_iter().collect(), classified_in)
    });
    // batches arrive from the two threads in turn: 0, 1, 2, … until one has no more
    for turn in 0.. {
        let next = if turn % 2 == 0 {
            even.recv().await
        } else {
            odd.recv().await
        };
        let Some(text) = next else { break };
        Sql::bulk(backend, &text).execute(&mut **tx).await?;
    }
    Ok(writer.await.expect("scoring does not panic"))
}

pub async fn get_run(db: &Db, scope: &Scope, id: i64) -> Result<Run> {
    require(scope, "grading.view")?;
    let mut sql = Sql::new(&format!("{RUN_SELECT} WHERE r.id = "));
    sql.arg(id).push(" AND ");
    run_visible(&mut sql, scope);
    Ok(run_of(sql.fetch_one(&db.pool).await?))
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub model_id: Option<i64>,
    pub period: Option<String>,
}

pub async fn list_runs(
    db: &Db,
    scope: &Scope,
    filter: &RunFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<Run>> {
    require(scope, "grading.view")?;
    let mut sql = Sql::new(&format!("{RUN_SELECT} WHERE "));
    run_visible(&mut sql, scope);
    if let Some(m) = filter.model_id {
        sql.push(" AND r.model_id = ").arg(m);
    }
    if let Some(p) = &filter.period {
        sql.push(" AND r.period = ")
            .arg(Period::parse("period", p)?.to_string());
    }
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND r.id < ").arg(after);
    }
    sql.push(" ORDER BY r.id DESC LIMIT ").arg(limit + 1);
    let rows: Vec<RunRow> = sql.fetch_all(&db.pool).await?;
    let page = Page::from_rows(rows, limit, |r| r.0.to_string());
    Ok(Page {
        items: page.items.into_iter().map(run_of).collect(),
        next_cursor: page.next_cursor,
    })
}

// ---------------------------------------------------------------- results and grades

/// A customer's grade under a model: the total, the grade and how each criterion contributed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Grade {
    pub customer_id: i64,
    pub model_id: i64,
    pub model_name: String,
    pub model_version: i64,
    pub period: String,
    pub run_id: i64,
    pub score: f64,
    pub grade: String,
    pub scale: f64,
    pub abc: Option<String>,
    pub scale_tier: Option<String>,
    /// Lifecycle category (SPEC §4.4): no_business, dormant, pending, deteriorating,
    /// new_effective, new_ineffective, new, normal or abnormal; null without a sales amount.
    pub lifecycle: Option<String>,
    /// Star level from contribution points or a service override; null without either.
    pub stars: Option<i64>,
    /// The star override standing now for the customer, if any.
    pub star_override: Option<StarLevelOverride>,
    pub breakdown: Vec<BreakdownLine>,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String)]
    pub graded_at: Millis,
}

/// One criterion's part in a grade.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreakdownLine {
    pub criterion: String,
    pub name: String,
    pub weight: f64,
    /// The value read; null when there was none (the criterion then scores 0).
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    pub score: f64,
    /// weight × score / Σ weight: the lines add up to the total.
    pub weighted: f64,
    pub missing: bool,
    /// The rule that gave the score, with its numbers.
    #[schema(value_type = Object)]
    pub why: rules::Why,
}

fn lines(model: &ScoringModel, stored: &str) -> Vec<BreakdownLine> {
    read_breakdown(model, stored)
        .unwrap_or_default()
        .into_iter()
        .zip(&model.criteria)
        .map(|(l, c): (Line, _)| BreakdownLine {
            missing: l.why == rules::Why::Missing,
            criterion: l.criterion,
            name: c.name.clone(),
            weight: c.weight,
            input: l.input,
            score: l.score,
            weighted: l.weighted,
            why: l.why,
        })
        .collect()
}

type GradeRow = (
    i64,
    i64,
    i64,
    String,
    f64,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<i64>,
);

/// The customer's grade from the latest run of the model (default: the model of the latest run
/// that graded the customer; for the period, when given) that scored the customer. 404 when the
/// customer is out of scope or has no such grade.
pub async fn customer_grade(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    model_id: Option<i64>,
    period: Option<&str>,
) -> Result<Grade> {
    require(scope, "grading.view")?;
    let period = period
        .map(|p| Period::parse("period", p).map(|p| p.to_string()))
        .transpose()?;
    let mut tx = db.read().await?;
    visible_customer(&mut *tx, scope, customer_id).await?;
    let model_id = match model_id {
        Some(m) => m,
        None => {
            let (m,): (i64,) = Sql::new("SELECT r.model_id FROM grade_results g JOIN scoring_runs r ON r.id = g.run_id WHERE g.customer_id = ")
                .arg(customer_id)
                .push(" ORDER BY r.id DESC LIMIT 1")
                .fetch_one(&mut *tx)
                .await?;
            m
        }
    };
    let model = model_version(&mut tx, scope, model_id, None).await?;
    let mut sql = Sql::new("SELECT r.id, r.model_version, g.customer_id, r.period, g.score, g.grade, g.abc, g.scale_tier, g.breakdown, r.created_at, g.lifecycle, g.stars FROM grade_results g JOIN scoring_runs r ON r.id = g.run_id WHERE g.customer_id = ");
    sql.arg(customer_id)
        .push(" AND r.model_id = ")
        .arg(model_id);
    if let Some(p) = &period {
        sql.push(" AND r.period = ").arg(p);
    }
    sql.push(" ORDER BY r.period DESC, r.id DESC LIMIT 1");
    let row: GradeRow = sql.fetch_one(&mut *tx).await?;
    let grade = grade_of(&mut tx, scope, &model, row).await?;
    tx.commit().await?;
    Ok(grade)
}

async fn grade_of(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    model: &ModelVersion,
    row: GradeRow,
) -> Result<Grade> {
    let (
        run_id,
        version,
        customer_id,
        period,
        score,
        grade,
        abc,
        scale_tier,
        breakdown,
        at,
        lifecycle,
        stars,
    ) = row;
    let star_override = star_override_of(&mut **tx, customer_id).await?;
    let definition = if version == model.version {
        model.definition()
    } else {
        model_version(tx, scope, model.id, Some(version))
            .await?
            .definition()
    };
    Ok(Grade {
        customer_id,
        model_id: model.id,
        model_name: definition.name.clone(),
        model_version: version,
        period,
        run_id,
        score,
        grade,
        scale: definition.scale,
        abc,
        scale_tier,
        lifecycle,
        stars,
        star_override,
        breakdown: lines(&definition, &breakdown),
        graded_at: at,
    })
}

/// One point of a customer's grade history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryPoint {
    pub run_id: i64,
    pub period: String,
    pub model_version: i64,
    pub score: f64,
    pub grade: String,
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String)]
    pub graded_at: Millis,
}

/// Every run of the model that scored the customer, oldest period first.
pub async fn grade_history(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    model_id: i64,
) -> Result<Vec<HistoryPoint>> {
    require(scope, "grading.view")?;
    let mut tx = db.read().await?;
    visible_customer(&mut *tx, scope, customer_id).await?;
    model_version(&mut tx, scope, model_id, None).await?;
    let rows: Vec<(i64, String, i64, f64, String, i64)> = Sql::new("SELECT r.id, r.period, r.model_version, g.score, g.grade, r.created_at FROM grade_results g JOIN scoring_runs r ON r.id = g.run_id WHERE g.customer_id = ")
        .arg(customer_id)
        .push(" AND r.model_id = ")
        .arg(model_id)
        .push(" ORDER BY r.period, r.id")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(
            |(run_id, period, model_version, score, grade, graded_at)| HistoryPoint {
                run_id,
                period,
                model_version,
                score,
                grade,
                graded_at,
            },
        )
        .collect())
}

/// A customer's result in a run, as run lists and exports show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunResult {
    pub customer_id: i64,
    pub customer_name: String,
    pub score: f64,
    pub grade: String,
    pub abc: Option<String>,
    pub scale_tier: Option<String>,
}

/// A run's results the caller may see (customers in scope), best first.
pub async fn run_results(
    db: &Db,
    scope: &Scope,
    run_id: i64,
    grade: Option<&str>,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<RunResult>> {
    get_run(db, scope, run_id).await?;
    let mut sql = Sql::new("SELECT g.customer_id, c.name, g.score, g.grade, g.abc, g.scale_tier FROM grade_results g JOIN customers c ON c.id = g.customer_id JOIN orgs o ON o.id = c.org_id WHERE g.run_id = ");
    sql.arg(run_id).push(" AND ");
    reachable(&mut sql, scope, "customer.view");
    if let Some(g) = grade {
        sql.push(" AND g.grade = ").arg(g);
    }
    if let Some(after) = decode_cursor(cursor)? {
        let bad = || -> StoreError {
            Invalid::new(
                "cursor",
                "invalid_cursor",
                "the cursor is not one this server made",
            )
            .into()
        };
        let (s, id) = after.split_once('|').ok_or_else(bad)?;
        let s: f64 = s.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        sql.push(" AND (g.score < ")
            .arg(s)
            .push(" OR (g.score = ")
            .arg(s)
            .push(" AND g.customer_id > ")
            .arg(id)
            .push("))");
    }
    sql.push(" ORDER BY g.score DESC, g.customer_id LIMIT ")
        .arg(limit + 1);
    type Row = (i64, String, f64, String, Option<String>, Option<String>);
    let rows: Vec<Row> = sql.fetch_all(&db.pool).await?;
    let page = Page::from_rows(rows, limit, |r| format!("{:?}|{}", r.2, r.0));
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(
                |(customer_id, customer_name, score, grade, abc, scale_tier)| RunResult {
                    customer_id,
                    customer_name,
                    score,
                    grade,
                    abc,
                    scale_tier,
                },
            )
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// Who moved between two runs of a model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunDiff {
    pub run_id: i64,
    pub previous_run_id: Option<i64>,
    /// Moved to a better grade.
    pub up: Vec<Move>,
    /// Moved to a worse grade.
    pub down: Vec<Move>,
    /// Same grade in both runs.
    pub unchanged: i64,
    /// Graded now, not before.
    pub new: i64,
    /// Graded before, not now.
    pub gone: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Move {
    pub customer_id: i64,
    pub customer_name: String,
    pub before_grade: String,
    pub before_score: f64,
    pub grade: String,
    pub score: f64,
}

/// The run against the run before it (or `against`): customers in the caller's scope whose
/// grade went up or down, biggest score changes first.
pub async fn run_diff(
    db: &Db,
    scope: &Scope,
    run_id: i64,
    against: Option<i64>,
) -> Result<RunDiff> {
    let run = get_run(db, scope, run_id).await?;
    let previous = match against {
        Some(a) => {
            let other = get_run(db, scope, a).await?;
            if other.model_id != run.model_id {
                return Err(Invalid::new(
                    "against",
                    "different_model",
                    "runs of different models cannot be compared",
                )
                .into());
            }
            Some(a)
        }
        None => run.previous_run_id,
    };
    let mut diff = RunDiff {
        run_id,
        previous_run_id: previous,
        up: vec![],
        down: vec![],
        unchanged: 0,
        new: 0,
        gone: 0,
    };
    let model = model_version(
        &mut *db.pool.acquire().await?,
        scope,
        run.model_id,
        Some(run.model_version),
    )
    .await?;
    // a grade's rank: bands with a higher min are better
    let mut bands = model.grades.clone();
    bands.sort_by(|a, b| b.min.total_cmp(&a.min));
    let rank = |g: &str| bands.iter().position(|b| b.grade == g);
    let Some(previous) = previous else {
        diff.new = run.scored;
        return Ok(diff);
    };
    type Row = (
        i64,
        String,
        Option<f64>,
        Option<String>,
        Option<f64>,
        Option<String>,
    );
    let side = |this: i64, other: i64, outer: bool| {
        let mut sql = Sql::new("SELECT c.id, c.name, a.score, a.grade, b.score, b.grade FROM grade_results a JOIN customers c ON c.id = a.customer_id JOIN orgs o ON o.id = c.org_id LEFT JOIN grade_results b ON b.customer_id = a.customer_id AND b.run_id = ");
        sql.arg(other).push(" WHERE a.run_id = ").arg(this);
        if outer {
            sql.push(" AND b.customer_id IS NULL");
        }
        sql.push(" AND ");
        reachable(&mut sql, scope, "customer.view");
        sql
    };
    let rows: Vec<Row> = side(run_id, previous, false).fetch_all(&db.pool).await?;
    let gone: Vec<Row> = side(previous, run_id, true).fetch_all(&db.pool).await?;
    diff.gone = gone.len() as i64;
    for (customer_id, customer_name, score, grade, before_score, before_grade) in rows {
        let (Some(score), Some(grade)) = (score, grade) else {
            continue;
        };
        let (Some(before_score), Some(before_grade)) = (before_score, before_grade) else {
            diff.new += 1;
            continue;
        };
        let m = Move {
            customer_id,
            customer_name,
            before_grade,
            before_score,
            grade,
            score,
        };
        match (rank(&m.grade), rank(&m.before_grade)) {
            (Some(now), Some(before)) if now < before => diff.up.push(m),
            (Some(now), Some(before)) if now > before => diff.down.push(m),
            _ => diff.unchanged += 1,
        }
    }
    diff.up
        .sort_by(|a, b| (b.score - b.before_score).total_cmp(&(a.score - a.before_score)));
    diff.down
        .sort_by(|a, b| (a.score - a.before_score).total_cmp(&(b.score - b.before_score)));
    Ok(diff)
}

// ---------------------------------------------------------------- import and export

/// What an inputs import did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InputsImport {
    pub period: String,
    /// Data rows read below the header row.
    pub rows: usize,
    pub accepted: usize,
    pub rejected: Vec<crate::customers::ImportRejection>,
    /// Column header → the metric or criterion code it fills.
    pub mapping: Vec<(String, String)>,
    pub ignored_columns: Vec<String>,
    pub dry_run: bool,
}

/// Headers that name the customer of a row, and how it is looked up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CustomerKey {
    Id,
    Code,
    Name,
}

fn customer_key(header: &str) -> Option<CustomerKey> {
    match header.trim().to_lowercase().as_str() {
        "customer_id" | "客户id" | "id" => Some(CustomerKey::Id),
        "客户编号" | "客户代码" | "编号" | "code" | "customer code" | "customer_code" => {
            Some(CustomerKey::Code)
        }
        "客户名称" | "客户" | "单位名称" | "公司名称" | "名称" | "name" | "customer" => {
            Some(CustomerKey::Name)
        }
        _ => None,
    }
}

/// The input key a header fills: a metric (by code or name) or a criterion of a visible model.
fn input_key(header: &str, models: &[ScoringModel]) -> Option<String> {
    let h = header.trim();
    let lower = h.to_lowercase();
    if let Some(m) = rules::METRICS
        .iter()
        .find(|m| m.code == lower || m.name_zh == h || m.name_en.to_lowercase() == lower)
    {
        return Some(m.code.to_string());
    }
    models
        .iter()
        .flat_map(|m| &m.criteria)
        .filter(|c| c.source() == Source::Manual || c.takes_assessment())
        .find(|c| c.code == h || c.name == h)
        .map(|c| c.code.clone())
}

/// Imports a period's sheet (xlsx, xls or csv): one row per customer, named by id, code or name;
/// the other columns are metrics or criteria. Rows whose customer is unknown or out of scope, or
/// whose values have the wrong type, are reported with their row and column and not written.
pub async fn import_inputs(
    db: &Db,
    scope: &Scope,
    period: &str,
    source: &crate::customers::ImportSource,
    dry_run: bool,
) -> Result<InputsImport> {
    use crate::customers::import::{column_letter, read_sheet};
    use crate::customers::ImportRejection;
    require(scope, "grading.manage")?;
    let period = Period::parse("period", period)?.to_string();
    let sheet = read_sheet(source)?;
    let models = visible_definitions(&db.pool, scope).await?;
    // the header row: the first with a customer column
    let header_index = sheet
        .rows
        .iter()
        .take(20)
        .position(|r| {
            r.iter()
                .any(|c| c.text().as_deref().and_then(customer_key).is_some())
        })
        .ok_or_else(|| {
            Invalid::new(
                "file",
                "no_header",
                "no header row names the customer (客户编号, 客户名称 or customer_id)",
            )
        })?;
    let header: Vec<Option<String>> = sheet.rows[header_index].iter().map(|c| c.text()).collect();
    let (key_col, key_kind) = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_deref().and_then(customer_key).map(|k| (i, k)))
        .min_by_key(|(_, k)| *k as u8)
        .expect("the header row has a customer column");
    let mut mapping = Vec::new();
    let mut ignored = Vec::new();
    let mut columns: Vec<(usize, String)> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let Some(h) = h else { continue };
        if i == key_col || customer_key(h).is_some() {
            continue;
        }
        match input_key(h, &models) {
            Some(k) => {
                mapping.push((h.clone(), k.clone()));
                columns.push((i, k));
            }
            None => ignored.push(h.clone()),
        }
    }
    let mut rejected = Vec::new();
    // (row number, the customer as named, the values)
    type Row = (usize, String, Vec<(String, Option<Value>)>);
    let mut rows: Vec<Row> = Vec::new();
    let data = &sheet.rows[header_index + 1..];
    for (n, r) in data.iter().enumerate() {
        let row_no = sheet.first_row + header_index + 1 + n;
        if r.iter().all(|c| c.text().is_none()) {
            continue;
        }
        let Some(key) = r.get(key_col).and_then(|c| c.text()) else {
            rejected.push(ImportRejection {
                row: row_no,
                column: Some(column_letter(key_col)),
                field: Some("customer".into()),
                reason: "the row names no customer".into(),
            });
            continue;
        };
        let mut values = serde_json::Map::new();
        for (i, k) in &columns {
            if let Some(t) = r.get(*i).and_then(|c| c.text()) {
                values.insert(k.clone(), serde_json::Value::String(t));
            }
        }
        match checked_values(&values, &models) {
            Ok(v) => rows.push((row_no, key, v)),
            Err(e) => {
                let key = e.field.trim_start_matches("values.");
                let col = columns.iter().find(|(_, k)| k == key).map(|(i, _)| *i);
                rejected.push(ImportRejection {
                    row: row_no,
                    column: col.map(column_letter),
                    field: Some(key.to_string()),
                    reason: e.message,
                });
            }
        }
    }
    // the customers named, looked up within the caller's scope
    let mut found: HashMap<String, Vec<i64>> = HashMap::new();
    let keys: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    for chunk in keys.chunks(500) {
        let mut sql = Sql::new(match key_kind {
            CustomerKey::Id => "SELECT c.id, CAST(c.id AS TEXT) FROM customers c JOIN orgs o ON o.id = c.org_id WHERE ",
            CustomerKey::Code => "SELECT c.id, c.code FROM customers c JOIN orgs o ON o.id = c.org_id WHERE ",
            CustomerKey::Name => "SELECT c.id, c.name FROM customers c JOIN orgs o ON o.id = c.org_id WHERE ",
        });
        match key_kind {
            CustomerKey::Id => {
                let ids: Vec<i64> = chunk.iter().filter_map(|k| k.parse().ok()).collect();
                if ids.is_empty() {
                    continue;
                }
                sql.in_ids("c.id", &ids);
            }
            CustomerKey::Code | CustomerKey::Name => {
                sql.push(if key_kind == CustomerKey::Code {
                    "c.code IN ("
                } else {
                    "c.name IN ("
                });
                for (i, k) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.arg(k.as_str());
                }
                sql.push(")");
            }
        }
        sql.push(" AND ");
        reachable(&mut sql, scope, "customer.view");
        let hits: Vec<(i64, Option<String>)> = sql.fetch_all(&db.pool).await?;
        for (id, k) in hits {
            found.entry(k.unwrap_or_default()).or_default().push(id);
        }
    }
    let mut writes = Vec::new();
    for (row_no, key, values) in rows {
        match found.get(&key).map(Vec::as_slice) {
            Some([id]) => writes.push((*id, values)),
            Some(_) => rejected.push(ImportRejection {
                row: row_no,
                column: Some(column_letter(key_col)),
                field: Some("customer".into()),
                reason: format!("more than one customer is called '{key}': use the customer code"),
            }),
            None => rejected.push(ImportRejection {
                row: row_no,
                column: Some(column_letter(key_col)),
                field: Some("customer".into()),
                reason: format!("no customer '{key}' in your scope"),
            }),
        }
    }
    rejected.sort_by_key(|r| r.row);
    let accepted = writes.len();
    if !dry_run && accepted > 0 {
        let mut tx = db.begin().await?;
        for (id, values) in writes {
            set_values(&mut tx, scope, id, &period, values).await?;
        }
        audit::record(
            &mut *tx,
            scope.into(),
            Entry {
                org_path: scope.org_path.as_str(),
                action: "scoring_inputs.import",
                entity: "scoring_inputs",
                entity_id: None,
                summary: format!(
                    "grading inputs for {period} imported from {}: {accepted} rows",
                    source.file_name
                ),
                changes: None,
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(InputsImport {
        period,
        rows: data
            .iter()
            .filter(|r| r.iter().any(|c| c.text().is_some()))
            .count(),
        accepted,
        rejected,
        mapping,
        ignored_columns: ignored,
        dry_run,
    })
}

/// A run's results the caller may see as an xlsx workbook: one row per customer with each
/// criterion's score.
pub async fn export_xlsx(db: &Db, scope: &Scope, run_id: i64) -> Result<Vec<u8>> {
    require(scope, "grading.view")?;
    let run = get_run(db, scope, run_id).await?;
    let model = model_version(
        &mut *db.pool.acquire().await?,
        scope,
        run.model_id,
        Some(run.model_version),
    )
    .await?
    .definition();
    let mut sql = Sql::new("SELECT g.customer_id, c.name, c.code, g.score, g.grade, g.abc, g.scale_tier, g.breakdown FROM grade_results g JOIN customers c ON c.id = g.customer_id JOIN orgs o ON o.id = c.org_id WHERE g.run_id = ");
    sql.arg(run_id).push(" AND ");
    reachable(&mut sql, scope, "customer.view");
    sql.push(" ORDER BY g.score DESC, g.customer_id");
    type Row = (
        i64,
        String,
        Option<String>,
        f64,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = sql.fetch_all(&db.pool).await?;
    let xlsx = |e: rust_xlsxwriter::XlsxError| {
        StoreError::Database(sqlx::Error::Protocol(format!("xlsx: {e}")))
    };
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let mut headers: Vec<String> = [
        "客户ID",
        "客户编号",
        "客户名称",
        "得分",
        "等级",
        "ABC",
        "规模",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    headers.extend(
        model
            .criteria
            .iter()
            .map(|c| format!("{}({})", c.name, c.weight)),
    );
    for (i, h) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(0, i as u16, h, &bold)
            .map_err(xlsx)?;
    }
    for (r, (id, name, code, score, grade, abc, tier, breakdown)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_number(r, 0, *id as f64).map_err(xlsx)?;
        sheet
            .write_string(r, 1, code.as_deref().unwrap_or(""))
            .map_err(xlsx)?;
        sheet.write_string(r, 2, name).map_err(xlsx)?;
        sheet.write_number(r, 3, *score).map_err(xlsx)?;
        sheet.write_string(r, 4, grade).map_err(xlsx)?;
        sheet
            .write_string(r, 5, abc.as_deref().unwrap_or(""))
            .map_err(xlsx)?;
        sheet
            .write_string(r, 6, tier.as_deref().unwrap_or(""))
            .map_err(xlsx)?;
        for (i, l) in lines(&model, breakdown).iter().enumerate() {
            sheet.write_number(r, 7 + i as u16, l.score).map_err(xlsx)?;
        }
    }
    let bytes = book.save_to_buffer().map_err(xlsx)?;
    audit::record(
        &db.pool,
        scope.into(),
        Entry {
            org_path: scope.org_path.as_str(),
            action: "scoring_run.export",
            entity: "scoring_run",
            entity_id: Some(run_id),
            summary: format!("grades of run {run_id} exported: {} rows", rows.len()),
            changes: None,
        },
    )
    .await?;
    Ok(bytes)
}

// ---------------------------------------------------------------- star level overrides

/// A service-level override of a customer's star level: manual (no `until`) or until a date.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StarLevelOverride {
    pub level: i64,
    /// YYYY-MM-DD; null for a manual override that holds until removed.
    pub until: Option<String>,
}

async fn star_override_of<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    customer_id: i64,
) -> Result<Option<StarLevelOverride>> {
    let row: Option<(i64, Option<String>)> =
        Sql::new("SELECT level, until_on FROM star_overrides WHERE customer_id = ")
            .arg(customer_id)
            .fetch_optional(ex)
            .await?;
    Ok(row.map(|(level, until)| StarLevelOverride { level, until }))
}

/// Sets a customer's star override; runs from then on use it (a fixed-date one for periods up to
/// its date's). Levels go from 0 to the number of thresholds.
pub async fn set_star_override(
    db: &Db,
    scope: &Scope,
    customer_id: i64,
    level: i64,
    until: Option<&str>,
) -> Result<StarLevelOverride> {
    require(scope, "grading.manage")?;
    let mut tx = db.begin().await?;
    let path = visible_customer(&mut *tx, scope, customer_id).await?;
    let customer_path = OrgPath::parse(&path).expect("stored org paths are well formed");
    let max = grading_settings::in_force(&mut tx, &customer_path)
        .await?
        .star_thresholds
        .len() as i64;
    if !(0..=max).contains(&level) {
        return Err(Invalid::new(
            "level",
            "out_of_range",
            format!("a star level goes from 0 to {max}"),
        )
        .into());
    }
    let until = until
        .map(|u| {
            chrono::NaiveDate::parse_from_str(u.trim(), "%Y-%m-%d")
                .map(|d| d.to_string())
                .map_err(|_| {
                    Invalid::new(
                        "until",
                        "invalid_date",
                        format!("'{u}' is not a date: write it as YYYY-MM-DD"),
                    )
                })
        })
        .transpose()?;
    Sql::new("DELETE FROM star_overrides WHERE customer_id = ")
        .arg(customer_id)
        .execute(&mut *tx)
        .await?;
    Sql::new("INSERT INTO star_overrides (customer_id, level, until_on, set_by, set_at) VALUES (")
        .arg(customer_id)
        .push(", ")
        .arg(level)
        .push(", ")
        .arg(until.clone())
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(now_millis())
        .push(")")
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "star_override.set",
            entity: "customer",
            entity_id: Some(customer_id),
            summary: match &until {
                Some(u) => format!("star level set to {level} until {u}"),
                None => format!("star level set to {level} until removed"),
            },
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StarLevelOverride { level, until })
}

/// Removes a customer's star override (404 when there is none); later runs count points again.
pub async fn clear_star_override(db: &Db, scope: &Scope, customer_id: i64) -> Result<()> {
    require(scope, "grading.manage")?;
    let mut tx = db.begin().await?;
    let path = visible_customer(&mut *tx, scope, customer_id).await?;
    let gone = Sql::new("DELETE FROM star_overrides WHERE customer_id = ")
        .arg(customer_id)
        .execute(&mut *tx)
        .await?;
    if gone == 0 {
        return Err(StoreError::NotFound);
    }
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "star_override.clear",
            entity: "customer",
            entity_id: Some(customer_id),
            summary: "star level override removed".into(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
