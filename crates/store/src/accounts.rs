//! People, roles and the scope they give (职员设置, 用户列表, 角色权限).

use crate::audit::{self, Actor, Changes, Entry};
use crate::db::{id_cursor, only_under};
use crate::org;
use crate::{tokens, Db, Page, Result, Sql, StoreError};
use keping_domain::auth::{self, DataLevel};
use keping_domain::now_millis;
use keping_domain::org::OrgPath;
use keping_domain::scope::{Grant, Scope};
use keping_domain::validate::{self, Invalid};
use serde::Serialize;
use sqlx::{Any, Transaction};
use std::collections::BTreeSet;
use utoipa::ToSchema;

// ---------------------------------------------------------------- roles

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub permissions: Vec<String>,
    /// self, self_and_subordinates, org, org_and_children or all
    pub data_level: String,
    pub builtin: bool,
    /// How many assignments hold this role.
    pub assignments: i64,
}

#[derive(sqlx::FromRow)]
struct RoleRow {
    id: i64,
    name: String,
    permissions: String,
    data_level: String,
    builtin: i64,
    assignments: i64,
}

impl From<RoleRow> for Role {
    fn from(r: RoleRow) -> Role {
        Role {
            id: r.id,
            name: r.name,
            permissions: serde_json::from_str(&r.permissions).unwrap_or_default(),
            data_level: r.data_level,
            builtin: r.builtin != 0,
            assignments: r.assignments,
        }
    }
}

const ROLE_SELECT: &str = "SELECT r.id, r.name, r.permissions, r.data_level, r.builtin, (SELECT COUNT(*) FROM user_roles ur WHERE ur.role_id = r.id) AS assignments FROM roles r";

pub struct RoleInput {
    pub name: String,
    pub permissions: Vec<String>,
    pub data_level: String,
}

fn check_role(input: &RoleInput) -> Result<(String, Vec<String>, DataLevel)> {
    let name = validate::required_text("name", &input.name, 50)?;
    let level = DataLevel::parse(&input.data_level).ok_or_else(|| {
        Invalid::new(
            "data_level",
            "invalid_choice",
            "data_level must be one of self, self_and_subordinates, org, org_and_children, all",
        )
    })?;
    let mut perms = BTreeSet::new();
    for p in &input.permissions {
        if auth::permission(p).is_none() {
            return Err(Invalid::new(
                "permissions",
                "unknown_permission",
                format!("'{p}' is not a permission; GET /api/v1/permissions lists them"),
            )
            .into());
        }
        perms.insert(p.clone());
    }
    Ok((name, perms.into_iter().collect(), level))
}

pub async fn roles(db: &Db, scope: &Scope) -> Result<Vec<Role>> {
    if !scope.has("role.manage") && !scope.has("user.manage") {
        return Err(StoreError::Forbidden("role.manage"));
    }
    let rows: Vec<RoleRow> = Sql::new(&format!("{ROLE_SELECT} ORDER BY r.builtin DESC, r.name"))
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(Role::from).collect())
}

pub async fn role(db: &Db, scope: &Scope, id: i64) -> Result<Role> {
    if !scope.has("role.manage") && !scope.has("user.manage") {
        return Err(StoreError::Forbidden("role.manage"));
    }
    let row: RoleRow = Sql::new(&format!("{ROLE_SELECT} WHERE r.id = "))
        .arg(id)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.into())
}

/// Roles are defined once for the whole organisation; only a role manager may change them, and
/// nobody may grant a permission he does not hold himself.
fn check_no_escalation(scope: &Scope, perms: &[String], level: DataLevel) -> Result<()> {
    let held = scope.permissions();
    if let Some(p) = perms.iter().find(|p| !held.contains(*p)) {
        return Err(Invalid::new(
            "permissions",
            "not_held",
            format!("you cannot grant '{p}': you do not hold it"),
        )
        .into());
    }
    let widest = scope
        .grants
        .iter()
        .map(|g| g.level)
        .max()
        .unwrap_or(DataLevel::Own);
    if level > widest {
        return Err(Invalid::new(
            "data_level",
            "not_held",
            format!(
                "you cannot grant the data level '{}': yours is narrower",
                level.code()
            ),
        )
        .into());
    }
    Ok(())
}

pub async fn create_role(db: &Db, scope: &Scope, input: RoleInput) -> Result<Role> {
    if !scope.has("role.manage") {
        return Err(StoreError::Forbidden("role.manage"));
    }
    let (name, perms, level) = check_role(&input)?;
    check_no_escalation(scope, &perms, level)?;
    let mut tx = db.begin().await?;
    let id = insert_role(&mut tx, &name, &perms, level, false).await?;
    let mut changes = Changes::new();
    changes
        .set("name", &name)
        .set("permissions", &perms)
        .set("data_level", &level.code());
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: scope.org_path.as_str(),
            action: "create",
            entity: "role",
            entity_id: Some(id),
            summary: name,
            changes: Some(changes),
        },
    )
    .await?;
    let row: RoleRow = Sql::new(&format!("{ROLE_SELECT} WHERE r.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.into())
}

async fn insert_role(
    tx: &mut Transaction<'static, Any>,
    name: &str,
    perms: &[String],
    level: DataLevel,
    builtin: bool,
) -> Result<i64> {
    let now = now_millis();
    Sql::new("INSERT INTO roles (name, permissions, data_level, builtin, created_at, updated_at) VALUES (")
        .arg(name)
        .push(", ")
        .arg(serde_json::to_string(perms).expect("strings serialise"))
        .push(", ")
        .arg(level.code())
        .push(", ")
        .arg(builtin)
        .push(", ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&mut **tx)
        .await
        .map_err(|e| e.unique(&["name"]))
}

pub async fn update_role(db: &Db, scope: &Scope, id: i64, input: RoleInput) -> Result<Role> {
    if !scope.has("role.manage") {
        return Err(StoreError::Forbidden("role.manage"));
    }
    let (name, perms, level) = check_role(&input)?;
    check_no_escalation(scope, &perms, level)?;
    let mut tx = db.begin().await?;
    let before: Role = Sql::new(&format!("{ROLE_SELECT} WHERE r.id = "))
        .arg(id)
        .fetch_one::<RoleRow, _>(&mut *tx)
        .await?
        .into();
    if before.builtin {
        return Err(StoreError::conflict(
            "id",
            "builtin_role",
            "the built-in administrator role cannot be changed",
        ));
    }
    Sql::new("UPDATE roles SET name = ")
        .arg(&name)
        .push(", permissions = ")
        .arg(serde_json::to_string(&perms).expect("strings serialise"))
        .push(", data_level = ")
        .arg(level.code())
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.unique(&["name"]))?;
    let mut changes = Changes::new();
    changes
        .field("name", &before.name, &name)
        .field("permissions", &before.permissions, &perms)
        .field("data_level", &before.data_level, &level.code().to_string());
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: scope.org_path.as_str(),
            action: "update",
            entity: "role",
            entity_id: Some(id),
            summary: name,
            changes: Some(changes),
        },
    )
    .await?;
    let row: RoleRow = Sql::new(&format!("{ROLE_SELECT} WHERE r.id = "))
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(row.into())
}

pub async fn delete_role(db: &Db, scope: &Scope, id: i64) -> Result<()> {
    if !scope.has("role.manage") {
        return Err(StoreError::Forbidden("role.manage"));
    }
    let mut tx = db.begin().await?;
    let role: Role = Sql::new(&format!("{ROLE_SELECT} WHERE r.id = "))
        .arg(id)
        .fetch_one::<RoleRow, _>(&mut *tx)
        .await?
        .into();
    if role.builtin {
        return Err(StoreError::conflict(
            "id",
            "builtin_role",
            "the built-in administrator role cannot be deleted",
        ));
    }
    if role.assignments > 0 {
        return Err(StoreError::conflict(
            "id",
            "role_in_use",
            format!(
                "{} people hold this role; take it from them first",
                role.assignments
            ),
        ));
    }
    Sql::new("DELETE FROM roles WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    let mut changes = Changes::new();
    changes.field("name", &Some(role.name.clone()), &None);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: scope.org_path.as_str(),
            action: "delete",
            entity: "role",
            entity_id: Some(id),
            summary: role.name,
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(())
}

// ---------------------------------------------------------------- users

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleAssignment {
    pub role_id: i64,
    pub role_name: String,
    pub org_id: i64,
    pub org_name: String,
}

/// A person with an account. Never carries the password or its hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub employee_no: Option<String>,
    pub org_id: i64,
    pub org_name: String,
    pub position: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub manager_id: Option<i64>,
    pub enabled: bool,
    pub locale: String,
    pub has_photo: bool,
    pub roles: Vec<RoleAssignment>,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<i64>,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    name: String,
    employee_no: Option<String>,
    org_id: i64,
    org_name: String,
    org_path: String,
    position: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    manager_id: Option<i64>,
    enabled: i64,
    locale: String,
    has_photo: i64,
    last_login_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    fn into_user(self, roles: Vec<RoleAssignment>) -> User {
        User {
            id: self.id,
            username: self.username,
            name: self.name,
            employee_no: self.employee_no,
            org_id: self.org_id,
            org_name: self.org_name,
            position: self.position,
            phone: self.phone,
            email: self.email,
            manager_id: self.manager_id,
            enabled: self.enabled != 0,
            locale: self.locale,
            has_photo: self.has_photo != 0,
            roles,
            last_login_at: self.last_login_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

const USER_SELECT: &str = "SELECT u.id, u.username, u.name, u.employee_no, u.org_id, o.name AS org_name, o.path AS org_path, u.position, u.phone, u.email, u.manager_id, u.enabled, u.locale, CASE WHEN u.photo IS NULL THEN 0 ELSE 1 END AS has_photo, u.last_login_at, u.created_at, u.updated_at FROM users u JOIN orgs o ON o.id = u.org_id";

async fn assignments_of<'e, E: sqlx::Executor<'e, Database = Any>>(
    ex: E,
    user_ids: &[i64],
) -> Result<Vec<(i64, RoleAssignment)>> {
    if user_ids.is_empty() {
        return Ok(vec![]);
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: i64,
        role_id: i64,
        role_name: String,
        org_id: i64,
        org_name: String,
    }
    let mut sql = Sql::new("SELECT ur.user_id, ur.role_id, r.name AS role_name, ur.org_id, o.name AS org_name FROM user_roles ur JOIN roles r ON r.id = ur.role_id JOIN orgs o ON o.id = ur.org_id WHERE ur.user_id IN (");
    for (i, id) in user_ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(*id);
    }
    sql.push(") ORDER BY ur.user_id, r.name");
    let rows: Vec<Row> = sql.fetch_all(ex).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.user_id,
                RoleAssignment {
                    role_id: r.role_id,
                    role_name: r.role_name,
                    org_id: r.org_id,
                    org_name: r.org_name,
                },
            )
        })
        .collect())
}

async fn user_in(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    permission: &'static str,
    id: i64,
) -> Result<(User, OrgPath)> {
    let mut sql = Sql::new(&format!("{USER_SELECT} WHERE u.id = "));
    sql.arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach(permission));
    let row: UserRow = sql.fetch_one(&mut **tx).await?;
    let path = OrgPath::parse(&row.org_path).expect("stored org paths are well formed");
    let roles = assignments_of(&mut **tx, &[id])
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    Ok((row.into_user(roles), path))
}

pub async fn user(db: &Db, scope: &Scope, id: i64) -> Result<User> {
    if id != scope.user_id && !scope.has("user.view") {
        return Err(StoreError::Forbidden("user.view"));
    }
    let mut tx = db.read().await?;
    let found = if id == scope.user_id {
        // everyone may see his own account
        let row: UserRow = Sql::new(&format!("{USER_SELECT} WHERE u.id = "))
            .arg(id)
            .fetch_one(&mut *tx)
            .await?;
        let roles = assignments_of(&mut *tx, &[id])
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        row.into_user(roles)
    } else {
        user_in(&mut tx, scope, "user.view", id).await?.0
    };
    tx.commit().await?;
    Ok(found)
}

#[derive(Default)]
pub struct UserFilter {
    /// Any part of the name, username or employee no.
    pub q: Option<String>,
    /// Only people in this org's subtree.
    pub org_id: Option<i64>,
    pub enabled: Option<bool>,
}

/// People within the caller's reach, by id, a page at a time.
pub async fn users(
    db: &Db,
    scope: &Scope,
    filter: &UserFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<User>> {
    if !scope.has("user.view") {
        return Err(StoreError::Forbidden("user.view"));
    }
    let mut sql = Sql::new(&format!("{USER_SELECT} WHERE "));
    sql.reach("o.path", &scope.reach("user.view"));
    if let Some(org_id) = filter.org_id {
        only_under(db, &mut sql, &scope.reach("user.view"), org_id).await?;
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let like = format!("%{}%", q.to_lowercase());
        sql.push(" AND (LOWER(u.name) LIKE ")
            .arg(like.clone())
            .push(" OR u.username LIKE ")
            .arg(like.clone())
            .push(" OR LOWER(u.employee_no) LIKE ")
            .arg(like)
            .push(")");
    }
    if let Some(enabled) = filter.enabled {
        sql.push(" AND u.enabled = ").arg(enabled);
    }
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND u.id > ").arg(after);
    }
    sql.push(" ORDER BY u.id LIMIT ").arg(limit + 1);
    let rows: Vec<UserRow> = sql.fetch_all(&db.pool).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut assignments = assignments_of(&db.pool, &ids).await?;
    let users = rows
        .into_iter()
        .map(|r| {
            let mine = assignments
                .iter()
                .filter(|(u, _)| *u == r.id)
                .map(|(_, a)| a.clone())
                .collect();
            assignments.retain(|(u, _)| *u != r.id);
            r.into_user(mine)
        })
        .collect();
    Ok(Page::from_rows(users, limit, |u: &User| u.id.to_string()))
}

pub struct AssignmentInput {
    pub role_id: i64,
    pub org_id: i64,
}

pub struct NewUser {
    pub username: String,
    /// Already hashed (Argon2id), off the async threads.
    pub password_hash: String,
    pub name: String,
    pub employee_no: Option<String>,
    pub org_id: i64,
    pub position: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub manager_id: Option<i64>,
    pub roles: Vec<AssignmentInput>,
}

#[derive(Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub employee_no: Option<Option<String>>,
    pub org_id: Option<i64>,
    pub position: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub manager_id: Option<Option<i64>>,
    pub enabled: Option<bool>,
    pub roles: Option<Vec<AssignmentInput>>,
}

struct CheckedFields {
    employee_no: Option<String>,
    position: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

fn check_fields(
    employee_no: Option<&str>,
    position: Option<&str>,
    phone: Option<&str>,
    email: Option<&str>,
) -> Result<CheckedFields> {
    let employee_no = match employee_no.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => Some(validate::code("employee_no", e, 32)?),
        None => None,
    };
    let phone = validate::optional_text("phone", phone, 32)?;
    if let Some(p) = &phone {
        if !p
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | ' ' | '(' | ')'))
            || p.chars().filter(char::is_ascii_digit).count() < 5
        {
            return Err(Invalid::new(
                "phone",
                "invalid_phone",
                format!("'{p}' is not a phone number"),
            )
            .into());
        }
    }
    let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => Some(validate::email("email", e)?),
        None => None,
    };
    Ok(CheckedFields {
        employee_no,
        position: validate::optional_text("position", position, 50)?,
        phone,
        email,
    })
}

/// Checks that the caller may place a person in `org_id` and give him each role there.
async fn check_placement(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    org_id: i64,
    roles: &[AssignmentInput],
) -> Result<OrgRef> {
    let org = org_by_reach(tx, scope, org_id).await.map_err(|e| match e {
        StoreError::NotFound => Invalid::new(
            "org_id",
            "unknown_org",
            format!("there is no org {org_id} you may add people to"),
        )
        .into(),
        e => e,
    })?;
    let held = scope.permissions();
    for a in roles {
        let role: Option<RoleRow> = Sql::new(&format!("{ROLE_SELECT} WHERE r.id = "))
            .arg(a.role_id)
            .fetch_optional(&mut **tx)
            .await?;
        let role: Role = role
            .ok_or_else(|| {
                Invalid::new(
                    "roles",
                    "unknown_role",
                    format!("there is no role {}", a.role_id),
                )
            })?
            .into();
        org_by_reach(tx, scope, a.org_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Invalid::new(
                    "roles",
                    "unknown_org",
                    format!("there is no org {} you may assign roles at", a.org_id),
                )
                .into(),
                e => e,
            })?;
        if let Some(p) = role.permissions.iter().find(|p| !held.contains(*p)) {
            return Err(Invalid::new(
                "roles",
                "not_held",
                format!(
                    "you cannot give the role '{}': it grants '{p}', which you do not hold",
                    role.name
                ),
            )
            .into());
        }
        let widest = scope.widest_level("user.manage").unwrap_or(DataLevel::Own);
        if DataLevel::parse(&role.data_level).unwrap_or(DataLevel::All) > widest {
            return Err(Invalid::new(
                "roles",
                "not_held",
                format!(
                    "you cannot give the role '{}': its data level is wider than yours",
                    role.name
                ),
            )
            .into());
        }
    }
    Ok(org)
}

/// An org named by id, if enabled and within the caller's reach for managing people.
async fn org_by_reach(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    org_id: i64,
) -> Result<OrgRef> {
    let mut sql = Sql::new("SELECT id, path FROM orgs WHERE id = ");
    sql.arg(org_id)
        .push(" AND enabled = 1 AND ")
        .reach("path", &scope.reach("user.manage"));
    sql.fetch_one(&mut **tx).await
}

#[derive(sqlx::FromRow)]
struct OrgRef {
    id: i64,
    path: String,
}

async fn check_manager(
    tx: &mut Transaction<'static, Any>,
    scope: &Scope,
    manager_id: Option<i64>,
    user_id: Option<i64>,
) -> Result<()> {
    let Some(m) = manager_id else { return Ok(()) };
    if Some(m) == user_id {
        return Err(
            Invalid::new("manager_id", "cycle", "a person cannot be his own manager").into(),
        );
    }
    user_in(tx, scope, "user.view", m)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => StoreError::from(Invalid::new(
                "manager_id",
                "unknown_user",
                format!("there is no person {m} you may name as manager"),
            )),
            e => e,
        })?;
    if let Some(uid) = user_id {
        // the new manager must not be one of the person's own subordinates
        if subordinates(&mut **tx, uid).await?.contains(&m) {
            return Err(Invalid::new(
                "manager_id",
                "cycle",
                "the manager reports to this person already",
            )
            .into());
        }
    }
    Ok(())
}

async fn write_assignments(
    tx: &mut Transaction<'static, Any>,
    user_id: i64,
    roles: &[AssignmentInput],
) -> Result<()> {
    Sql::new("DELETE FROM user_roles WHERE user_id = ")
        .arg(user_id)
        .execute(&mut **tx)
        .await?;
    let mut seen = BTreeSet::new();
    for a in roles {
        if seen.insert((a.role_id, a.org_id)) {
            Sql::new("INSERT INTO user_roles (user_id, role_id, org_id) VALUES (")
                .arg(user_id)
                .push(", ")
                .arg(a.role_id)
                .push(", ")
                .arg(a.org_id)
                .push(")")
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

fn unique_user_fields(e: StoreError) -> StoreError {
    e.unique(&["username", "employee_no"])
}

pub async fn create_user(db: &Db, scope: &Scope, new: NewUser) -> Result<User> {
    if !scope.has("user.manage") {
        return Err(StoreError::Forbidden("user.manage"));
    }
    let username = validate::username(&new.username)?;
    let name = validate::required_text("name", &new.name, 50)?;
    let f = check_fields(
        new.employee_no.as_deref(),
        new.position.as_deref(),
        new.phone.as_deref(),
        new.email.as_deref(),
    )?;
    let mut tx = db.begin().await?;
    let org = check_placement(&mut tx, scope, new.org_id, &new.roles).await?;
    check_manager(&mut tx, scope, new.manager_id, None).await?;
    let now = now_millis();
    let id = Sql::new("INSERT INTO users (username, password_hash, name, employee_no, org_id, position, phone, email, manager_id, enabled, locale, created_at, updated_at) VALUES (")
        .arg(&username)
        .push(", ")
        .arg(new.password_hash)
        .push(", ")
        .arg(&name)
        .push(", ")
        .arg(f.employee_no.clone())
        .push(", ")
        .arg(org.id)
        .push(", ")
        .arg(f.position)
        .push(", ")
        .arg(f.phone)
        .push(", ")
        .arg(f.email)
        .push(", ")
        .arg(new.manager_id)
        .push(", 1, 'zh-CN', ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await
        .map_err(unique_user_fields)?;
    write_assignments(&mut tx, id, &new.roles).await?;
    let mut changes = Changes::new();
    changes
        .set("username", &username)
        .set("name", &name)
        .set("employee_no", &f.employee_no)
        .set("org_id", &org.id);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &org.path,
            action: "create",
            entity: "user",
            entity_id: Some(id),
            summary: format!("{name} ({username})"),
            changes: Some(changes),
        },
    )
    .await?;
    let (user, _) = user_in(&mut tx, scope, "user.manage", id).await?;
    tx.commit().await?;
    // a new subordinate widens his manager's scope
    db.forget_authentications();
    Ok(user)
}

pub async fn update_user(db: &Db, scope: &Scope, id: i64, patch: UserPatch) -> Result<User> {
    if !scope.has("user.manage") {
        return Err(StoreError::Forbidden("user.manage"));
    }
    let mut tx = db.begin().await?;
    let (before, _) = user_in(&mut tx, scope, "user.manage", id).await?;
    let name = patch
        .name
        .as_deref()
        .map(|n| validate::required_text("name", n, 50))
        .transpose()?
        .unwrap_or_else(|| before.name.clone());
    let pick = |p: &Option<Option<String>>, cur: &Option<String>| match p {
        Some(v) => v.clone(),
        None => cur.clone(),
    };
    let f = check_fields(
        pick(&patch.employee_no, &before.employee_no).as_deref(),
        pick(&patch.position, &before.position).as_deref(),
        pick(&patch.phone, &before.phone).as_deref(),
        pick(&patch.email, &before.email).as_deref(),
    )?;
    let org_id = patch.org_id.unwrap_or(before.org_id);
    let roles: Vec<AssignmentInput> = match patch.roles {
        Some(r) => r,
        None => before
            .roles
            .iter()
            .map(|a| AssignmentInput {
                role_id: a.role_id,
                org_id: a.org_id,
            })
            .collect(),
    };
    // when the roles are left alone they are not re-checked: a manager may move a person he could not have created
    let org = check_placement(
        &mut tx,
        scope,
        org_id,
        if patch_roles_changed(&before, &roles) {
            &roles
        } else {
            &[]
        },
    )
    .await?;
    let manager_id = patch.manager_id.unwrap_or(before.manager_id);
    if manager_id != before.manager_id {
        check_manager(&mut tx, scope, manager_id, Some(id)).await?;
    }
    let enabled = patch.enabled.unwrap_or(before.enabled);
    if !enabled && id == scope.user_id {
        return Err(StoreError::conflict(
            "enabled",
            "cannot_disable_self",
            "you cannot disable your own account",
        ));
    }
    Sql::new("UPDATE users SET name = ")
        .arg(&name)
        .push(", employee_no = ")
        .arg(f.employee_no)
        .push(", org_id = ")
        .arg(org.id)
        .push(", position = ")
        .arg(f.position)
        .push(", phone = ")
        .arg(f.phone)
        .push(", email = ")
        .arg(f.email)
        .push(", manager_id = ")
        .arg(manager_id)
        .push(", enabled = ")
        .arg(enabled)
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await
        .map_err(unique_user_fields)?;
    write_assignments(&mut tx, id, &roles).await?;
    if !enabled && before.enabled {
        // a disabled account loses its sessions and tokens at once
        Sql::new("UPDATE tokens SET revoked_at = ")
            .arg(now_millis())
            .push(" WHERE user_id = ")
            .arg(id)
            .push(" AND revoked_at IS NULL")
            .execute(&mut *tx)
            .await?;
    }
    let (after, _) = user_in(&mut tx, scope, "user.manage", id)
        .await
        .or_else(|e| match e {
            // moved out of the caller's own reach: the change stands, the answer shows what was written
            StoreError::NotFound => Ok((before.clone(), OrgPath::root(0))),
            e => Err(e),
        })?;
    let role_names = |u: &User| {
        u.roles
            .iter()
            .map(|a| format!("{}@{}", a.role_name, a.org_name))
            .collect::<Vec<_>>()
    };
    let mut changes = Changes::new();
    changes
        .field("name", &before.name, &name)
        .field("employee_no", &before.employee_no, &after.employee_no)
        .field("org_id", &before.org_id, &org.id)
        .field("position", &before.position, &after.position)
        .field("phone", &before.phone, &after.phone)
        .field("email", &before.email, &after.email)
        .field("manager_id", &before.manager_id, &manager_id)
        .field("enabled", &before.enabled, &enabled)
        .field("roles", &role_names(&before), &role_names(&after));
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &org.path,
            action: "update",
            entity: "user",
            entity_id: Some(id),
            summary: format!("{name} ({})", before.username),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(after)
}

fn patch_roles_changed(before: &User, roles: &[AssignmentInput]) -> bool {
    let old: BTreeSet<(i64, i64)> = before.roles.iter().map(|a| (a.role_id, a.org_id)).collect();
    let new: BTreeSet<(i64, i64)> = roles.iter().map(|a| (a.role_id, a.org_id)).collect();
    old != new
}

/// A manager's password reset, or one's own change (then `scope.user_id == id`).
pub async fn set_password(db: &Db, scope: &Scope, id: i64, password_hash: String) -> Result<()> {
    let mut tx = db.begin().await?;
    let path = if id == scope.user_id {
        scope.org_path.clone()
    } else {
        if !scope.has("user.manage") {
            return Err(StoreError::Forbidden("user.manage"));
        }
        user_in(&mut tx, scope, "user.manage", id).await?.1
    };
    Sql::new("UPDATE users SET password_hash = ")
        .arg(password_hash)
        .push(", failed_logins = 0, locked_until = NULL, updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    // other sessions end: whoever knew the old password is out
    Sql::new("UPDATE tokens SET revoked_at = ")
        .arg(now_millis())
        .push(" WHERE user_id = ")
        .arg(id)
        .push(" AND kind = 'session' AND revoked_at IS NULL")
        .execute(&mut *tx)
        .await?;
    let action = if id == scope.user_id {
        "change_password"
    } else {
        "reset_password"
    };
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action,
            entity: "user",
            entity_id: Some(id),
            summary: String::new(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(())
}

pub async fn set_photo(
    db: &Db,
    scope: &Scope,
    id: i64,
    photo: Option<(Vec<u8>, String)>,
) -> Result<()> {
    if !scope.has("user.manage") {
        return Err(StoreError::Forbidden("user.manage"));
    }
    let mut tx = db.begin().await?;
    let (user, path) = user_in(&mut tx, scope, "user.manage", id).await?;
    let (bytes, kind) = match photo {
        Some((b, k)) => (Some(b), Some(k)),
        None => (None, None),
    };
    let size = bytes.as_ref().map_or(0, |b| b.len() as i64);
    Sql::new("UPDATE users SET photo = ")
        .arg(bytes)
        .push(", photo_type = ")
        .arg(kind)
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    let mut changes = Changes::new();
    changes.field("photo_bytes", &None, &Some(size));
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "update_photo",
            entity: "user",
            entity_id: Some(id),
            summary: user.name,
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The photo and its media type, for whoever may see the person.
pub async fn photo(db: &Db, scope: &Scope, id: i64) -> Result<(Vec<u8>, String)> {
    user(db, scope, id).await?;
    #[derive(sqlx::FromRow)]
    struct P {
        photo: Option<Vec<u8>>,
        photo_type: Option<String>,
    }
    let p: P = Sql::new("SELECT photo, photo_type FROM users WHERE id = ")
        .arg(id)
        .fetch_one(&db.pool)
        .await?;
    match (p.photo, p.photo_type) {
        (Some(b), Some(t)) => Ok((b, t)),
        _ => Err(StoreError::NotFound),
    }
}

pub async fn set_locale(db: &Db, user_id: i64, locale: &str) -> Result<()> {
    Sql::new("UPDATE users SET locale = ")
        .arg(locale)
        .push(" WHERE id = ")
        .arg(user_id)
        .execute(&db.pool)
        .await?;
    db.forget_authentications();
    Ok(())
}

// ---------------------------------------------------------------- sign-in and scope

/// What a login attempt needs to know about an account. Internal: never leaves the server.
#[derive(sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub password_hash: String,
    pub enabled: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
}

pub async fn credentials(db: &Db, username: &str) -> Result<Option<Credentials>> {
    Sql::new("SELECT id, username, name, password_hash, enabled, failed_logins, locked_until FROM users WHERE username = ")
        .arg(username.trim().to_lowercase())
        .fetch_optional(&db.pool)
        .await
}

/// Counts a failure; past the threshold the account is locked for a while. Returns the new count.
pub async fn record_login_failure(db: &Db, user: &Credentials) -> Result<i64> {
    let failures = user.failed_logins + 1;
    let locked_until =
        (failures >= auth::LOCK_AFTER_FAILURES).then(|| now_millis() + auth::LOCK_MINUTES * 60_000);
    let mut tx = db.begin().await?;
    Sql::new("UPDATE users SET failed_logins = ")
        .arg(failures)
        .push(", locked_until = ")
        .arg(locked_until)
        .push(" WHERE id = ")
        .arg(user.id)
        .execute(&mut *tx)
        .await?;
    let path = user_path(&mut tx, user.id).await?;
    let summary = if locked_until.is_some() {
        format!(
            "failed attempt {failures}: account locked for {} minutes",
            auth::LOCK_MINUTES
        )
    } else {
        format!("failed attempt {failures}")
    };
    audit::record(
        &mut *tx,
        Actor {
            user_id: Some(user.id),
            username: &user.username,
        },
        Entry {
            org_path: &path,
            action: "login_failed",
            entity: "user",
            entity_id: Some(user.id),
            summary,
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(failures)
}

pub async fn record_login_success(db: &Db, user: &Credentials) -> Result<()> {
    let mut tx = db.begin().await?;
    Sql::new("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(user.id)
        .execute(&mut *tx)
        .await?;
    let path = user_path(&mut tx, user.id).await?;
    audit::record(
        &mut *tx,
        Actor {
            user_id: Some(user.id),
            username: &user.username,
        },
        Entry {
            org_path: &path,
            action: "login",
            entity: "user",
            entity_id: Some(user.id),
            summary: String::new(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn user_path(tx: &mut Transaction<'static, Any>, user_id: i64) -> Result<String> {
    Ok(
        Sql::new("SELECT o.path FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.id = ")
            .arg(user_id)
            .fetch_one::<(String,), _>(&mut **tx)
            .await?
            .0,
    )
}

async fn subordinates<'e, E: sqlx::Executor<'e, Database = Any>>(
    ex: E,
    user_id: i64,
) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = Sql::new(
        "WITH RECURSIVE sub(id) AS (SELECT id FROM users WHERE manager_id = ",
    )
    .arg(user_id)
    .push(" UNION SELECT u.id FROM users u JOIN sub ON u.manager_id = sub.id) SELECT id FROM sub")
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Who holds this live secret and what he may do. The answer is trusted for a moment
/// ([`Db::forget_authentications`] says how long and when it is dropped sooner).
pub async fn caller(db: &Db, secret: &str) -> Result<Option<(tokens::Holder, Scope)>> {
    let digest = keping_domain::auth::secret_digest(secret);
    if let Some(known) = db.callers.get(&digest) {
        return Ok(Some(known));
    }
    let Some(holder) = tokens::authenticate(db, secret).await? else {
        return Ok(None);
    };
    let scope = scope_of(db, &holder).await?;
    db.callers.put(digest, (holder.clone(), scope.clone()));
    Ok(Some((holder, scope)))
}

/// The caller's scope, computed once per request: his roles at enabled org nodes, and his
/// subordinates when a role needs them.
pub async fn scope_of(db: &Db, holder: &tokens::Holder) -> Result<Scope> {
    #[derive(sqlx::FromRow)]
    struct G {
        path: String,
        permissions: String,
        data_level: String,
    }
    let rows: Vec<G> = Sql::new("SELECT o.path, r.permissions, r.data_level FROM user_roles ur JOIN roles r ON r.id = ur.role_id JOIN orgs o ON o.id = ur.org_id WHERE o.enabled = 1 AND ur.user_id = ")
        .arg(holder.user_id)
        .fetch_all(&db.pool)
        .await?;
    let grants: Vec<Grant> = rows
        .into_iter()
        .filter_map(|g| {
            Some(Grant {
                org_path: OrgPath::parse(&g.path)?,
                level: DataLevel::parse(&g.data_level)?,
                permissions: serde_json::from_str::<BTreeSet<String>>(&g.permissions).ok()?,
            })
        })
        .collect();
    let subordinate_ids = if grants
        .iter()
        .any(|g| g.level == DataLevel::SelfAndSubordinates)
    {
        subordinates(&db.pool, holder.user_id).await?
    } else {
        vec![]
    };
    Ok(Scope {
        user_id: holder.user_id,
        username: holder.username.clone(),
        org_path: OrgPath::parse(&holder.org_path).expect("stored org paths are well formed"),
        subordinate_ids,
        grants,
    })
}

/// The holder of an account by id, for work the system does on someone's behalf (the demo, jobs).
pub async fn holder(db: &Db, user_id: i64) -> Result<tokens::Holder> {
    Sql::new("SELECT u.id AS user_id, u.username, u.name, u.locale, o.path AS org_path FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.id = ").arg(user_id).fetch_one(&db.pool).await
}

// ---------------------------------------------------------------- first start

pub const ADMIN_ROLE: &str = "系统管理员";

/// Makes the root org, the administrator role and the `admin` account if there are none yet.
/// Returns true when the administrator was created now.
/// Creates the first org, the builtin administrator role and the `admin` account on an empty
/// database (answers true then). On an existing one it gives the builtin administrator role every
/// permission of the catalogue it lacks (permissions added by later versions).
pub async fn bootstrap(db: &Db, admin_password_hash: &str) -> Result<bool> {
    let mut tx = db.begin().await?;
    if Sql::new("SELECT COUNT(*) FROM users")
        .fetch_i64(&mut *tx)
        .await?
        > 0
    {
        complete_builtin_roles(&mut tx).await?;
        tx.commit().await?;
        return Ok(false);
    }
    let root: OrgRef = match org::create_first_root(&mut tx, "总部", "HQ").await? {
        Some(r) => OrgRef {
            id: r.id,
            path: r.path,
        },
        None => {
            Sql::new("SELECT id, path FROM orgs WHERE parent_id IS NULL ORDER BY id LIMIT 1")
                .fetch_one(&mut *tx)
                .await?
        }
    };
    let all: Vec<String> = auth::PERMISSIONS
        .iter()
        .map(|p| p.code.to_string())
        .collect();
    let role_id = insert_role(&mut tx, ADMIN_ROLE, &all, DataLevel::All, true).await?;
    let now = now_millis();
    let user_id = Sql::new("INSERT INTO users (username, password_hash, name, org_id, enabled, locale, created_at, updated_at) VALUES ('admin', ")
        .arg(admin_password_hash)
        .push(", '系统管理员', ")
        .arg(root.id)
        .push(", 1, 'zh-CN', ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
    write_assignments(
        &mut tx,
        user_id,
        &[AssignmentInput {
            role_id,
            org_id: root.id,
        }],
    )
    .await?;
    audit::record(
        &mut *tx,
        Actor {
            user_id: None,
            username: "system",
        },
        Entry {
            org_path: &root.path,
            action: "create",
            entity: "user",
            entity_id: Some(user_id),
            summary: "administrator admin created on first start".into(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    db.forget_authentications();
    Ok(true)
}

/// The builtin (administrator) roles hold the whole permission catalogue: permissions a later
/// version added are given to them on start, and the change is audited.
async fn complete_builtin_roles(tx: &mut Transaction<'static, Any>) -> Result<()> {
    let roles: Vec<(i64, String, String)> =
        Sql::new("SELECT id, name, permissions FROM roles WHERE builtin = 1 ORDER BY id")
            .fetch_all(&mut **tx)
            .await?;
    for (id, name, permissions) in roles {
        let mut held: Vec<String> = serde_json::from_str(&permissions).unwrap_or_default();
        let missing: Vec<String> = auth::PERMISSIONS
            .iter()
            .map(|p| p.code.to_string())
            .filter(|code| !held.contains(code))
            .collect();
        if missing.is_empty() {
            continue;
        }
        held.extend(missing.iter().cloned());
        Sql::new("UPDATE roles SET permissions = ")
            .arg(serde_json::to_string(&held).expect("strings serialise"))
            .push(", updated_at = ")
            .arg(now_millis())
            .push(" WHERE id = ")
            .arg(id)
            .execute(&mut **tx)
            .await?;
        let (root_path,): (String,) =
            Sql::new("SELECT path FROM orgs WHERE parent_id IS NULL ORDER BY id LIMIT 1")
                .fetch_one(&mut **tx)
                .await?;
        let mut changes = Changes::new();
        changes.set("added_permissions", &missing);
        audit::record(
            &mut **tx,
            Actor {
                user_id: None,
                username: "system",
            },
            Entry {
                org_path: &root_path,
                action: "update",
                entity: "role",
                entity_id: Some(id),
                summary: format!("{name}: new permissions {}", missing.join(", ")),
                changes: Some(changes),
            },
        )
        .await?;
    }
    Ok(())
}

/// Sets the administrator's password (the `keping admin` command), creating the account if needed.
pub async fn reset_admin(db: &Db, username: &str, password_hash: &str) -> Result<bool> {
    if bootstrap(db, password_hash).await? && username == "admin" {
        return Ok(true);
    }
    let mut tx = db.begin().await?;
    let existing = Sql::new("SELECT id FROM users WHERE username = ")
        .arg(username)
        .fetch_optional::<(i64,), _>(&mut *tx)
        .await?;
    let (role_id,) = Sql::new("SELECT id FROM roles WHERE builtin = 1 ORDER BY id LIMIT 1")
        .fetch_one::<(i64,), _>(&mut *tx)
        .await?;
    let (root_id, root_path) =
        Sql::new("SELECT id, path FROM orgs WHERE parent_id IS NULL ORDER BY id LIMIT 1")
            .fetch_one::<(i64, String), _>(&mut *tx)
            .await?;
    let now = now_millis();
    let (id, created) = match existing {
        Some((id,)) => {
            Sql::new("UPDATE users SET password_hash = ")
                .arg(password_hash)
                .push(", enabled = 1, failed_logins = 0, locked_until = NULL, updated_at = ")
                .arg(now)
                .push(" WHERE id = ")
                .arg(id)
                .execute(&mut *tx)
                .await?;
            (id, false)
        }
        None => {
            let id = Sql::new("INSERT INTO users (username, password_hash, name, org_id, enabled, locale, created_at, updated_at) VALUES (")
                .arg(username)
                .push(", ")
                .arg(password_hash)
                .push(", '系统管理员', ")
                .arg(root_id)
                .push(", 1, 'zh-CN', ")
                .arg(now)
                .push(", ")
                .arg(now)
                .push(") RETURNING id")
                .fetch_i64(&mut *tx)
                .await
                .map_err(unique_user_fields)?;
            (id, true)
        }
    };
    Sql::new("DELETE FROM user_roles WHERE user_id = ")
        .arg(id)
        .push(" AND role_id = ")
        .arg(role_id)
        .execute(&mut *tx)
        .await?;
    Sql::new("INSERT INTO user_roles (user_id, role_id, org_id) VALUES (")
        .arg(id)
        .push(", ")
        .arg(role_id)
        .push(", ")
        .arg(root_id)
        .push(")")
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        Actor {
            user_id: None,
            username: "system",
        },
        Entry {
            org_path: &root_path,
            action: "reset_admin",
            entity: "user",
            entity_id: Some(id),
            summary: format!("administrator {username} reset from the command line"),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}
