//! Service evaluation (服务评价): windows, terminals, staff on duty, services, presses and ratings.

use crate::audit::{self, Changes, Entry};
use crate::db::{id_cursor, only_under};
use crate::{settings, Backend, Db, Page, Result, Sql, StoreError};
use keping_domain::auth::{new_secret, secret_digest};
use keping_domain::evaluation::{self as rules, EvaluationSettings};
use keping_domain::org::OrgPath;
use keping_domain::scope::{Reach, Scope};
use keping_domain::validate::{self, Invalid};
use keping_domain::{now_millis, Millis};
use serde::Serialize;
use sqlx::{Any, Transaction};
use std::collections::HashMap;
use utoipa::ToSchema;

const SETTINGS: &str = "evaluation";
/// A duty session open this long ends by itself (see `end_stale_duties`).
pub const STALE_DUTY_MS: Millis = 12 * 3_600_000;

// ---------------------------------------------------------------- settings

/// The settings in force for an org: its own, else the nearest ancestor's, else the defaults.
pub async fn settings_for<'e, E: sqlx::Executor<'e, Database = Any>>(
    ex: E,
    org_path: &OrgPath,
) -> Result<EvaluationSettings> {
    Ok(settings_for_each(ex, std::slice::from_ref(org_path))
        .await?
        .pop()
        .unwrap_or_default())
}

/// [`settings_for`] for each of `org_paths`, in one query.
pub async fn settings_for_each<'e, E: sqlx::Executor<'e, Database = Any>>(
    ex: E,
    org_paths: &[OrgPath],
) -> Result<Vec<EvaluationSettings>> {
    Ok(settings::nearest_each(ex, org_paths, SETTINGS)
        .await?
        .into_iter()
        .map(|s| s.map(|(_, s)| s).unwrap_or_default())
        .collect())
}

/// Sets an org's own settings; its subtree inherits them unless it has its own.
pub async fn put_settings(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    settings: &EvaluationSettings,
) -> Result<EvaluationSettings> {
    if !scope.has("settings.manage") {
        return Err(StoreError::Forbidden("settings.manage"));
    }
    settings.validate()?;
    let mut tx = db.begin().await?;
    let path = org_in(&mut tx, scope, "settings.manage", org_id).await?;
    let before = settings_for(&mut *tx, &path).await?;
    crate::settings::put(&mut tx, org_id, SETTINGS, settings).await?;
    let mut changes = Changes::new();
    changes.field("evaluation_settings", &before, settings);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "update",
            entity: "evaluation_settings",
            entity_id: Some(org_id),
            summary: String::new(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(settings.clone())
}

/// Drops an org's own settings: from now on it inherits its nearest ancestor's (or the defaults).
/// Past ratings keep what they were given under, as with any change of settings.
pub async fn inherit_settings(db: &Db, scope: &Scope, org_id: i64) -> Result<()> {
    if !scope.has("settings.manage") {
        return Err(StoreError::Forbidden("settings.manage"));
    }
    let mut tx = db.begin().await?;
    let path = org_in(&mut tx, scope, "settings.manage", org_id).await?;
    let before = settings_for(&mut *tx, &path).await?;
    if crate::settings::remove(&mut tx, org_id, SETTINGS).await? {
        let after = settings_for(&mut *tx, &path).await?;
        let mut changes = Changes::new();
        changes.field("evaluation_settings", &before, &after);
        audit::record(
            &mut *tx,
            scope.into(),
            Entry {
                org_path: path.as_str(),
                action: "inherit",
                entity: "evaluation_settings",
                entity_id: Some(org_id),
                summary: String::new(),
                changes: Some(changes),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The settings in force for an org and where they come from.
#[derive(Debug, Clone)]
pub struct SettingsInForce {
    pub settings: EvaluationSettings,
    /// The org that set them (the org itself or an ancestor); None: the built-in defaults.
    pub from_org_id: Option<i64>,
    pub from_org_name: Option<String>,
}

pub async fn settings(db: &Db, scope: &Scope, org_id: i64) -> Result<SettingsInForce> {
    let mut tx = db.read().await?;
    let path = org_in(&mut tx, scope, "org.view", org_id).await?;
    let nearest = settings::nearest_named(&mut tx, &path, SETTINGS).await?;
    tx.commit().await?;
    Ok(match nearest {
        Some((from, from_org_name, settings)) => SettingsInForce {
            settings,
            from_org_id: Some(from),
            from_org_name: Some(from_org_name),
        },
        None => SettingsInForce {
            settings: EvaluationSettings::default(),
            from_org_id: None,
            from_org_name: None,
        },
    })
}

pub(crate) async fn org_in(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    permission: &str,
    org_id: i64,
) -> Result<OrgPath> {
    let mut sql = Sql::new("SELECT path FROM orgs WHERE id = ");
    sql.arg(org_id)
        .push(" AND ")
        .reach("path", &scope.reach(permission));
    let (path,): (String,) = sql.fetch_one(&mut **tx).await?;
    Ok(OrgPath::parse(&path).expect("stored org paths are well formed"))
}

/// The org a new window or business type goes to: one out of reach is a wrong choice (422), not
/// a missing object.
async fn org_for_new(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    permission: &str,
    org_id: i64,
    what: &str,
) -> Result<OrgPath> {
    org_in(tx, scope, permission, org_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Invalid::new(
                "org_id",
                "unknown_org",
                format!("there is no org {org_id} you may add {what} to"),
            )
            .into(),
            e => e,
        })
}

// ---------------------------------------------------------------- windows

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Window {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    pub name: String,
    pub code: String,
    pub business_type_id: Option<i64>,
    pub business_type_name: Option<String>,
    #[serde(serialize_with = "ser_bool")]
    #[schema(value_type = bool)]
    pub is_open: i64,
    /// Terminals not revoked.
    pub terminal_count: i64,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

fn ser_bool<S: serde::Serializer>(v: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(*v != 0)
}

const WINDOW_SELECT: &str = "SELECT w.id, w.org_id, o.name AS org_name, w.name, w.code, w.business_type_id, bt.name AS business_type_name, w.is_open, \
     (SELECT COUNT(*) FROM terminals t WHERE t.window_id = w.id AND t.revoked_at IS NULL) AS terminal_count, w.created_at \
     FROM windows w JOIN orgs o ON o.id = w.org_id LEFT JOIN business_types bt ON bt.id = w.business_type_id";
const WINDOW_READERS: &[&str] = &["window.manage", "terminal.manage", "monitor.view"];

pub struct NewWindow {
    pub org_id: i64,
    pub name: String,
    pub code: String,
}

pub async fn create_window(db: &Db, scope: &Scope, new: NewWindow) -> Result<Window> {
    if !scope.has("window.manage") {
        return Err(StoreError::Forbidden("window.manage"));
    }
    let name = validate::required_text("name", &new.name, 50)?;
    let code = validate::code("code", &new.code, 32)?;
    let mut tx = db.begin().await?;
    let path = org_for_new(&mut tx, scope, "window.manage", new.org_id, "windows").await?;
    let id = insert_coded(
        &mut tx, scope, "windows", "window", new.org_id, &path, &name, &code,
    )
    .await?;
    let w: Window = Sql::new(&format!("{WINDOW_SELECT} WHERE w.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(w)
}

/// Windows and business types are both a named, coded thing of an org (codes unique per org):
/// one insert and one audit entry for either.
#[allow(clippy::too_many_arguments)]
async fn insert_coded(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    table: &str,
    entity: &str,
    org_id: i64,
    path: &OrgPath,
    name: &str,
    code: &str,
) -> Result<i64> {
    let now = now_millis();
    let id = Sql::new(&format!(
        "INSERT INTO {table} (org_id, name, code, created_at, updated_at) VALUES ("
    ))
    .arg(org_id)
    .push(", ")
    .arg(name)
    .push(", ")
    .arg(code)
    .push(", ")
    .arg(now)
    .push(", ")
    .arg(now)
    .push(") RETURNING id")
    .fetch_i64(&mut **tx)
    .await
    .map_err(|e| e.unique(&["code"]))?;
    let mut changes = Changes::new();
    changes.set("name", &name).set("code", &code);
    audit::record(
        &mut **tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "create",
            entity,
            entity_id: Some(id),
            summary: name.to_string(),
            changes: Some(changes),
        },
    )
    .await?;
    Ok(id)
}

pub async fn window(db: &Db, scope: &Scope, id: i64) -> Result<Window> {
    window_reached_by(db, scope, WINDOW_READERS, id).await
}

/// A window within the reach of any of `permissions`, e.g. only `terminal.manage` for a page
/// that manages its terminals.
pub async fn window_reached_by(
    db: &Db,
    scope: &Scope,
    permissions: &[&'static str],
    id: i64,
) -> Result<Window> {
    if let [first, ..] = permissions {
        if !permissions.iter().any(|p| scope.has(p)) {
            return Err(StoreError::Forbidden(first));
        }
    }
    let mut sql = Sql::new(&format!("{WINDOW_SELECT} WHERE w.id = "));
    sql.arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach_any(permissions));
    sql.fetch_one(&db.pool).await
}

#[derive(Default)]
pub struct WindowFilter {
    pub q: Option<String>,
    /// Only windows in this org's subtree.
    pub org_id: Option<i64>,
}

pub async fn windows(
    db: &Db,
    scope: &Scope,
    filter: &WindowFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<Window>> {
    if !WINDOW_READERS.iter().any(|p| scope.has(p)) {
        return Err(StoreError::Forbidden("monitor.view"));
    }
    let reach = scope.reach_any(WINDOW_READERS);
    let mut sql = Sql::new(&format!("{WINDOW_SELECT} WHERE "));
    sql.reach("o.path", &reach);
    if let Some(org_id) = filter.org_id {
        only_under(db, &mut sql, &reach, org_id).await?;
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let like = format!("%{}%", q.to_lowercase());
        sql.push(" AND (LOWER(w.name) LIKE ")
            .arg(like.clone())
            .push(" OR LOWER(w.code) LIKE ")
            .arg(like)
            .push(")");
    }
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND w.id > ").arg(after);
    }
    sql.push(" ORDER BY w.id LIMIT ").arg(limit + 1);
    let rows: Vec<Window> = sql.fetch_all(&db.pool).await?;
    Ok(Page::from_rows(rows, limit, |w| w.id.to_string()))
}

#[derive(Default)]
pub struct WindowPatch {
    pub name: Option<String>,
    pub code: Option<String>,
    pub is_open: Option<bool>,
    /// Some(None) takes the business type away.
    pub business_type_id: Option<Option<i64>>,
}

pub async fn update_window(db: &Db, scope: &Scope, id: i64, patch: WindowPatch) -> Result<Window> {
    if !scope.has("window.manage") {
        return Err(StoreError::Forbidden("window.manage"));
    }
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(&format!("{WINDOW_SELECT} WHERE w.id = "));
    sql.arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach("window.manage"));
    let before: Window = sql.fetch_one(&mut *tx).await?;
    let name = patch
        .name
        .as_deref()
        .map(|n| validate::required_text("name", n, 50))
        .transpose()?
        .unwrap_or_else(|| before.name.clone());
    let code = patch
        .code
        .as_deref()
        .map(|c| validate::code("code", c, 32))
        .transpose()?
        .unwrap_or_else(|| before.code.clone());
    let is_open = patch.is_open.map_or(before.is_open, i64::from);
    let (path,): (String,) = Sql::new("SELECT path FROM orgs WHERE id = ")
        .arg(before.org_id)
        .fetch_one(&mut *tx)
        .await?;
    let business_type_id = match patch.business_type_id {
        None => before.business_type_id,
        Some(None) => None,
        Some(Some(bt)) => Some(usable_business_type(&mut tx, &path, bt).await?),
    };
    Sql::new("UPDATE windows SET name = ")
        .arg(&name)
        .push(", code = ")
        .arg(&code)
        .push(", is_open = ")
        .arg(is_open)
        .push(", business_type_id = ")
        .arg(business_type_id)
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.unique(&["code"]))?;
    let mut changes = Changes::new();
    changes
        .field("name", &before.name, &name)
        .field("code", &before.code, &code)
        .field("is_open", &(before.is_open != 0), &(is_open != 0))
        .field(
            "business_type_id",
            &before.business_type_id,
            &business_type_id,
        );
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "update",
            entity: "window",
            entity_id: Some(id),
            summary: name,
            changes: Some(changes),
        },
    )
    .await?;
    let after: Window = Sql::new(&format!("{WINDOW_SELECT} WHERE w.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(after)
}

// ---------------------------------------------------------------- business types

/// 业务: what a window handles. Defined at an org; windows of that org and of its whole subtree
/// may use it, so a head office defines them once for every outlet.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct BusinessType {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    pub name: String,
    pub code: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

const BUSINESS_TYPE_SELECT: &str = "SELECT bt.id, bt.org_id, o.name AS org_name, bt.name, bt.code, bt.created_at FROM business_types bt JOIN orgs o ON o.id = bt.org_id";

pub struct NewBusinessType {
    pub org_id: i64,
    pub name: String,
    pub code: String,
}

pub async fn create_business_type(
    db: &Db,
    scope: &Scope,
    new: NewBusinessType,
) -> Result<BusinessType> {
    if !scope.has("window.manage") {
        return Err(StoreError::Forbidden("window.manage"));
    }
    let name = validate::required_text("name", &new.name, 50)?;
    let code = validate::code("code", &new.code, 32)?;
    let mut tx = db.begin().await?;
    let path = org_for_new(
        &mut tx,
        scope,
        "window.manage",
        new.org_id,
        "business types",
    )
    .await?;
    let id = insert_coded(
        &mut tx,
        scope,
        "business_types",
        "business_type",
        new.org_id,
        &path,
        &name,
        &code,
    )
    .await?;
    let bt: BusinessType = Sql::new(&format!("{BUSINESS_TYPE_SELECT} WHERE bt.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(bt)
}

/// Business types for those who see windows. With `usable_at`, the ones a window of that org may
/// use (defined there or above it); without, those defined within the caller's reach or above it.
pub async fn business_types(
    db: &Db,
    scope: &Scope,
    usable_at: Option<i64>,
) -> Result<Vec<BusinessType>> {
    if !WINDOW_READERS.iter().any(|p| scope.has(p)) {
        return Err(StoreError::Forbidden("window.manage"));
    }
    let reach = scope.reach_any(WINDOW_READERS);
    let mut sql = Sql::new(&format!("{BUSINESS_TYPE_SELECT} WHERE "));
    match usable_at {
        Some(org_id) => {
            let (path,): (String,) = Sql::new("SELECT path FROM orgs WHERE id = ")
                .arg(org_id)
                .fetch_one(&db.pool)
                .await?;
            let path = OrgPath::parse(&path).expect("stored org paths are well formed");
            if !reach.contains(&path) {
                return Err(StoreError::NotFound);
            }
            sql.in_ids("bt.org_id", &path.ids());
        }
        None => {
            // the types above the reach are the ones its windows inherit
            let above: Vec<i64> = match &reach {
                Reach::Some { subtrees, nodes } => subtrees
                    .iter()
                    .chain(nodes)
                    .flat_map(OrgPath::ids)
                    .collect(),
                Reach::Nothing | Reach::Everything => Vec::new(),
            };
            sql.push("(").reach("o.path", &reach);
            if !above.is_empty() {
                sql.push(" OR ");
                sql.in_ids("bt.org_id", &above);
            }
            sql.push(")");
        }
    }
    sql.push(" ORDER BY o.path, bt.code");
    sql.fetch_all(&db.pool).await
}

/// A business type the caller manages: defined within his `window.manage` reach.
async fn managed_business_type(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    id: i64,
) -> Result<(BusinessType, String)> {
    if !scope.has("window.manage") {
        return Err(StoreError::Forbidden("window.manage"));
    }
    let mut sql = Sql::new(&format!("{BUSINESS_TYPE_SELECT} WHERE bt.id = "));
    sql.arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach("window.manage"));
    let bt: BusinessType = sql.fetch_one(&mut **tx).await?;
    let (path,): (String,) = Sql::new("SELECT path FROM orgs WHERE id = ")
        .arg(bt.org_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok((bt, path))
}

/// Renames a business type; windows, services and reports keep pointing at it, so past figures
/// show the new name.
pub async fn rename_business_type(
    db: &Db,
    scope: &Scope,
    id: i64,
    name: &str,
) -> Result<BusinessType> {
    let name = validate::required_text("name", name, 50)?;
    let mut tx = db.begin().await?;
    let (before, path) = managed_business_type(&mut tx, scope, id).await?;
    Sql::new("UPDATE business_types SET name = ")
        .arg(&name)
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    let mut changes = Changes::new();
    changes.field("name", &before.name, &name);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "update",
            entity: "business_type",
            entity_id: Some(id),
            summary: name.clone(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(BusinessType { name, ..before })
}

/// Deletes a business type nothing uses yet. One a window or a past service uses stays, so
/// history keeps its business (409 `in_use`); rename it instead.
pub async fn delete_business_type(db: &Db, scope: &Scope, id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let (bt, path) = managed_business_type(&mut tx, scope, id).await?;
    let (windows, services): (i64, i64) =
        Sql::new("SELECT (SELECT COUNT(*) FROM windows WHERE business_type_id = ")
            .arg(id)
            .push("), (SELECT COUNT(*) FROM (SELECT 1 FROM services WHERE business_type_id = ")
            .arg(id)
            .push(" LIMIT 1) used)")
            .fetch_one(&mut *tx)
            .await?;
    if windows > 0 || services > 0 {
        return Err(StoreError::conflict(
            "business_type",
            "in_use",
            format!(
                "business type {} is used by {windows} window(s){}; rename it instead",
                bt.name,
                if services > 0 {
                    " and by past services"
                } else {
                    ""
                }
            ),
        ));
    }
    Sql::new("DELETE FROM business_types WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "delete",
            entity: "business_type",
            entity_id: Some(id),
            summary: bt.name,
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A business type a window at `window_path` may use: defined at its org or above it.
async fn usable_business_type(
    tx: &mut Transaction<'static, Any>,
    window_path: &str,
    id: i64,
) -> Result<i64> {
    let path = OrgPath::parse(window_path).expect("stored org paths are well formed");
    let mut sql = Sql::new("SELECT id FROM business_types WHERE id = ");
    sql.arg(id).push(" AND ");
    sql.in_ids("org_id", &path.ids());
    sql.fetch_optional::<(i64,), _>(&mut **tx)
        .await?
        .map(|(id,)| id)
        .ok_or_else(|| {
            Invalid::new(
                "business_type_id",
                "unknown_business_type",
                format!("business type {id} is not defined for this window's org or above it"),
            )
            .into()
        })
}

// ---------------------------------------------------------------- terminals

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Terminal {
    pub id: i64,
    pub window_id: i64,
    /// keypad, kiosk or qr
    pub kind: String,
    pub name: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen_at: Option<i64>,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

const TERMINAL_SELECT: &str =
    "SELECT id, window_id, kind, name, created_at, last_seen_at, revoked_at FROM terminals";
const TERMINAL_KINDS: [&str; 3] = ["keypad", "kiosk", "qr"];

/// Registers a terminal for a window in reach. Answers it with its token, which is shown once.
pub async fn create_terminal(
    db: &Db,
    scope: &Scope,
    window_id: i64,
    kind: &str,
    name: Option<&str>,
) -> Result<(Terminal, String)> {
    if !scope.has("terminal.manage") {
        return Err(StoreError::Forbidden("terminal.manage"));
    }
    if !TERMINAL_KINDS.contains(&kind) {
        return Err(Invalid::new(
            "kind",
            "invalid_choice",
            format!("kind must be keypad, kiosk or qr, not '{kind}'"),
        )
        .into());
    }
    let name = validate::optional_text("name", name, 50)?.unwrap_or_else(|| kind.to_string());
    let mut tx = db.begin().await?;
    let (t, token, _) = insert_terminal(&mut tx, scope, window_id, kind, &name).await?;
    tx.commit().await?;
    Ok((t, token))
}

/// 打印二维码: a new QR terminal for a window in reach, whose token (in the printed URL) is
/// answered this once. Only digests of tokens are kept, so an old code cannot be printed again:
/// the window's older QR terminals are revoked instead, and their printed codes stop working.
pub async fn rotate_qr_terminal(
    db: &Db,
    scope: &Scope,
    window_id: i64,
) -> Result<(Window, String)> {
    if !scope.has("terminal.manage") {
        return Err(StoreError::Forbidden("terminal.manage"));
    }
    let mut tx = db.begin().await?;
    // two managers printing at once must not revoke each other's new code
    lock_window(&mut tx, db.backend, window_id).await?;
    let (t, token, path) = insert_terminal(&mut tx, scope, window_id, "qr", "qr")
        .await
        .map_err(|e| match e {
            StoreError::Invalid(_) => StoreError::NotFound,
            e => e,
        })?;
    let now = now_millis();
    let revoked: Vec<(i64,)> = Sql::new("UPDATE terminals SET revoked_at = ")
        .arg(now)
        .push(" WHERE window_id = ")
        .arg(window_id)
        .push(" AND kind = 'qr' AND revoked_at IS NULL AND id <> ")
        .arg(t.id)
        .push(" RETURNING id")
        .fetch_all(&mut *tx)
        .await?;
    for (id,) in revoked {
        audit::record(
            &mut *tx,
            scope.into(),
            Entry {
                org_path: &path,
                action: "revoke",
                entity: "terminal",
                entity_id: Some(id),
                summary: "qr".into(),
                changes: None,
            },
        )
        .await?;
    }
    let w: Window = Sql::new(&format!("{WINDOW_SELECT} WHERE w.id = "))
        .arg(window_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok((w, token))
}

/// Adds a terminal to a window in the caller's reach; answers it, its token and the window's org path.
async fn insert_terminal(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    window_id: i64,
    kind: &str,
    name: &str,
) -> Result<(Terminal, String, String)> {
    let mut sql =
        Sql::new("SELECT o.path FROM windows w JOIN orgs o ON o.id = w.org_id WHERE w.id = ");
    sql.arg(window_id)
        .push(" AND ")
        .reach("o.path", &scope.reach("terminal.manage"));
    let (path,): (String,) = sql.fetch_optional(&mut **tx).await?.ok_or_else(|| {
        Invalid::new(
            "window_id",
            "unknown_window",
            format!("there is no window {window_id} you may add terminals to"),
        )
    })?;
    let token = new_secret("kpd");
    let id = Sql::new("INSERT INTO terminals (window_id, kind, name, digest, created_at) VALUES (")
        .arg(window_id)
        .push(", ")
        .arg(kind)
        .push(", ")
        .arg(name)
        .push(", ")
        .arg(secret_digest(&token))
        .push(", ")
        .arg(now_millis())
        .push(") RETURNING id")
        .fetch_i64(&mut **tx)
        .await?;
    let t = terminal_changed(tx, scope, &path, id, "create").await?;
    Ok((t, token, path))
}

/// A window's terminals, live ones first, for those who manage or watch terminals there.
pub async fn terminals(db: &Db, scope: &Scope, window_id: i64) -> Result<Vec<Terminal>> {
    const READERS: &[&str] = &["terminal.manage", "monitor.view"];
    if !READERS.iter().any(|p| scope.has(p)) {
        return Err(StoreError::Forbidden("terminal.manage"));
    }
    let mut tx = db.read().await?;
    let mut sql =
        Sql::new("SELECT w.id FROM windows w JOIN orgs o ON o.id = w.org_id WHERE w.id = ");
    sql.arg(window_id)
        .push(" AND ")
        .reach("o.path", &scope.reach_any(READERS));
    sql.fetch_one::<(i64,), _>(&mut *tx).await?;
    let list = Sql::new(&format!("{TERMINAL_SELECT} WHERE window_id = "))
        .arg(window_id)
        .push(" ORDER BY CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, id")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(list)
}

/// A terminal in reach of terminal.manage: its org path and whether it is revoked.
async fn terminal_in(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    id: i64,
) -> Result<(String, Option<i64>)> {
    let mut sql = Sql::new("SELECT o.path, t.revoked_at FROM terminals t JOIN windows w ON w.id = t.window_id JOIN orgs o ON o.id = w.org_id WHERE t.id = ");
    sql.arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach("terminal.manage"));
    sql.fetch_one(&mut **tx).await
}

fn already_revoked(id: i64) -> StoreError {
    StoreError::Conflict {
        field: None,
        code: "terminal_revoked",
        message: format!("terminal {id} is revoked already; register a new one"),
    }
}

/// 吊销: the terminal's token stops working with its next request.
pub async fn revoke_terminal(db: &Db, scope: &Scope, id: i64) -> Result<Terminal> {
    if !scope.has("terminal.manage") {
        return Err(StoreError::Forbidden("terminal.manage"));
    }
    let mut tx = db.begin().await?;
    let (path, _) = terminal_in(&mut tx, scope, id).await?;
    let now = now_millis();
    let n = Sql::new("UPDATE terminals SET revoked_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(id)
        .push(" AND revoked_at IS NULL")
        .execute(&mut *tx)
        .await?;
    if n == 0 {
        return Err(already_revoked(id));
    }
    let t = terminal_changed(&mut tx, scope, &path, id, "revoke").await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(t)
}

/// 更换令牌: a new token for the same terminal, shown once; the old one stops working at once.
pub async fn rotate_terminal(db: &Db, scope: &Scope, id: i64) -> Result<(Terminal, String)> {
    if !scope.has("terminal.manage") {
        return Err(StoreError::Forbidden("terminal.manage"));
    }
    let mut tx = db.begin().await?;
    let (path, revoked_at) = terminal_in(&mut tx, scope, id).await?;
    if revoked_at.is_some() {
        return Err(already_revoked(id));
    }
    let token = new_secret("kpd");
    Sql::new("UPDATE terminals SET digest = ")
        .arg(secret_digest(&token))
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    let t = terminal_changed(&mut tx, scope, &path, id, "rotate").await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok((t, token))
}

/// Audits a change to a terminal and reads it back.
async fn terminal_changed(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    path: &str,
    id: i64,
    action: &str,
) -> Result<Terminal> {
    let t: Terminal = Sql::new(&format!("{TERMINAL_SELECT} WHERE id = "))
        .arg(id)
        .fetch_one(&mut **tx)
        .await?;
    audit::record(
        &mut **tx,
        scope.into(),
        Entry {
            org_path: path,
            action,
            entity: "terminal",
            entity_id: Some(id),
            summary: format!("{} {}", t.kind, t.name),
            changes: None,
        },
    )
    .await?;
    Ok(t)
}

/// The terminal a device token belongs to, with its window's place in the tree.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Device {
    pub terminal_id: i64,
    pub window_id: i64,
    pub org_id: i64,
    pub org_path: String,
    pub kind: String,
    pub window_name: String,
    pub business_type_id: Option<i64>,
    pub org_name: String,
    pub timezone: String,
    pub last_seen_at: Option<i64>,
}

pub async fn device(db: &Db, token: &str) -> Result<Option<Device>> {
    let digest = secret_digest(token);
    if let Some(d) = db.devices.get(&digest) {
        return Ok(Some(d));
    }
    let found: Option<Device> = Sql::new("SELECT t.id AS terminal_id, t.window_id, w.org_id, o.path AS org_path, t.kind, w.name AS window_name, w.business_type_id, o.name AS org_name, o.timezone, t.last_seen_at FROM terminals t JOIN windows w ON w.id = t.window_id JOIN orgs o ON o.id = w.org_id WHERE t.digest = ")
        .arg(&digest)
        .push(" AND t.revoked_at IS NULL AND o.enabled = 1")
        .fetch_optional(&db.pool)
        .await?;
    if let Some(d) = &found {
        db.devices.put(digest, d.clone());
    }
    Ok(found)
}

impl Device {
    pub fn path(&self) -> OrgPath {
        OrgPath::parse(&self.org_path).expect("stored org paths are well formed")
    }

    /// A QR code's token is printed for anyone to read, so it only rates; it never runs the counter.
    pub fn is_qr(&self) -> bool {
        self.kind == "qr"
    }
}

/// A terminal that asks for the state this often counts as alive; its `last_seen_at` is written
/// at most once per this interval, not on every poll.
const HEARTBEAT_MS: Millis = 30_000;
/// A staff photo stays visible to the window's terminals this long after his duty ended, so a
/// terminal that has just drawn his card still gets his photo.
const PHOTO_AFTER_DUTY_MS: Millis = 3_600_000;

/// What a terminal shows: the window, who is on duty, the options and where the service stands.
#[derive(Debug, Clone)]
pub struct DeviceState {
    pub window_id: i64,
    pub window_name: String,
    pub org_name: String,
    pub business_type: Option<String>,
    pub staff: Option<Staff>,
    pub settings: EvaluationSettings,
    /// The service in progress, if any.
    pub service_id: Option<i64>,
    /// Whether a prompt is open and still unrated now.
    pub prompt_open: bool,
}

/// The state of the terminal's window now. Asking for it is the terminal's heartbeat.
pub async fn device_state(db: &Db, device: &Device) -> Result<DeviceState> {
    let now = now_millis();
    let mut tx = db.read().await?;
    let (org_name, business_type): (String, Option<String>) = Sql::new(
        "SELECT o.name, b.name FROM windows w JOIN orgs o ON o.id = w.org_id LEFT JOIN business_types b ON b.id = w.business_type_id WHERE w.id = ",
    )
    .arg(device.window_id)
    .fetch_one(&mut *tx)
    .await?;
    let staff = Sql::new("SELECT u.id, u.name, COALESCE(u.employee_no, ''), CASE WHEN u.photo IS NULL THEN 0 ELSE 1 END FROM duties d JOIN users u ON u.id = d.staff_id WHERE d.ended_at IS NULL AND d.window_id = ")
        .arg(device.window_id)
        .push(" ORDER BY d.started_at DESC LIMIT 1")
        .fetch_optional::<(i64, String, String, i64), _>(&mut *tx)
        .await?
        .map(|(id, name, employee_no, has_photo)| Staff {
            id,
            name,
            employee_no,
            has_photo: has_photo != 0,
        });
    let service_id = Sql::new("SELECT id FROM services WHERE ended_at IS NULL AND window_id = ")
        .arg(device.window_id)
        .push(" ORDER BY started_at DESC LIMIT 1")
        .fetch_optional::<(i64,), _>(&mut *tx)
        .await?
        .map(|(id,)| id);
    let settings = settings_for(&mut *tx, &device.path()).await?;
    let prompt =
        crate::press::prompt_state(&mut tx, db.backend, device.window_id, now, &settings).await?;
    tx.commit().await?;
    if device.last_seen_at.is_none_or(|t| t < now - HEARTBEAT_MS) {
        Sql::new("UPDATE terminals SET last_seen_at = ")
            .arg(now)
            .push(" WHERE id = ")
            .arg(device.terminal_id)
            .execute(&db.pool)
            .await?;
    }
    Ok(DeviceState {
        window_id: device.window_id,
        window_name: device.window_name.clone(),
        org_name,
        business_type,
        staff,
        settings,
        service_id,
        prompt_open: matches!(prompt.open_prompt, Some((_, false))),
    })
}

/// The photo of a member of staff on duty at the terminal's window now or within the last hour;
/// anyone else's is not found, so a terminal token cannot page through the staff's photos.
pub async fn duty_photo(db: &Db, device: &Device, staff_id: i64) -> Result<(Vec<u8>, String)> {
    let found: Option<(Option<Vec<u8>>, Option<String>)> =
        Sql::new("SELECT u.photo, u.photo_type FROM users u WHERE u.id = ")
            .arg(staff_id)
            .push(" AND EXISTS (SELECT 1 FROM duties d WHERE d.staff_id = u.id AND d.window_id = ")
            .arg(device.window_id)
            .push(" AND (d.ended_at IS NULL OR d.ended_at > ")
            .arg(now_millis() - PHOTO_AFTER_DUTY_MS)
            .push("))")
            .fetch_optional(&db.pool)
            .await?;
    match found {
        Some((Some(bytes), Some(kind))) => Ok((bytes, kind)),
        _ => Err(StoreError::NotFound),
    }
}

// ---------------------------------------------------------------- duty

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Staff {
    pub id: i64,
    pub name: String,
    pub employee_no: String,
    /// Whether a photo can be fetched for the staff card.
    pub has_photo: bool,
}

/// 上岗: the person with this 工号 signs in at the terminal's window. He must belong to the window's
/// outlet, to an org above it or below it; anyone else is unknown here. Signing in ends his duty
/// elsewhere and whoever was on duty at this window.
pub async fn sign_in(db: &Db, device: &Device, employee_no: &str) -> Result<Staff> {
    let employee_no = employee_no.trim();
    let mut tx = db.begin().await?;
    let candidate: Option<(i64, String, String, i64, String)> = Sql::new("SELECT u.id, u.name, u.employee_no, CASE WHEN u.photo IS NULL THEN 0 ELSE 1 END, o.path FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.enabled = 1 AND u.employee_no = ")
        .arg(employee_no)
        .fetch_optional(&mut *tx)
        .await?;
    let here = device.path();
    ensure_window_open(&mut tx, device).await?;
    let staff = match candidate {
        Some((id, name, no, has_photo, path))
            if OrgPath::parse(&path).is_some_and(|p| p.contains(&here) || here.contains(&p)) =>
        {
            Staff {
                id,
                name,
                employee_no: no,
                has_photo: has_photo != 0,
            }
        }
        _ => return Err(StoreError::NotFound),
    };
    let now = now_millis();
    let mut ended: Vec<(i64,)> = Sql::new("UPDATE duties SET ended_at = ")
        .arg(now)
        .push(", end_reason = 'moved' WHERE ended_at IS NULL AND staff_id = ")
        .arg(staff.id)
        .push(" RETURNING id")
        .fetch_all(&mut *tx)
        .await?;
    ended.extend(
        Sql::new("UPDATE duties SET ended_at = ")
            .arg(now)
            .push(", end_reason = 'replaced' WHERE ended_at IS NULL AND window_id = ")
            .arg(device.window_id)
            .push(" RETURNING id")
            .fetch_all::<(i64,), _>(&mut *tx)
            .await?,
    );
    crate::stats::duties_ended(&mut tx, db.backend, &ended).await?;
    Sql::new("INSERT INTO duties (window_id, staff_id, started_at) VALUES (")
        .arg(device.window_id)
        .push(", ")
        .arg(staff.id)
        .push(", ")
        .arg(now)
        .push(")")
        .execute(&mut *tx)
        .await?;
    touch(&mut tx, device, now).await?;
    tx.commit().await?;
    Ok(staff)
}

pub async fn sign_out(db: &Db, device: &Device) -> Result<()> {
    let mut tx = db.begin().await?;
    let now = now_millis();
    let ended: Vec<(i64,)> = Sql::new("UPDATE duties SET ended_at = ")
        .arg(now)
        .push(", end_reason = 'signed_out' WHERE ended_at IS NULL AND window_id = ")
        .arg(device.window_id)
        .push(" RETURNING id")
        .fetch_all(&mut *tx)
        .await?;
    crate::stats::duties_ended(&mut tx, db.backend, &ended).await?;
    touch(&mut tx, device, now).await?;
    tx.commit().await?;
    Ok(())
}

async fn touch(tx: &mut Transaction<'static, Any>, device: &Device, now: Millis) -> Result<()> {
    Sql::new("UPDATE terminals SET last_seen_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(device.terminal_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A closed window (暂停服务) takes no sign-in and no new service. Presses are still stored: a
/// prompt opened before the window closed may be rated, and offline presses arrive late.
async fn ensure_window_open(tx: &mut Transaction<'static, Any>, device: &Device) -> Result<()> {
    let (is_open,): (i64,) = Sql::new("SELECT is_open FROM windows WHERE id = ")
        .arg(device.window_id)
        .fetch_one(&mut **tx)
        .await?;
    if is_open == 0 {
        return Err(StoreError::conflict(
            "window",
            "window_closed",
            format!(
                "window {} is closed; open it before signing in or starting a service",
                device.window_name
            ),
        ));
    }
    Ok(())
}

/// Serialises work on one window across connections and instances (PostgreSQL); SQLite's
/// immediate transactions serialise all writers already.
async fn lock_window(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    window_id: i64,
) -> Result<()> {
    if backend == Backend::Postgres {
        Sql::new("SELECT id FROM windows WHERE id = ")
            .arg(window_id)
            .push(" FOR UPDATE")
            .fetch_optional::<(i64,), _>(&mut **tx)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- services

/// Start: a service begins at the window, served by whoever is on duty. The open prompt of the
/// previous service closes unrated. A service already in progress is a conflict.
pub async fn start_service(db: &Db, device: &Device) -> Result<i64> {
    let mut tx = db.begin().await?;
    lock_window(&mut tx, db.backend, device.window_id).await?;
    ensure_window_open(&mut tx, device).await?;
    let running: Option<(i64,)> =
        Sql::new("SELECT id FROM services WHERE ended_at IS NULL AND window_id = ")
            .arg(device.window_id)
            .push(" LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((id,)) = running {
        return Err(StoreError::conflict(
            "service",
            "service_in_progress",
            format!("service {id} is still in progress at this window; end it first"),
        ));
    }
    let now = now_millis();
    // a Start right after an End cuts that prompt short: it was not offered after all
    type Last = (i64, i64, i64, Option<i64>, Option<i64>);
    let last: Option<Last> = Sql::new("SELECT id, ended_at, org_id, staff_id, business_type_id FROM services WHERE ended_at IS NOT NULL AND window_id = ")
        .arg(device.window_id)
        .push(" ORDER BY started_at DESC, id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    if let Some((_, ended_at, org_id, staff_id, bt)) = last {
        if !keping_domain::stats::prompt_offered(ended_at, Some(now)) {
            let mut rollup = crate::stats::Rollup::default();
            rollup.prompt_cut(
                &device.timezone,
                ended_at,
                org_id,
                device.window_id,
                staff_id,
                bt,
            );
            rollup.write(&mut tx, db.backend).await?;
        }
    }
    let staff: Option<(i64,)> =
        Sql::new("SELECT staff_id FROM duties WHERE ended_at IS NULL AND window_id = ")
            .arg(device.window_id)
            .push(" LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let id = Sql::new(
        "INSERT INTO services (window_id, org_id, staff_id, business_type_id, started_at) VALUES (",
    )
    .arg(device.window_id)
    .push(", ")
    .arg(device.org_id)
    .push(", ")
    .arg(staff.map(|(s,)| s))
    .push(", ")
    .arg(device.business_type_id)
    .push(", ")
    .arg(now)
    .push(") RETURNING id")
    .fetch_i64(&mut *tx)
    .await?;
    touch(&mut tx, device, now).await?;
    tx.commit().await?;
    Ok(id)
}

/// End: the service ends and its rating prompt opens.
pub async fn end_service(db: &Db, device: &Device, service_id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    lock_window(&mut tx, db.backend, device.window_id).await?;
    type Found = (Option<i64>, i64, Option<i64>, Option<i64>);
    let found: Option<Found> = Sql::new(
        "SELECT ended_at, started_at, staff_id, business_type_id FROM services WHERE id = ",
    )
    .arg(service_id)
    .push(" AND window_id = ")
    .arg(device.window_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (started_at, staff_id, business_type_id) = match found {
        None => return Err(StoreError::NotFound),
        Some((Some(_), ..)) => {
            return Err(StoreError::conflict(
                "service",
                "service_ended",
                format!("service {service_id} has ended already"),
            ))
        }
        Some((None, started_at, staff_id, business_type_id)) => {
            (started_at, staff_id, business_type_id)
        }
    };
    let now = now_millis();
    Sql::new("UPDATE services SET ended_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(service_id)
        .execute(&mut *tx)
        .await?;
    // the statistics roll-ups, in the same transaction
    let mut rollup = crate::stats::Rollup::default();
    rollup.service(
        &device.timezone,
        started_at,
        now,
        device.org_id,
        device.window_id,
        staff_id,
        business_type_id,
        true,
    );
    rollup.write(&mut tx, db.backend).await?;
    touch(&mut tx, device, now).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- ratings

/// A counted rating as a manager sees it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Rating {
    pub id: i64,
    pub service_id: Option<i64>,
    pub window_id: i64,
    pub window_name: String,
    pub org_id: i64,
    pub org_name: String,
    pub staff_id: Option<i64>,
    pub staff_name: Option<String>,
    pub key: String,
    /// As configured when the rating was given.
    pub label: String,
    pub polarity: String,
    /// Only for roles with negative.view.
    pub negative_reason: Option<String>,
    /// Masked (138****5678) for roles without phone.view; only for roles with negative.view.
    pub phone: Option<String>,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub rated_at: i64,
}

#[derive(Default)]
pub struct RatingFilter {
    pub org_id: Option<i64>,
    pub window_id: Option<i64>,
    pub staff_id: Option<i64>,
    pub polarity: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// 138****5678: enough to recognise a caller, not enough to call him (PIPL).
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let keep_end = 4;
    let keep_start = 3;
    chars[..keep_start]
        .iter()
        .chain(std::iter::repeat_n(
            &'*',
            chars.len() - keep_start - keep_end,
        ))
        .chain(&chars[chars.len() - keep_end..])
        .collect()
}

/// A customer's phone number as this caller may see it: whole with phone.view, else masked.
fn shown_phone(scope: &Scope, phone: Option<String>) -> Option<String> {
    if scope.has("phone.view") {
        phone
    } else {
        phone.as_deref().map(mask_phone)
    }
}

/// Ratings within the caller's statistics reach, newest first.
pub async fn ratings(
    db: &Db,
    scope: &Scope,
    filter: &RatingFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<Rating>> {
    if !scope.has("stats.view") {
        return Err(StoreError::Forbidden("stats.view"));
    }
    let reach = scope.reach("stats.view");
    let mut sql = Sql::new(
        "SELECT r.id, r.service_id, r.window_id, w.name AS window_name, r.org_id, o.name AS org_name, r.staff_id, u.name AS staff_name, r.key, r.label, r.polarity, r.negative_reason, r.phone, r.rated_at \
         FROM ratings r JOIN windows w ON w.id = r.window_id JOIN orgs o ON o.id = r.org_id LEFT JOIN users u ON u.id = r.staff_id WHERE ",
    );
    sql.reach("o.path", &reach);
    if let Some(org_id) = filter.org_id {
        only_under(db, &mut sql, &reach, org_id).await?;
    }
    if let Some(w) = filter.window_id {
        sql.push(" AND r.window_id = ").arg(w);
    }
    if let Some(s) = filter.staff_id {
        sql.push(" AND r.staff_id = ").arg(s);
    }
    if let Some(p) = &filter.polarity {
        sql.push(" AND r.polarity = ").arg(p);
    }
    if let Some(f) = filter.from_ms {
        sql.push(" AND r.rated_at >= ").arg(f);
    }
    if let Some(t) = filter.to_ms {
        sql.push(" AND r.rated_at < ").arg(t);
    }
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND r.id < ").arg(after);
    }
    sql.push(" ORDER BY r.id DESC LIMIT ").arg(limit + 1);
    let mut rows: Vec<Rating> = sql.fetch_all(&db.pool).await?;
    let details = scope.has("negative.view");
    for r in &mut rows {
        if details {
            r.phone = shown_phone(scope, r.phone.take());
        } else {
            r.negative_reason = None;
            r.phone = None;
        }
    }
    Ok(Page::from_rows(rows, limit, |r| r.id.to_string()))
}

// ---------------------------------------------------------------- follow-ups

/// 待跟进: opened by a negative rating; someone must close it with a note on what was done.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct FollowUp {
    pub id: i64,
    /// open or closed
    pub status: String,
    pub org_id: i64,
    pub org_name: String,
    pub window_id: i64,
    pub window_name: String,
    pub staff_id: Option<i64>,
    pub staff_name: Option<String>,
    pub rating_id: i64,
    pub key: String,
    /// The option's label when the rating was given.
    pub label: String,
    pub negative_reason: Option<String>,
    /// Masked (138****5678) for roles without phone.view.
    pub phone: Option<String>,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub rated_at: i64,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// What was done about it, given when closing.
    pub note: Option<String>,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<i64>,
    pub closed_by: Option<i64>,
    pub closed_by_name: Option<String>,
}

const FOLLOW_UP_SELECT: &str = "SELECT f.id, f.status, f.org_id, o.name AS org_name, f.window_id, w.name AS window_name, f.staff_id, s.name AS staff_name, \
     f.rating_id, r.key, r.label, r.negative_reason, r.phone, r.rated_at, f.created_at, f.note, f.closed_at, f.closed_by, c.name AS closed_by_name \
     FROM follow_ups f JOIN ratings r ON r.id = f.rating_id JOIN windows w ON w.id = f.window_id JOIN orgs o ON o.id = f.org_id \
     LEFT JOIN users s ON s.id = f.staff_id LEFT JOIN users c ON c.id = f.closed_by";

#[derive(Default)]
pub struct FollowUpFilter {
    /// open or closed; both when None.
    pub status: Option<String>,
    /// Only follow-ups in this org's subtree.
    pub org_id: Option<i64>,
}

/// Follow-ups within the reach of followup.handle, newest first. They belong to the outlet, not
/// to a person (the clerk rated is no one to handle his own complaint), so the reach is by org.
pub async fn follow_ups(
    db: &Db,
    scope: &Scope,
    filter: &FollowUpFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<FollowUp>> {
    if !scope.has("followup.handle") {
        return Err(StoreError::Forbidden("followup.handle"));
    }
    let reach = scope.reach("followup.handle");
    let mut sql = Sql::new(&format!("{FOLLOW_UP_SELECT} WHERE "));
    sql.reach("o.path", &reach);
    if let Some(status) = &filter.status {
        if !["open", "closed"].contains(&status.as_str()) {
            return Err(Invalid::new(
                "status",
                "invalid_choice",
                format!("status must be open or closed, not '{status}'"),
            )
            .into());
        }
        sql.push(" AND f.status = ").arg(status);
    }
    if let Some(org_id) = filter.org_id {
        only_under(db, &mut sql, &reach, org_id).await?;
    }
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND f.id < ").arg(after);
    }
    sql.push(" ORDER BY f.id DESC LIMIT ").arg(limit + 1);
    let mut rows: Vec<FollowUp> = sql.fetch_all(&db.pool).await?;
    for f in &mut rows {
        f.phone = shown_phone(scope, f.phone.take());
    }
    Ok(Page::from_rows(rows, limit, |f| f.id.to_string()))
}

/// 处理: closes a follow-up with a note on what was done. Closed is final: a second close is a conflict.
pub async fn close_follow_up(db: &Db, scope: &Scope, id: i64, note: &str) -> Result<FollowUp> {
    if !scope.has("followup.handle") {
        return Err(StoreError::Forbidden("followup.handle"));
    }
    let note = validate::required_text("note", note, 500)?;
    let mut tx = db.begin().await?;
    let mut sql =
        Sql::new("SELECT o.path FROM follow_ups f JOIN orgs o ON o.id = f.org_id WHERE f.id = ");
    sql.arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach("followup.handle"));
    let (path,): (String,) = sql.fetch_one(&mut *tx).await?;
    let now = now_millis();
    // the status condition settles two people closing at once: one wins, the other is told
    let n = Sql::new("UPDATE follow_ups SET status = 'closed', note = ")
        .arg(&note)
        .push(", closed_at = ")
        .arg(now)
        .push(", closed_by = ")
        .arg(scope.user_id)
        .push(" WHERE id = ")
        .arg(id)
        .push(" AND status = 'open'")
        .execute(&mut *tx)
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict {
            field: None,
            code: "already_closed",
            message: format!("follow-up {id} is closed already"),
        });
    }
    let mut changes = Changes::new();
    changes
        .field("status", &"open", &"closed")
        .set("note", &note);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &path,
            action: "close",
            entity: "follow_up",
            entity_id: Some(id),
            summary: note,
            changes: Some(changes),
        },
    )
    .await?;
    let mut closed: FollowUp = Sql::new(&format!("{FOLLOW_UP_SELECT} WHERE f.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    closed.phone = shown_phone(scope, closed.phone.take());
    Ok(closed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn phones_are_masked() {
        assert_eq!(super::mask_phone("13800135678"), "138****5678");
        assert_eq!(super::mask_phone("010-65001234"), "010*****1234");
        assert_eq!(super::mask_phone("12345"), "*****");
    }
}

// ---------------------------------------------------------------- live monitor

/// A window as the live monitor shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowLive {
    pub window: Window,
    /// idle, serving, awaiting_rating, paused (closed) or offline (no terminal heard lately)
    pub state: String,
    pub staff_name: Option<String>,
    pub employee_no: Option<String>,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub on_duty_since: Option<i64>,
    /// When the service in progress began.
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub serving_since: Option<i64>,
    pub today_services: i64,
    pub today_rated: i64,
    pub today_positive: i64,
    pub today_negative: i64,
    /// Labels and polarities of the latest ratings, newest first.
    pub latest: Vec<(String, String)>,
}

/// A terminal not heard from for this long counts as offline.
pub const OFFLINE_AFTER_MS: Millis = 10 * 60_000;

/// Every window in the caller's monitor reach (optionally one subtree or one window), now.
pub async fn monitor(
    db: &Db,
    scope: &Scope,
    org_id: Option<i64>,
    window_id: Option<i64>,
) -> Result<Vec<WindowLive>> {
    if !scope.has("monitor.view") {
        return Err(StoreError::Forbidden("monitor.view"));
    }
    let reach = scope.reach("monitor.view");
    let mut sql = Sql::new(&format!("{WINDOW_SELECT} WHERE "));
    sql.reach("o.path", &reach);
    if let Some(org_id) = org_id {
        only_under(db, &mut sql, &reach, org_id).await?;
    }
    if let Some(w) = window_id {
        sql.push(" AND w.id = ").arg(w);
    }
    sql.push(" ORDER BY o.path, w.code LIMIT 1000");
    let windows: Vec<Window> = sql.fetch_all(&db.pool).await?;
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_millis();
    // a few statements for all the windows, each answering for every window at once, from one
    // snapshot (a fold moves figures from pending to folded roll-ups)
    let mut tx = db.snapshot().await?;
    let ids: Vec<i64> = windows.iter().map(|w| w.id).collect();
    let mut org_ids: Vec<i64> = windows.iter().map(|w| w.org_id).collect();
    org_ids.sort_unstable();
    org_ids.dedup();
    let orgs: Vec<(i64, String, String)> =
        Sql::bulk(db.backend, "SELECT id, timezone, path FROM orgs WHERE ")
            .in_ids("id", &org_ids)
            .fetch_all(&mut *tx)
            .await?;
    let paths: Vec<OrgPath> = orgs
        .iter()
        .map(|(_, _, p)| OrgPath::parse(p).expect("stored org paths are well formed"))
        .collect();
    let timeouts: HashMap<i64, i64> = orgs
        .iter()
        .map(|o| o.0)
        .zip(settings_for_each(&mut *tx, &paths).await?)
        .map(|(id, s)| (id, s.rating_timeout_seconds))
        .collect();
    let today: HashMap<i64, String> = orgs
        .iter()
        .map(|(id, tz, _)| (*id, keping_domain::stats::local_parts(tz, now).day))
        .collect();
    let duties: HashMap<i64, (String, Option<String>, i64)> = Sql::bulk(db.backend, "SELECT d.window_id, u.name, u.employee_no, d.started_at FROM duties d JOIN users u ON u.id = d.staff_id WHERE d.ended_at IS NULL AND ")
        .in_ids("d.window_id", &ids)
        .fetch_all::<(i64, String, Option<String>, i64), _>(&mut *tx)
        .await?
        .into_iter()
        .map(|(w, name, no, since)| (w, (name, no, since)))
        .collect();
    let heard: HashMap<i64, Option<i64>> = Sql::bulk(
        db.backend,
        "SELECT window_id, MAX(last_seen_at) FROM terminals WHERE revoked_at IS NULL AND ",
    )
    .in_ids("window_id", &ids)
    .push(" GROUP BY window_id")
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut asked = Sql::bulk(db.backend, "WITH q (w, o, d) AS (VALUES ");
    for (n, w) in windows.iter().enumerate() {
        asked
            .push(if n == 0 { "(" } else { ", (" })
            .arg(w.id)
            .push(", ")
            .arg(w.org_id)
            .push(", ")
            .arg(today[&w.org_id].as_str())
            .push(")");
    }
    // services follow one another at a window, so the latest started is the latest
    let last: HashMap<i64, (i64, Option<i64>, Option<i64>)> = asked
        .clone()
        .push(") SELECT q.w, s.started_at, s.ended_at, s.rating_id FROM q JOIN services s ON s.id = (SELECT x.id FROM services x WHERE x.window_id = q.w ORDER BY x.started_at DESC, x.id DESC LIMIT 1)")
        .fetch_all::<(i64, i64, Option<i64>, Option<i64>), _>(&mut *tx)
        .await?
        .into_iter()
        .map(|(w, started, ended, rating)| (w, (started, ended, rating)))
        .collect();
    // today's figures from the day's roll-ups, folded and pending, in each outlet's own time zone
    let mut figures: HashMap<i64, (i64, i64, i64, i64)> = HashMap::new();
    for (table, cell) in [
        ("stats_rollup", "x.grain = 'wd' AND x.hour = 0 AND "),
        ("stats_pending", ""),
    ] {
        for (w, services, rated, positive, negative) in asked
            .clone()
            .push(&format!(") SELECT q.w, CAST(COALESCE(SUM(x.services), 0) AS BIGINT), CAST(COALESCE(SUM(x.rated), 0) AS BIGINT), \
               CAST(COALESCE(SUM(CASE WHEN x.polarity = 'positive' THEN x.ratings ELSE 0 END), 0) AS BIGINT), \
               CAST(COALESCE(SUM(CASE WHEN x.polarity = 'negative' THEN x.ratings ELSE 0 END), 0) AS BIGINT) \
               FROM q JOIN {table} x ON {cell}x.day = q.d AND x.org_id = q.o AND x.window_id = q.w \
               GROUP BY q.w"))
            .fetch_all::<(i64, i64, i64, i64, i64), _>(&mut *tx)
            .await?
        {
            let f = figures.entry(w).or_default();
            *f = (f.0 + services, f.1 + rated, f.2 + positive, f.3 + negative);
        }
    }
    let mut latest: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for (w, label, polarity) in asked
        .push(") SELECT q.w, r.label, r.polarity FROM q JOIN ratings r ON r.id IN (SELECT x.id FROM ratings x WHERE x.window_id = q.w ORDER BY x.rated_at DESC, x.id DESC LIMIT 5) ORDER BY q.w, r.rated_at DESC, r.id DESC")
        .fetch_all::<(i64, String, String), _>(&mut *tx)
        .await?
    {
        latest.entry(w).or_default().push((label, polarity));
    }
    tx.commit().await?;

    let mut out = Vec::with_capacity(windows.len());
    for w in windows {
        let duty = duties.get(&w.id).cloned();
        let last = last.get(&w.id).copied();
        let heard = heard.get(&w.id).copied().flatten();
        let (services, rated, positive, negative) = figures.get(&w.id).copied().unwrap_or_default();
        let state = if w.is_open == 0 {
            "paused"
        } else if heard.is_none_or(|h| now - h > OFFLINE_AFTER_MS) {
            "offline"
        } else {
            match last {
                Some((_, None, _)) => "serving",
                Some((_, Some(ended), None))
                    if rules::prompt_open_at(ended, None, timeouts[&w.org_id], now) =>
                {
                    "awaiting_rating"
                }
                _ => "idle",
            }
        };
        out.push(WindowLive {
            state: state.to_string(),
            staff_name: duty.as_ref().map(|d| d.0.clone()),
            employee_no: duty.as_ref().and_then(|d| d.1.clone()),
            on_duty_since: duty.map(|d| d.2),
            serving_since: last.filter(|l| l.1.is_none()).map(|l| l.0),
            today_services: services,
            today_rated: rated,
            today_positive: positive,
            today_negative: negative,
            latest: latest.remove(&w.id).unwrap_or_default(),
            window: w,
        });
    }
    Ok(out)
}

/// Where a window sits in the tree, for routing live events to those who may see them.
pub async fn window_path(db: &Db, window_id: i64) -> Result<String> {
    Ok(
        Sql::new("SELECT o.path FROM windows w JOIN orgs o ON o.id = w.org_id WHERE w.id = ")
            .arg(window_id)
            .fetch_one::<(String,), _>(&db.pool)
            .await?
            .0,
    )
}

/// Ends duty sessions left open longer than [`STALE_DUTY_MS`] (a clerk who went home without
/// signing out), so the monitor and on-duty hours do not run on forever. Returns how many ended.
pub async fn end_stale_duties(db: &Db) -> Result<u64> {
    let mut tx = db.begin().await?;
    let ended: Vec<(i64,)> = Sql::new("UPDATE duties SET ended_at = started_at + ")
        .arg(STALE_DUTY_MS)
        .push(", end_reason = 'stale' WHERE ended_at IS NULL AND started_at < ")
        .arg(now_millis() - STALE_DUTY_MS)
        .push(" RETURNING id")
        .fetch_all(&mut *tx)
        .await?;
    crate::stats::duties_ended(&mut tx, db.backend, &ended).await?;
    tx.commit().await?;
    Ok(ended.len() as u64)
}
