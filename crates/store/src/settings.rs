//! Settings kept per org node and inherited down the tree: a node without its own takes its
//! nearest ancestor's.

use crate::{Result, Sql};
use keping_domain::now_millis;
use keping_domain::org::OrgPath;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::{Any, Executor, Transaction};

/// The nearest setting `name` at or above `path`, and the org it comes from.
pub async fn nearest<'e, T: DeserializeOwned, E: Executor<'e, Database = Any>>(
    ex: E,
    path: &OrgPath,
    name: &str,
) -> Result<Option<(i64, T)>> {
    Ok(nearest_each(ex, std::slice::from_ref(path), name)
        .await?
        .pop()
        .flatten())
}

/// [`nearest`] with the name of the org it comes from (which may lie outside the caller's reach:
/// its name is no secret to those it governs).
pub async fn nearest_named<T: DeserializeOwned>(
    conn: &mut sqlx::AnyConnection,
    path: &OrgPath,
    name: &str,
) -> Result<Option<(i64, String, T)>> {
    let mut ids = path.ids();
    ids.sort_unstable();
    let mut sql = Sql::new("SELECT s.org_id, o.name, s.value FROM org_settings s JOIN orgs o ON o.id = s.org_id WHERE s.name = ");
    sql.arg(name).push(" AND ").in_ids("s.org_id", &ids);
    let rows: Vec<(i64, String, String)> = sql.fetch_all(conn).await?;
    Ok(path
        .ids()
        .iter()
        .rev()
        .find_map(|id| rows.iter().find(|(o, _, _)| o == id))
        .and_then(|(o, org_name, json)| {
            serde_json::from_str(json)
                .ok()
                .map(|v| (*o, org_name.clone(), v))
        }))
}

/// [`nearest`] for each of `paths`, in one query.
pub async fn nearest_each<'e, T: DeserializeOwned, E: Executor<'e, Database = Any>>(
    ex: E,
    paths: &[OrgPath],
    name: &str,
) -> Result<Vec<Option<(i64, T)>>> {
    let mut ids: Vec<i64> = paths.iter().flat_map(OrgPath::ids).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut sql = Sql::new("SELECT org_id, value FROM org_settings WHERE name = ");
    sql.arg(name).push(" AND ").in_ids("org_id", &ids);
    let rows: Vec<(i64, String)> = sql.fetch_all(ex).await?;
    Ok(paths
        .iter()
        .map(|path| {
            path.ids()
                .iter()
                .rev()
                .find_map(|id| rows.iter().find(|(o, _)| o == id))
                .and_then(|(o, json)| serde_json::from_str(json).ok().map(|v| (*o, v)))
        })
        .collect())
}

/// Replaces an org's own setting `name`.
pub async fn put<T: Serialize>(
    tx: &mut Transaction<'static, Any>,
    org_id: i64,
    name: &str,
    value: &T,
) -> Result<()> {
    Sql::new("DELETE FROM org_settings WHERE org_id = ")
        .arg(org_id)
        .push(" AND name = ")
        .arg(name)
        .execute(&mut **tx)
        .await?;
    Sql::new("INSERT INTO org_settings (org_id, name, value, updated_at) VALUES (")
        .arg(org_id)
        .push(", ")
        .arg(name)
        .push(", ")
        .arg(serde_json::to_string(value).expect("settings serialise"))
        .push(", ")
        .arg(now_millis())
        .push(")")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Drops an org's own setting `name`, so it inherits again; whether there was one.
pub async fn remove(tx: &mut Transaction<'static, Any>, org_id: i64, name: &str) -> Result<bool> {
    let removed = Sql::new("DELETE FROM org_settings WHERE org_id = ")
        .arg(org_id)
        .push(" AND name = ")
        .arg(name)
        .execute(&mut **tx)
        .await?;
    Ok(removed > 0)
}
