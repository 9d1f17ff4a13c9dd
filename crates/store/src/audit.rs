//! The audit log: who changed what and when. Written in the same transaction as the change;
//! nothing in the product updates or deletes an entry.

use crate::db::id_cursor;
use crate::{Page, Result, Sql, StoreError};
use keping_domain::scope::Scope;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{Any, Executor};

/// What changed: field → [before, after]. Only fields whose value differs are kept.
#[derive(Debug, Default, Clone)]
pub struct Changes(Map<String, Value>);

impl Changes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field<T: Serialize + PartialEq>(
        &mut self,
        name: &str,
        before: &T,
        after: &T,
    ) -> &mut Self {
        if before != after {
            self.0
                .insert(name.to_string(), serde_json::json!([before, after]));
        }
        self
    }

    /// A value with nothing before it (a creation) or nothing after it (a deletion).
    pub fn set<T: Serialize>(&mut self, name: &str, value: &T) -> &mut Self {
        self.0
            .insert(name.to_string(), serde_json::json!([null, value]));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

pub struct Entry<'a> {
    pub org_path: &'a str,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<i64>,
    pub summary: String,
    pub changes: Option<Changes>,
}

/// The acting person: a scope for a signed-in caller, or a name for the system itself.
pub struct Actor<'a> {
    pub user_id: Option<i64>,
    pub username: &'a str,
}

impl<'a> From<&'a Scope> for Actor<'a> {
    fn from(s: &'a Scope) -> Self {
        Actor {
            user_id: Some(s.user_id),
            username: &s.username,
        }
    }
}

pub async fn record<'e, E: Executor<'e, Database = Any>>(
    ex: E,
    actor: Actor<'_>,
    entry: Entry<'_>,
) -> Result<()> {
    let changes = entry
        .changes
        .filter(|c| !c.is_empty())
        .map(|c| Value::Object(c.0).to_string());
    Sql::new("INSERT INTO audit_log (at, user_id, username, org_path, action, entity, entity_id, summary, changes) VALUES (")
        .arg(keping_domain::now_millis())
        .push(", ")
        .arg(actor.user_id)
        .push(", ")
        .arg(actor.username)
        .push(", ")
        .arg(entry.org_path)
        .push(", ")
        .arg(entry.action)
        .push(", ")
        .arg(entry.entity)
        .push(", ")
        .arg(entry.entity_id)
        .push(", ")
        .arg(entry.summary)
        .push(", ")
        .arg(changes)
        .push(")")
        .execute(ex)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    pub user_id: Option<i64>,
    pub username: String,
    pub org_path: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    pub summary: String,
    pub changes: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub entity: Option<String>,
    pub action: Option<String>,
    pub username: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// Newest first, within the caller's audit reach.
pub async fn list(
    db: &crate::Db,
    scope: &Scope,
    filter: &AuditFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<AuditRow>> {
    if !scope.has("audit.view") {
        return Err(StoreError::Forbidden("audit.view"));
    }
    let mut sql = Sql::new("SELECT id, at, user_id, username, org_path, action, entity, entity_id, summary, changes FROM audit_log WHERE ");
    sql.reach("org_path", &scope.reach("audit.view"));
    if let Some(e) = &filter.entity {
        sql.push(" AND entity = ").arg(e);
    }
    if let Some(a) = &filter.action {
        sql.push(" AND action = ").arg(a);
    }
    if let Some(u) = &filter.username {
        sql.push(" AND username = ").arg(u.to_lowercase());
    }
    if let Some(f) = filter.from_ms {
        sql.push(" AND at >= ").arg(f);
    }
    if let Some(t) = filter.to_ms {
        sql.push(" AND at < ").arg(t);
    }
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND id < ").arg(after);
    }
    sql.push(" ORDER BY id DESC LIMIT ").arg(limit + 1);
    let rows = sql.fetch_all(&db.pool).await?;
    Ok(Page::from_rows(rows, limit, |r: &AuditRow| {
        r.id.to_string()
    }))
}
