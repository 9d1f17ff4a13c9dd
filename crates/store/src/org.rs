//! The org tree (机构设置).

use crate::audit::{self, Changes, Entry};
use crate::db::decode_cursor;
use crate::{Db, Page, Result, Sql, StoreError};
use keping_domain::org::{self as rules, OrgKind, OrgPath, DEFAULT_TIMEZONE};
use keping_domain::scope::Scope;
use keping_domain::{now_millis, Invalid};
use serde::Serialize;
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Org {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub code: String,
    /// head_office, branch, outlet or department
    pub kind: String,
    pub path: String,
    pub depth: i64,
    /// The time zone in force: the node's own or inherited from above.
    pub timezone: String,
    pub timezone_inherited: bool,
    pub enabled: bool,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct OrgRow {
    id: i64,
    parent_id: Option<i64>,
    name: String,
    code: String,
    kind: String,
    path: String,
    depth: i64,
    timezone_own: Option<String>,
    timezone: String,
    enabled: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<OrgRow> for Org {
    fn from(r: OrgRow) -> Org {
        Org {
            id: r.id,
            parent_id: r.parent_id,
            name: r.name,
            code: r.code,
            kind: r.kind,
            path: r.path,
            depth: r.depth,
            timezone_inherited: r.timezone_own.is_none(),
            timezone: r.timezone,
            enabled: r.enabled != 0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Org {
    pub fn org_path(&self) -> OrgPath {
        OrgPath::parse(&self.path).expect("stored org paths are well formed")
    }
}

const COLUMNS: &str = "id, parent_id, name, code, kind, path, depth, timezone_own, timezone, enabled, created_at, updated_at";

pub struct NewOrg {
    pub name: String,
    pub code: String,
    pub parent_id: Option<i64>,
    pub kind: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Default)]
pub struct OrgPatch {
    pub name: Option<String>,
    pub code: Option<String>,
    pub kind: Option<String>,
    /// Some(None) returns the node to the inherited zone.
    pub timezone: Option<Option<String>>,
    pub enabled: Option<bool>,
}

#[derive(Default)]
pub struct OrgFilter {
    /// Any part of the name or code.
    pub q: Option<String>,
    /// Only this node's subtree.
    pub under: Option<i64>,
    pub enabled: Option<bool>,
}

fn parse_kind(kind: Option<&str>, depth: usize) -> Result<OrgKind> {
    match kind {
        None => Ok(OrgKind::default_for_depth(depth)),
        Some(k) => OrgKind::parse(k).ok_or_else(|| {
            Invalid::new(
                "kind",
                "invalid_choice",
                format!("kind must be one of head_office, branch, outlet, department, not '{k}'"),
            )
            .into()
        }),
    }
}

async fn fetch_in_tx(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Org> {
    let row: OrgRow = Sql::new(&format!("SELECT {COLUMNS} FROM orgs WHERE id = "))
        .arg(id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.into())
}

/// The first root, made on first start with the administrator at it. Returns None if one exists.
pub async fn create_first_root(
    tx: &mut Transaction<'static, Any>,
    name: &str,
    code: &str,
) -> Result<Option<Org>> {
    let existing = Sql::new("SELECT COUNT(*) FROM orgs")
        .fetch_i64(&mut **tx)
        .await?;
    if existing > 0 {
        return Ok(None);
    }
    let id = insert(
        tx,
        name,
        code,
        None,
        OrgKind::HeadOffice,
        None,
        DEFAULT_TIMEZONE,
    )
    .await?;
    Ok(Some(fetch_in_tx(tx, id).await?))
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    name: &str,
    code: &str,
    parent: Option<&Org>,
    kind: OrgKind,
    timezone_own: Option<&str>,
    timezone: &str,
) -> Result<i64> {
    let now = now_millis();
    // the path needs the id, so the row is written with a unique placeholder path first
    let placeholder = format!("/pending-{}/", keping_domain::auth::new_secret("p"));
    let id = Sql::new("INSERT INTO orgs (parent_id, name, code, kind, path, depth, timezone_own, timezone, enabled, created_at, updated_at) VALUES (")
        .arg(parent.map(|p| p.id))
        .push(", ")
        .arg(name)
        .push(", ")
        .arg(code)
        .push(", ")
        .arg(kind.code())
        .push(", ")
        .arg(placeholder)
        .push(", ")
        .arg(parent.map_or(0, |p| p.depth + 1))
        .push(", ")
        .arg(timezone_own)
        .push(", ")
        .arg(timezone)
        .push(", 1, ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&mut **tx)
        .await
        .map_err(|e| e.unique(&["code"]))?;
    let path = match parent {
        Some(p) => p.org_path().child(id),
        None => OrgPath::root(id),
    };
    Sql::new("UPDATE orgs SET path = ")
        .arg(path.as_str())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

pub async fn create(db: &Db, scope: &Scope, new: NewOrg) -> Result<Org> {
    if !scope.has("org.manage") {
        return Err(StoreError::Forbidden("org.manage"));
    }
    let name = rules::name(&new.name)?;
    let code = rules::code(&new.code)?;
    let own_tz = new
        .timezone
        .as_deref()
        .map(|tz| rules::timezone("timezone", tz))
        .transpose()?;
    let mut tx = db.begin().await?;
    let parent = match new.parent_id {
        Some(pid) => {
            let parent = get_in(&mut tx, scope, "org.manage", pid)
                .await
                .map_err(|e| {
                    not_found_as(
                        e,
                        Invalid::new(
                            "parent_id",
                            "unknown_parent",
                            format!("there is no org {pid} you may add to"),
                        ),
                    )
                })?;
            Some(parent)
        }
        None => {
            if scope.widest_level("org.manage") != Some(keping_domain::auth::DataLevel::All) {
                return Err(Invalid::new("parent_id", "required", "only an administrator with the data level 'all' may create a root; give parent_id").into());
            }
            None
        }
    };
    let kind = parse_kind(
        new.kind.as_deref(),
        parent.as_ref().map_or(0, |p| p.depth as usize + 1),
    )?;
    let timezone = own_tz
        .clone()
        .or_else(|| parent.as_ref().map(|p| p.timezone.clone()))
        .unwrap_or_else(|| DEFAULT_TIMEZONE.to_string());
    let id = insert(
        &mut tx,
        &name,
        &code,
        parent.as_ref(),
        kind,
        own_tz.as_deref(),
        &timezone,
    )
    .await?;
    let org = fetch_in_tx(&mut tx, id).await?;
    let mut changes = Changes::new();
    changes
        .set("name", &org.name)
        .set("code", &org.code)
        .set("parent_id", &org.parent_id)
        .set("kind", &org.kind);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &org.path,
            action: "create",
            entity: "org",
            entity_id: Some(id),
            summary: format!("{} ({})", org.name, org.code),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(org)
}

fn not_found_as(e: StoreError, invalid: Invalid) -> StoreError {
    match e {
        StoreError::NotFound => invalid.into(),
        e => e,
    }
}

async fn get_in(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    permission: &'static str,
    id: i64,
) -> Result<Org> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM orgs WHERE id = "));
    sql.arg(id)
        .push(" AND ")
        .reach("path", &scope.reach(permission));
    let row: OrgRow = sql.fetch_one(&mut **tx).await?;
    Ok(row.into())
}

pub async fn get(db: &Db, scope: &Scope, id: i64) -> Result<Org> {
    if !scope.has("org.view") {
        return Err(StoreError::Forbidden("org.view"));
    }
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM orgs WHERE id = "));
    sql.arg(id)
        .push(" AND ")
        .reach("path", &scope.reach("org.view"));
    let row: OrgRow = sql.fetch_one(&db.pool).await?;
    Ok(row.into())
}

/// The caller's part of the tree in path order (a parent before its children), a page at a time.
pub async fn list(
    db: &Db,
    scope: &Scope,
    filter: &OrgFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<Org>> {
    if !scope.has("org.view") {
        return Err(StoreError::Forbidden("org.view"));
    }
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM orgs WHERE "));
    sql.reach("path", &scope.reach("org.view"));
    if let Some(under) = filter.under {
        let mut tx = db.read().await?;
        let root = get_in(&mut tx, scope, "org.view", under).await?;
        tx.commit().await?;
        let (lo, hi) = root.org_path().subtree_range();
        sql.push(" AND path >= ")
            .arg(lo)
            .push(" AND path < ")
            .arg(hi);
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let like = format!("%{}%", q.to_lowercase());
        sql.push(" AND (LOWER(name) LIKE ")
            .arg(like.clone())
            .push(" OR LOWER(code) LIKE ")
            .arg(like)
            .push(")");
    }
    if let Some(enabled) = filter.enabled {
        sql.push(" AND enabled = ").arg(enabled);
    }
    if let Some(after) = decode_cursor(cursor)? {
        sql.push(" AND path > ").arg(after);
    }
    sql.push(" ORDER BY path LIMIT ").arg(limit + 1);
    let rows: Vec<OrgRow> = sql.fetch_all(&db.pool).await?;
    Ok(Page::from_rows(
        rows.into_iter().map(Org::from).collect(),
        limit,
        |o| o.path.clone(),
    ))
}

pub async fn update(db: &Db, scope: &Scope, id: i64, patch: OrgPatch) -> Result<Org> {
    if !scope.has("org.manage") {
        return Err(StoreError::Forbidden("org.manage"));
    }
    let mut tx = db.begin().await?;
    let before = get_in(&mut tx, scope, "org.manage", id).await?;
    let name = patch
        .name
        .as_deref()
        .map(rules::name)
        .transpose()?
        .unwrap_or_else(|| before.name.clone());
    let code = patch
        .code
        .as_deref()
        .map(rules::code)
        .transpose()?
        .unwrap_or_else(|| before.code.clone());
    let kind = match patch.kind.as_deref() {
        Some(k) => parse_kind(Some(k), before.depth as usize)?
            .code()
            .to_string(),
        None => before.kind.clone(),
    };
    let enabled = patch.enabled.unwrap_or(before.enabled);
    let mut sql = Sql::new("UPDATE orgs SET name = ");
    sql.arg(&name)
        .push(", code = ")
        .arg(&code)
        .push(", kind = ")
        .arg(&kind)
        .push(", enabled = ")
        .arg(enabled);
    if let Some(tz) = &patch.timezone {
        let tz = tz
            .as_deref()
            .map(|t| rules::timezone("timezone", t))
            .transpose()?;
        sql.push(", timezone_own = ").arg(tz);
    }
    sql.push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id);
    sql.execute(&mut *tx)
        .await
        .map_err(|e| e.unique(&["code"]))?;
    let path = before.org_path();
    if !enabled && before.enabled {
        // a disabled node takes its whole subtree out of service
        let (lo, hi) = path.subtree_range();
        Sql::new("UPDATE orgs SET enabled = 0, updated_at = ")
            .arg(now_millis())
            .push(" WHERE path >= ")
            .arg(lo)
            .push(" AND path < ")
            .arg(hi)
            .execute(&mut *tx)
            .await?;
    }
    if patch.timezone.is_some() {
        refresh_timezones(&mut tx, &path).await?;
    }
    let after = fetch_in_tx(&mut tx, id).await?;
    let mut changes = Changes::new();
    changes
        .field("name", &before.name, &after.name)
        .field("code", &before.code, &after.code)
        .field("kind", &before.kind, &after.kind)
        .field("timezone", &before.timezone, &after.timezone)
        .field("enabled", &before.enabled, &after.enabled);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &after.path,
            action: "update",
            entity: "org",
            entity_id: Some(id),
            summary: format!("{} ({})", after.name, after.code),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(after)
}

/// Moves a node and its subtree under another parent. Both must be within the caller's reach;
/// a move under the node itself or its descendants is refused.
pub async fn move_to(db: &Db, scope: &Scope, id: i64, new_parent_id: i64) -> Result<Org> {
    if !scope.has("org.manage") {
        return Err(StoreError::Forbidden("org.manage"));
    }
    let mut tx = db.begin().await?;
    let node = get_in(&mut tx, scope, "org.manage", id).await?;
    if node.parent_id.is_none() {
        return Err(StoreError::conflict(
            "id",
            "root_cannot_move",
            "a root org cannot move",
        ));
    }
    let parent = get_in(&mut tx, scope, "org.manage", new_parent_id)
        .await
        .map_err(|e| {
            not_found_as(
                e,
                Invalid::new(
                    "parent_id",
                    "unknown_parent",
                    format!("there is no org {new_parent_id} you may move to"),
                ),
            )
        })?;
    let old_path = node.org_path();
    let new_path = old_path
        .rebase(&old_path, &parent.org_path())
        .map_err(|e| StoreError::conflict("parent_id", "cycle", e.to_string()))?;
    if Some(new_parent_id) != node.parent_id {
        let (lo, hi) = old_path.subtree_range();
        let depth_delta = (parent.depth + 1) - node.depth;
        Sql::new("UPDATE orgs SET path = ")
            .arg(new_path.as_str())
            .push(" || SUBSTR(path, CAST(")
            .arg(old_path.as_str().len() as i64 + 1)
            .push(" AS INTEGER)), depth = depth + ")
            .arg(depth_delta)
            .push(" WHERE path >= ")
            .arg(lo)
            .push(" AND path < ")
            .arg(hi)
            .execute(&mut *tx)
            .await?;
        Sql::new("UPDATE orgs SET parent_id = ")
            .arg(new_parent_id)
            .push(", updated_at = ")
            .arg(now_millis())
            .push(" WHERE id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        // the audit trail of the subtree moves with it, so it stays visible to the same people as the nodes
        Sql::new("UPDATE audit_log SET org_path = ")
            .arg(new_path.as_str())
            .push(" || SUBSTR(org_path, CAST(")
            .arg(old_path.as_str().len() as i64 + 1)
            .push(" AS INTEGER)) WHERE org_path >= ")
            .arg(old_path.subtree_range().0)
            .push(" AND org_path < ")
            .arg(old_path.subtree_range().1)
            .execute(&mut *tx)
            .await?;
        refresh_timezones(&mut tx, &new_path).await?;
    }
    let after = fetch_in_tx(&mut tx, id).await?;
    let mut changes = Changes::new();
    changes
        .field("parent_id", &node.parent_id, &after.parent_id)
        .field("path", &node.path, &after.path);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &after.path,
            action: "move",
            entity: "org",
            entity_id: Some(id),
            summary: format!("{} → {}", after.name, parent.name),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(after)
}

/// Recomputes the zone in force for a subtree after a zone was set or the subtree moved.
async fn refresh_timezones(tx: &mut Transaction<'static, Any>, top: &OrgPath) -> Result<()> {
    #[derive(sqlx::FromRow)]
    struct Tz {
        id: i64,
        path: String,
        timezone_own: Option<String>,
        timezone: String,
    }
    let inherited = match top.parent() {
        Some(p) => {
            Sql::new("SELECT id, path, timezone_own, timezone FROM orgs WHERE path = ")
                .arg(p.as_str())
                .fetch_one::<Tz, _>(&mut **tx)
                .await?
                .timezone
        }
        None => DEFAULT_TIMEZONE.to_string(),
    };
    let (lo, hi) = top.subtree_range();
    let rows: Vec<Tz> =
        Sql::new("SELECT id, path, timezone_own, timezone FROM orgs WHERE path >= ")
            .arg(lo)
            .push(" AND path < ")
            .arg(hi)
            .push(" ORDER BY path")
            .fetch_all(&mut **tx)
            .await?;
    let mut in_force: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for r in rows {
        let path = OrgPath::parse(&r.path).expect("stored org paths are well formed");
        let from_parent = path
            .parent()
            .and_then(|p| in_force.get(p.as_str()).cloned())
            .unwrap_or_else(|| inherited.clone());
        let tz = r.timezone_own.clone().unwrap_or(from_parent);
        if tz != r.timezone {
            Sql::new("UPDATE orgs SET timezone = ")
                .arg(&tz)
                .push(" WHERE id = ")
                .arg(r.id)
                .execute(&mut **tx)
                .await?;
        }
        in_force.insert(r.path, tz);
    }
    Ok(())
}
