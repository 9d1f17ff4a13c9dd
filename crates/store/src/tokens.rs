//! Sessions and personal API tokens. Only a digest of each secret is stored.

use crate::audit::{self, Changes, Entry};
use crate::{Db, Result, Sql, StoreError};
use keping_domain::auth::{new_secret, secret_digest};
use keping_domain::now_millis;
use keping_domain::scope::Scope;
use keping_domain::validate;
use serde::Serialize;
use utoipa::ToSchema;

pub const SESSION_DAYS: i64 = 7;
const DAY_MS: i64 = 86_400_000;
/// `last_used_at` is refreshed at most this often, so reads do not turn into writes.
const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Token {
    pub id: i64,
    /// session or personal
    pub kind: String,
    pub name: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    kind: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<TokenRow> for Token {
    fn from(r: TokenRow) -> Token {
        Token {
            id: r.id,
            kind: r.kind,
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked: r.revoked_at.is_some(),
        }
    }
}

async fn insert(
    db: &Db,
    user_id: i64,
    kind: &str,
    name: &str,
    expires_at: Option<i64>,
) -> Result<(i64, String)> {
    let secret = new_secret(if kind == "session" { "kps" } else { "kpt" });
    let id = Sql::new(
        "INSERT INTO tokens (user_id, kind, name, digest, created_at, expires_at) VALUES (",
    )
    .arg(user_id)
    .push(", ")
    .arg(kind)
    .push(", ")
    .arg(name)
    .push(", ")
    .arg(secret_digest(&secret))
    .push(", ")
    .arg(now_millis())
    .push(", ")
    .arg(expires_at)
    .push(") RETURNING id")
    .fetch_i64(&db.pool)
    .await?;
    Ok((id, secret))
}

/// A login's session: for a browser's cookie or an API client's bearer.
pub async fn create_session(db: &Db, user_id: i64, client: &str) -> Result<String> {
    Ok(insert(
        db,
        user_id,
        "session",
        client,
        Some(now_millis() + SESSION_DAYS * DAY_MS),
    )
    .await?
    .1)
}

/// A personal token for scripts and integrations; its secret is shown once.
pub async fn create_personal(
    db: &Db,
    scope: &Scope,
    name: &str,
    expires_in_days: Option<i64>,
) -> Result<(Token, String)> {
    let name = validate::required_text("name", name, 100)?;
    if let Some(d) = expires_in_days {
        if !(1..=3650).contains(&d) {
            return Err(validate::Invalid::new(
                "expires_in_days",
                "out_of_range",
                "expires_in_days must be between 1 and 3650",
            )
            .into());
        }
    }
    let (id, secret) = insert(
        db,
        scope.user_id,
        "personal",
        &name,
        expires_in_days.map(|d| now_millis() + d * DAY_MS),
    )
    .await?;
    let mut changes = Changes::new();
    changes.set("name", &name);
    audit::record(
        &db.pool,
        scope.into(),
        Entry {
            org_path: scope.org_path.as_str(),
            action: "create",
            entity: "token",
            entity_id: Some(id),
            summary: name,
            changes: Some(changes),
        },
    )
    .await?;
    let row: TokenRow = Sql::new("SELECT id, kind, name, created_at, last_used_at, expires_at, revoked_at FROM tokens WHERE id = ").arg(id).fetch_one(&db.pool).await?;
    Ok((row.into(), secret))
}

/// The caller's own tokens and sessions, newest first.
pub async fn list(db: &Db, scope: &Scope) -> Result<Vec<Token>> {
    let rows: Vec<TokenRow> = Sql::new("SELECT id, kind, name, created_at, last_used_at, expires_at, revoked_at FROM tokens WHERE user_id = ")
        .arg(scope.user_id)
        .push(" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ")
        .arg(now_millis())
        .push(") ORDER BY id DESC LIMIT 200")
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(Token::from).collect())
}

/// Revokes one of the caller's own tokens; another person's token is not found.
pub async fn revoke(db: &Db, scope: &Scope, id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let n = Sql::new("UPDATE tokens SET revoked_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .push(" AND user_id = ")
        .arg(scope.user_id)
        .push(" AND revoked_at IS NULL")
        .execute(&mut *tx)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: scope.org_path.as_str(),
            action: "revoke",
            entity: "token",
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

/// Ends the session that carries this secret (logout).
pub async fn revoke_secret(db: &Db, secret: &str) -> Result<()> {
    Sql::new("UPDATE tokens SET revoked_at = ")
        .arg(now_millis())
        .push(" WHERE digest = ")
        .arg(secret_digest(secret))
        .push(" AND revoked_at IS NULL")
        .execute(&db.pool)
        .await?;
    db.forget_authentications();
    Ok(())
}

/// The holder of a live secret, as one query finds him.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Holder {
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub locale: String,
    pub org_path: String,
}

/// Who holds this secret, if it is live and the account enabled.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<Holder>> {
    #[derive(sqlx::FromRow)]
    struct Live {
        id: i64,
        last_used_at: Option<i64>,
        #[sqlx(flatten)]
        holder: Holder,
    }
    let now = now_millis();
    let live: Option<Live> = Sql::new(
        "SELECT t.id, t.last_used_at, t.user_id, u.username, u.name, u.locale, o.path AS org_path FROM tokens t JOIN users u ON u.id = t.user_id JOIN orgs o ON o.id = u.org_id WHERE t.digest = ",
    )
    .arg(secret_digest(secret))
    .push(" AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ")
    .arg(now)
    .push(") AND u.enabled = 1")
    .fetch_optional(&db.pool)
    .await?;
    let Some(live) = live else { return Ok(None) };
    if live.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY_MS) {
        Sql::new("UPDATE tokens SET last_used_at = ")
            .arg(now)
            .push(" WHERE id = ")
            .arg(live.id)
            .execute(&db.pool)
            .await?;
    }
    Ok(Some(live.holder))
}
