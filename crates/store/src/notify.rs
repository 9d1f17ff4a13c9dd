//! Notifications: alert settings per org, and the outbox that makes every alert leave exactly once
//! per channel, surviving failures and restarts.

use crate::audit::{self, Changes, Entry};
use crate::db::id_cursor;
use crate::{settings, Backend, Db, Page, Result, Sql, StoreError};
use keping_domain::notify::{
    backoff_seconds, AlertSettings, Channel, NegativeAlert, Notice, MAX_ATTEMPTS,
};
use keping_domain::org::OrgPath;
use keping_domain::scope::Scope;
use keping_domain::{now_millis, Millis};
use serde::Serialize;
use sqlx::{Any, Transaction};
use utoipa::ToSchema;

const ALERTS: &str = "alerts";
/// A claimed delivery not finished within this time is claimed again (the sender died).
const LEASE_MS: Millis = 60_000;

pub async fn alert_settings_for<'e, E: sqlx::Executor<'e, Database = Any>>(
    ex: E,
    path: &OrgPath,
) -> Result<AlertSettings> {
    Ok(alert_settings_for_each(ex, std::slice::from_ref(path))
        .await?
        .pop()
        .unwrap_or_default())
}

/// [`alert_settings_for`] for each of `paths`, in one query.
pub async fn alert_settings_for_each<'e, E: sqlx::Executor<'e, Database = Any>>(
    ex: E,
    paths: &[OrgPath],
) -> Result<Vec<AlertSettings>> {
    Ok(settings::nearest_each(ex, paths, ALERTS)
        .await?
        .into_iter()
        .map(|s| s.map(|(_, s)| s).unwrap_or_default())
        .collect())
}

async fn org_path(
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

pub async fn alert_settings(db: &Db, scope: &Scope, org_id: i64) -> Result<AlertSettings> {
    if !scope.has("settings.manage") {
        return Err(StoreError::Forbidden("settings.manage"));
    }
    let mut tx = db.read().await?;
    let path = org_path(&mut tx, scope, "settings.manage", org_id).await?;
    let s = alert_settings_for(&mut *tx, &path).await?;
    tx.commit().await?;
    Ok(s)
}

pub async fn put_alert_settings(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    alerts: &AlertSettings,
) -> Result<AlertSettings> {
    if !scope.has("settings.manage") {
        return Err(StoreError::Forbidden("settings.manage"));
    }
    alerts.validate()?;
    let mut tx = db.begin().await?;
    let path = org_path(&mut tx, scope, "settings.manage", org_id).await?;
    let before = alert_settings_for(&mut *tx, &path).await?;
    settings::put(&mut tx, org_id, ALERTS, alerts).await?;
    let mut changes = Changes::new();
    changes.field("alert_settings", &before, alerts);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "update",
            entity: "alert_settings",
            entity_id: Some(org_id),
            summary: String::new(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(alerts.clone())
}

fn channel_kind(c: &Channel) -> &'static str {
    match c {
        Channel::Webhook { .. } => "webhook",
        Channel::Dingtalk { .. } => "dingtalk",
        Channel::Wecom { .. } => "wecom",
        Channel::Feishu { .. } => "feishu",
        Channel::Email { .. } => "email",
        Channel::Sms { .. } => "sms",
    }
}

/// Queues a negative-rating alert for every channel in force at the org, in the caller's
/// transaction: the alert exists exactly when the rating does. Returns how many were queued.
pub(crate) async fn enqueue_negative(
    tx: &mut Transaction<'_, Any>,
    org_id: i64,
    channels: &[Channel],
    alert: &NegativeAlert,
) -> Result<usize> {
    let now = now_millis();
    for c in channels {
        Sql::new("INSERT INTO outbox (org_id, topic, channel, target, payload, status, attempts, next_attempt_at, created_at) VALUES (")
            .arg(org_id)
            .push(", 'negative_rating', ")
            .arg(channel_kind(c))
            .push(", ")
            .arg(serde_json::to_string(c).expect("channels serialise"))
            .push(", ")
            .arg(serde_json::to_string(alert).expect("alerts serialise"))
            .push(", 'pending', 0, ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(")")
            .execute(&mut **tx)
            .await?;
    }
    Ok(channels.len())
}

/// Queues a notice (a report, a warning, a digest) for each of `channels`, in the caller's
/// transaction, under the notice's kind. Returns how many were queued.
pub(crate) async fn enqueue_notice(
    tx: &mut Transaction<'static, Any>,
    org_id: i64,
    channels: &[Channel],
    notice: &Notice,
) -> Result<usize> {
    let now = now_millis();
    let payload = serde_json::to_string(notice).expect("notices serialise");
    for c in channels {
        Sql::new("INSERT INTO outbox (org_id, topic, channel, target, payload, status, attempts, next_attempt_at, created_at) VALUES (")
            .arg(org_id)
            .push(", ")
            .arg(notice.kind.as_str())
            .push(", ")
            .arg(channel_kind(c))
            .push(", ")
            .arg(serde_json::to_string(c).expect("channels serialise"))
            .push(", ")
            .arg(payload.as_str())
            .push(", 'pending', 0, ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(")")
            .execute(&mut **tx)
            .await?;
    }
    Ok(channels.len())
}

/// The outbox topic of negative-rating alerts; every other topic carries a [`Notice`].
pub const NEGATIVE_RATING: &str = "negative_rating";

/// A delivery taken for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub topic: String,
    pub target: String,
    pub payload: String,
    pub attempts: i64,
}

impl Claimed {
    pub fn channel(&self) -> Option<Channel> {
        serde_json::from_str(&self.target).ok()
    }

    pub fn alert(&self) -> Option<NegativeAlert> {
        serde_json::from_str(&self.payload).ok()
    }

    /// The notice of any topic but negative alerts.
    pub fn notice(&self) -> Option<Notice> {
        (self.topic != NEGATIVE_RATING)
            .then(|| serde_json::from_str(&self.payload).ok())
            .flatten()
    }
}

/// Takes up to `limit` due deliveries, leasing them so no other worker (or instance) sends them
/// meanwhile; a lease that runs out (the sender died) makes them due again.
pub async fn claim(db: &Db, limit: i64) -> Result<Vec<Claimed>> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(
        "SELECT id FROM outbox WHERE status IN ('pending', 'sending') AND next_attempt_at <= ",
    );
    sql.arg(now)
        .push(" ORDER BY next_attempt_at, id LIMIT ")
        .arg(limit);
    if db.backend == Backend::Postgres {
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    let ids: Vec<(i64,)> = sql.fetch_all(&mut *tx).await?;
    let mut claimed = Vec::with_capacity(ids.len());
    for (id,) in ids {
        let row: Claimed = Sql::new("UPDATE outbox SET status = 'sending', next_attempt_at = ")
            .arg(now + LEASE_MS)
            .push(" WHERE id = ")
            .arg(id)
            .push(" RETURNING id, topic, target, payload, attempts")
            .fetch_one(&mut *tx)
            .await?;
        claimed.push(row);
    }
    tx.commit().await?;
    Ok(claimed)
}

pub async fn delivered(db: &Db, id: i64) -> Result<()> {
    let now = now_millis();
    Sql::new("UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ")
        .arg(now)
        .push(", last_error = NULL WHERE id = ")
        .arg(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Records a failed attempt: retried after a growing pause, given up after the last attempt.
pub async fn failed(db: &Db, item: &Claimed, error: &str) -> Result<()> {
    let attempts = item.attempts + 1;
    let status = if attempts >= MAX_ATTEMPTS {
        "failed"
    } else {
        "pending"
    };
    let error: String = error.chars().take(500).collect();
    Sql::new("UPDATE outbox SET status = ")
        .arg(status)
        .push(", attempts = ")
        .arg(attempts)
        .push(", next_attempt_at = ")
        .arg(now_millis() + backoff_seconds(attempts) * 1000)
        .push(", last_error = ")
        .arg(error)
        .push(" WHERE id = ")
        .arg(item.id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    pub topic: String,
    /// webhook, dingtalk, wecom, feishu, email or sms
    pub channel: String,
    /// pending, sending, delivered or failed
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<i64>,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: i64,
}

/// Deliveries of the caller's subtree, newest first, for those who set alerts up.
pub async fn deliveries(
    db: &Db,
    scope: &Scope,
    status: Option<&str>,
    kind: Option<&str>,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<Delivery>> {
    if !scope.has("settings.manage") {
        return Err(StoreError::Forbidden("settings.manage"));
    }
    let mut sql = Sql::new("SELECT x.id, x.org_id, o.name AS org_name, x.topic, x.channel, x.status, x.attempts, x.last_error, x.created_at, x.delivered_at, x.next_attempt_at FROM outbox x JOIN orgs o ON o.id = x.org_id WHERE ");
    sql.reach("o.path", &scope.reach("settings.manage"));
    if let Some(s) = status.filter(|s| !s.is_empty()) {
        sql.push(" AND x.status = ").arg(s);
    }
    if let Some(k) = kind.filter(|s| !s.is_empty()) {
        sql.push(" AND x.topic = ").arg(k);
    }
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND x.id < ").arg(after);
    }
    sql.push(" ORDER BY x.id DESC LIMIT ").arg(limit + 1);
    let rows: Vec<Delivery> = sql.fetch_all(&db.pool).await?;
    Ok(Page::from_rows(rows, limit, |d| d.id.to_string()))
}

/// The kinds of delivery the caller's subtree has seen, for the filter.
pub async fn delivery_kinds(db: &Db, scope: &Scope) -> Result<Vec<String>> {
    if !scope.has("settings.manage") {
        return Err(StoreError::Forbidden("settings.manage"));
    }
    let mut sql =
        Sql::new("SELECT DISTINCT x.topic FROM outbox x JOIN orgs o ON o.id = x.org_id WHERE ");
    sql.reach("o.path", &scope.reach("settings.manage"))
        .push(" ORDER BY x.topic");
    let rows: Vec<(String,)> = sql.fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(|(k,)| k).collect())
}

/// "Retry now": a failed delivery in the caller's subtree is due again at once, with one more
/// attempt before it is given up again. Deliveries not failed answer a conflict; ids outside the
/// subtree are not found. Recorded in the audit log.
pub async fn retry(db: &Db, scope: &Scope, id: i64) -> Result<()> {
    if !scope.has("settings.manage") {
        return Err(StoreError::Forbidden("settings.manage"));
    }
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(
        "SELECT x.status, o.path FROM outbox x JOIN orgs o ON o.id = x.org_id WHERE x.id = ",
    );
    sql.arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach("settings.manage"));
    let (status, path): (String, String) = sql
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    if status != "failed" {
        return Err(StoreError::conflict(
            "status",
            "not_failed",
            format!("only failed deliveries can be retried; this one is {status}"),
        ));
    }
    // attempts stay as they are: the next failure gives it up again
    Sql::new("UPDATE outbox SET status = 'pending', next_attempt_at = ")
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
            action: "retry",
            entity: "delivery",
            entity_id: Some(id),
            summary: String::new(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
