//! 常用筛选: the filters a person saves on the customer list, his own only (another's id is 404).

use crate::{Db, Result, Sql, StoreError};
use keping_domain::now_millis;
use keping_domain::scope::Scope;
use keping_domain::validate::Invalid;
use serde::Serialize;
use utoipa::ToSchema;

/// A person keeps at most this many.
pub const MAX_SAVED_FILTERS: i64 = 50;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct SavedFilter {
    pub id: i64,
    pub name: String,
    /// The list's query string, e.g. `kind=lead&importance=urgent`.
    pub query: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String)]
    pub created_at: i64,
}

pub async fn list(db: &Db, scope: &Scope) -> Result<Vec<SavedFilter>> {
    super::require(scope, "customer.view")?;
    Sql::new("SELECT id, name, query, created_at FROM customer_saved_filters WHERE user_id = ")
        .arg(scope.user_id)
        .push(" ORDER BY name, id")
        .fetch_all(&db.pool)
        .await
}

/// Saves `query` (already checked to be a list query) under `name`, unique per person.
pub async fn save(db: &Db, scope: &Scope, name: &str, query: &str) -> Result<SavedFilter> {
    super::require(scope, "customer.view")?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        return Err(Invalid::new(
            "name",
            "invalid_length",
            "a filter's name has 1 to 40 characters",
        )
        .into());
    }
    if query.len() > 2000 {
        return Err(Invalid::new(
            "query",
            "invalid_length",
            "the query is longer than 2000 characters",
        )
        .into());
    }
    let mut tx = db.begin().await?;
    let (count,): (i64,) = Sql::new("SELECT COUNT(*) FROM customer_saved_filters WHERE user_id = ")
        .arg(scope.user_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_SAVED_FILTERS {
        return Err(StoreError::conflict(
            "name",
            "too_many",
            format!("you keep at most {MAX_SAVED_FILTERS} saved filters; delete one first"),
        ));
    }
    let taken: Option<(i64,)> = Sql::new("SELECT id FROM customer_saved_filters WHERE user_id = ")
        .arg(scope.user_id)
        .push(" AND name = ")
        .arg(name)
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(StoreError::conflict(
            "name",
            "name_taken",
            format!("you already have a filter named '{name}'"),
        ));
    }
    let now = now_millis();
    let id =
        Sql::new("INSERT INTO customer_saved_filters (user_id, name, query, created_at) VALUES (")
            .arg(scope.user_id)
            .push(", ")
            .arg(name)
            .push(", ")
            .arg(query)
            .push(", ")
            .arg(now)
            .push(") RETURNING id")
            .fetch_i64(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(SavedFilter {
        id,
        name: name.to_string(),
        query: query.to_string(),
        created_at: now,
    })
}

/// One of the caller's own filters; anyone else's is not found.
pub async fn get(db: &Db, scope: &Scope, id: i64) -> Result<SavedFilter> {
    super::require(scope, "customer.view")?;
    Sql::new("SELECT id, name, query, created_at FROM customer_saved_filters WHERE id = ")
        .arg(id)
        .push(" AND user_id = ")
        .arg(scope.user_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)
}

pub async fn delete(db: &Db, scope: &Scope, id: i64) -> Result<()> {
    super::require(scope, "customer.view")?;
    let n = Sql::new("DELETE FROM customer_saved_filters WHERE id = ")
        .arg(id)
        .push(" AND user_id = ")
        .arg(scope.user_id)
        .execute(&db.pool)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
