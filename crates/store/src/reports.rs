//! Scheduled reports (定期报表): per org, daily / weekly / monthly evaluation reports sent through
//! the outbox. Each schedule records the last period it sent; the scheduler claims a period by
//! moving that mark and queues the deliveries in the same transaction, so a period goes out once
//! per schedule, across restarts and instances.

use crate::audit::{self, Changes, Entry};
use crate::stats::{self, StatsQuery};
use crate::{accounts, notify, Db, Result, Sql, StoreError};
use base64::Engine;
use keping_domain::notify::{Attachment, Channel, Notice};
use keping_domain::reports::{last_closed, percent, Frequency, Period, ScheduleInput};
use keping_domain::scope::Scope;
use keping_domain::stats::GroupBy;
use keping_domain::{now_millis, Millis};
use serde::Serialize;
use utoipa::ToSchema;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Schedule {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    /// daily, weekly or monthly
    pub frequency: String,
    /// Where the report goes, in the format of alert channels.
    #[schema(value_type = Vec<Object>)]
    pub channels: Vec<Channel>,
    pub enabled: bool,
    /// The last period sent (or already closed when the schedule was made): `2026-11-21`,
    /// `2026-W47` or `2026-10`.
    pub last_period: String,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sent_at: Option<i64>,
    pub created_by: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    org_id: i64,
    org_name: String,
    org_path: String,
    timezone: String,
    frequency: String,
    channels: String,
    enabled: i64,
    last_period: String,
    last_sent_at: Option<i64>,
    created_by: i64,
}

impl Row {
    fn schedule(&self) -> Schedule {
        Schedule {
            id: self.id,
            org_id: self.org_id,
            org_name: self.org_name.clone(),
            frequency: self.frequency.clone(),
            channels: serde_json::from_str(&self.channels).unwrap_or_default(),
            enabled: self.enabled != 0,
            last_period: self.last_period.clone(),
            last_sent_at: self.last_sent_at,
            created_by: self.created_by,
        }
    }

    fn frequency(&self) -> Frequency {
        Frequency::parse("frequency", &self.frequency).unwrap_or(Frequency::Daily)
    }
}

const SELECT: &str = "SELECT s.id, s.org_id, o.name AS org_name, o.path AS org_path, o.timezone, s.frequency, s.channels, s.enabled, s.last_period, s.last_sent_at, s.created_by FROM report_schedules s JOIN orgs o ON o.id = s.org_id";

fn need(scope: &Scope) -> Result<()> {
    for p in ["settings.manage", "stats.export"] {
        if !scope.has(p) {
            return Err(StoreError::Forbidden(if p == "settings.manage" {
                "settings.manage"
            } else {
                "stats.export"
            }));
        }
    }
    Ok(())
}

/// The schedules of orgs in the caller's subtree, by org and id.
pub async fn list(db: &Db, scope: &Scope) -> Result<Vec<Schedule>> {
    need(scope)?;
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE ")
        .reach("o.path", &scope.reach("settings.manage"))
        .push(" ORDER BY o.path, s.id");
    let rows: Vec<Row> = sql.fetch_all(&db.pool).await?;
    Ok(rows.iter().map(Row::schedule).collect())
}

async fn one(db: &Db, scope: &Scope, id: i64) -> Result<Row> {
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE s.id = ")
        .arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach("settings.manage"));
    sql.fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)
}

pub async fn get(db: &Db, scope: &Scope, id: i64) -> Result<Schedule> {
    need(scope)?;
    Ok(one(db, scope, id).await?.schedule())
}

/// A new schedule. Its first report is the next period to close: periods already closed are not
/// sent after the fact.
pub async fn create(db: &Db, scope: &Scope, input: &ScheduleInput) -> Result<Schedule> {
    need(scope)?;
    input.validate()?;
    let (path, _, timezone) =
        stats::org_in_reach(db, scope, "settings.manage", input.org_id).await?;
    let now = now_millis();
    let first = last_closed(input.frequency, &timezone, now);
    let mut tx = db.begin().await?;
    let (id,): (i64,) = Sql::new("INSERT INTO report_schedules (org_id, frequency, channels, enabled, created_by, last_period, created_at, updated_at) VALUES (")
        .arg(input.org_id)
        .push(", ")
        .arg(input.frequency.code())
        .push(", ")
        .arg(serde_json::to_string(&input.channels).expect("channels serialise"))
        .push(", ")
        .arg(i64::from(input.enabled))
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(first.key.as_str())
        .push(", ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_one(&mut *tx)
        .await?;
    let mut changes = Changes::new();
    changes.field("schedule", &None::<ScheduleInput>, &Some(input.clone()));
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "create",
            entity: "report_schedule",
            entity_id: Some(id),
            summary: input.frequency.code().to_string(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, scope, id).await
}

/// Changes a schedule (its org stays). A new frequency starts with the next period to close.
pub async fn update(db: &Db, scope: &Scope, id: i64, input: &ScheduleInput) -> Result<Schedule> {
    need(scope)?;
    input.validate()?;
    let row = one(db, scope, id).await?;
    if row.org_id != input.org_id {
        return Err(StoreError::Invalid(keping_domain::Invalid::new(
            "org_id",
            "immutable",
            "a schedule stays with its org; make a new one for another org",
        )));
    }
    let last = if row.frequency() == input.frequency {
        row.last_period.clone()
    } else {
        last_closed(input.frequency, &row.timezone, now_millis()).key
    };
    let mut tx = db.begin().await?;
    Sql::new("UPDATE report_schedules SET frequency = ")
        .arg(input.frequency.code())
        .push(", channels = ")
        .arg(serde_json::to_string(&input.channels).expect("channels serialise"))
        .push(", enabled = ")
        .arg(i64::from(input.enabled))
        .push(", last_period = ")
        .arg(last)
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    let before = ScheduleInput {
        org_id: row.org_id,
        frequency: row.frequency(),
        channels: serde_json::from_str(&row.channels).unwrap_or_default(),
        enabled: row.enabled != 0,
    };
    let mut changes = Changes::new();
    changes.field("schedule", &before, input);
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &row.org_path,
            action: "update",
            entity: "report_schedule",
            entity_id: Some(id),
            summary: input.frequency.code().to_string(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    get(db, scope, id).await
}

pub async fn delete(db: &Db, scope: &Scope, id: i64) -> Result<()> {
    need(scope)?;
    let row = one(db, scope, id).await?;
    let mut tx = db.begin().await?;
    Sql::new("DELETE FROM report_schedules WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &row.org_path,
            action: "delete",
            entity: "report_schedule",
            entity_id: Some(id),
            summary: row.frequency.clone(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One report sent by [`run_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub schedule_id: i64,
    pub period: String,
    pub deliveries: usize,
}

/// The report for one period as a notice: the totals and the previous period in words, a link
/// to the statistics, and (for e-mail) the workbook by outlet.
async fn build(
    db: &Db,
    scope: &Scope,
    row: &Row,
    period: &Period,
    base_url: &str,
) -> Result<Notice> {
    let q = StatsQuery {
        org_id: row.org_id,
        from: period.from,
        to: period.to,
        group_by: GroupBy::Outlet,
        compare: true,
        window_id: None,
        staff_id: None,
    };
    let answer = stats::evaluation(db, scope, &q).await?;
    let (_, xlsx) = stats::export_xlsx(db, scope, &q).await?;
    let t = &answer.total;
    let range = if period.from == period.to {
        period.from.to_string()
    } else {
        format!("{} 至 {}", period.from, period.to)
    };
    let mut text = format!(
        "{org} {name}（{range}）\n客流量 {services}，参评 {rated}，参评率 {rr}\n评价 {ratings} 次：满意 {pos}，一般 {neu}，不满意 {neg}；满意率 {sr}",
        org = row.org_name,
        name = row.frequency().name_zh(),
        services = t.services,
        rated = t.rated,
        rr = percent(t.rating_rate),
        ratings = t.ratings,
        pos = t.positive,
        neu = t.neutral,
        neg = t.negative,
        sr = percent(t.satisfaction_rate),
    );
    if let Some(c) = &answer.compare {
        let p = &c.previous.total;
        text.push_str(&format!(
            "\n上期（{} 至 {}）：评价 {} 次，满意率 {}",
            c.previous.from,
            c.previous.to,
            p.ratings,
            percent(p.satisfaction_rate)
        ));
    }
    let mut outlets: Vec<_> = answer.rows.iter().filter(|r| r.negative > 0).collect();
    outlets.sort_by(|a, b| b.negative.cmp(&a.negative).then(a.label.cmp(&b.label)));
    if !outlets.is_empty() {
        text.push_str("\n不满意最多的网点：");
        text.push_str(
            &outlets
                .iter()
                .take(3)
                .map(|r| format!("{} {} 次", r.label, r.negative))
                .collect::<Vec<_>>()
                .join("，"),
        );
    }
    Ok(Notice {
        kind: "report".into(),
        subject: format!(
            "{} {} {}",
            row.org_name,
            row.frequency().name_zh(),
            period.key
        ),
        text,
        link: Some(format!(
            "{}/stats?org_id={}&period=custom&from={}&to={}&group_by=outlet",
            base_url.trim_end_matches('/'),
            row.org_id,
            period.from,
            period.to
        )),
        attachment: Some(Attachment {
            filename: format!("keping-report-{}-{}.xlsx", row.org_id, period.key),
            content_type: XLSX.into(),
            base64: base64::engine::general_purpose::STANDARD.encode(xlsx),
        }),
    })
}

/// The scheduler's round at `now`: every enabled schedule whose latest closed period (in its
/// org's time zone) is not the one it last sent builds that report with its creator's scope and
/// queues it. A schedule whose creator lost the rights is skipped with a warning (and tried again
/// next round). Returns what was queued.
pub async fn run_due(db: &Db, now: Millis, base_url: &str) -> Result<Vec<Sent>> {
    let rows: Vec<Row> = Sql::new(SELECT)
        .push(" WHERE s.enabled = 1 AND o.enabled = 1 ORDER BY s.id")
        .fetch_all(&db.pool)
        .await?;
    let mut sent = Vec::new();
    for row in rows {
        let period = last_closed(row.frequency(), &row.timezone, now);
        // keys of one frequency sort like their periods: only a later period is sent (a clock
        // set back sends nothing again)
        if period.key <= row.last_period {
            continue;
        }
        let notice = match async {
            let holder = accounts::holder(db, row.created_by).await?;
            let scope = accounts::scope_of(db, &holder).await?;
            build(db, &scope, &row, &period, base_url).await
        }
        .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(schedule = row.id, period = %period.key, error = %e, "cannot build a scheduled report");
                continue;
            }
        };
        let channels: Vec<Channel> = serde_json::from_str(&row.channels).unwrap_or_default();
        let mut tx = db.begin().await?;
        // the claim: only the instance that moves the mark from what it read queues the report
        let claimed = Sql::new("UPDATE report_schedules SET last_period = ")
            .arg(period.key.as_str())
            .push(", last_sent_at = ")
            .arg(now)
            .push(" WHERE id = ")
            .arg(row.id)
            .push(" AND last_period = ")
            .arg(row.last_period.as_str())
            .execute(&mut *tx)
            .await?;
        if claimed != 1 {
            continue;
        }
        let n = notify::enqueue_notice(&mut tx, row.org_id, &channels, &notice).await?;
        tx.commit().await?;
        sent.push(Sent {
            schedule_id: row.id,
            period: period.key,
            deliveries: n,
        });
    }
    Ok(sent)
}
