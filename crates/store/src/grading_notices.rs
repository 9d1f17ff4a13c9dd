//! Monthly grading on schedule: per configured org, a run of its model when a month closes (in
//! the org's time zone), then downgrade and churn warnings through the outbox. Each month runs
//! once per schedule: the schedule's mark is moved before the run and put back if the run fails.

use crate::audit::{self, Entry};
use crate::grading::{self, RunRequest};
use crate::{accounts, notify, require, stats, Db, Result, Sql, StoreError};
use keping_domain::notify::{Channel, Notice};
use keping_domain::reports::{churn_reasons, last_closed, Frequency};
use keping_domain::scope::Scope;
use keping_domain::{now_millis, Invalid, Millis};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct GradingScheduleInput {
    pub org_id: i64,
    pub model_id: i64,
    #[schema(value_type = Vec<Object>)]
    pub channels: Vec<Channel>,
    /// Warn of customers with no order for this many days (default 90).
    #[serde(default = "ninety")]
    pub idle_days: i64,
}

fn ninety() -> i64 {
    90
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct GradingSchedule {
    pub id: i64,
    pub org_id: i64,
    pub model_id: i64,
    #[serde(skip)]
    pub channels: String,
    pub idle_days: i64,
    pub last_period: String,
    pub last_run_id: Option<i64>,
    pub org_name: String,
    pub model_name: String,
    #[serde(skip)]
    pub created_by: i64,
    #[serde(skip)]
    pub org_path: String,
    #[serde(skip)]
    pub timezone: String,
}

const SELECT: &str = "SELECT g.id, g.org_id, g.model_id, g.channels, g.idle_days, g.last_period, g.last_run_id, o.name AS org_name, m.name AS model_name, g.created_by, o.path AS org_path, o.timezone FROM grading_schedules g JOIN orgs o ON o.id = g.org_id JOIN scoring_models m ON m.id = g.model_id";

/// A monthly grading schedule for an org in the caller's grading reach; the first run is for the
/// month that closes next.
pub async fn create(
    db: &Db,
    scope: &Scope,
    input: &GradingScheduleInput,
) -> Result<GradingSchedule> {
    keping_domain::reports::ScheduleInput {
        org_id: input.org_id,
        frequency: Frequency::Monthly,
        channels: input.channels.clone(),
        enabled: true,
    }
    .validate()?;
    if !(1..=3650).contains(&input.idle_days) {
        return Err(
            Invalid::new("idle_days", "out_of_range", "idle_days must be 1 to 3650").into(),
        );
    }
    let (path, _, timezone) =
        stats::org_in_reach(db, scope, "grading.manage", input.org_id).await?;
    // the model must be one the caller may run
    grading::get_model(db, scope, input.model_id, None)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                Invalid::new("model_id", "not_found", "there is no such scoring model").into()
            }
            e => e,
        })?;
    let first = last_closed(Frequency::Monthly, &timezone, now_millis());
    let mut tx = db.begin().await?;
    let (id,): (i64,) = Sql::new("INSERT INTO grading_schedules (org_id, model_id, channels, idle_days, created_by, last_period, created_at) VALUES (")
        .arg(input.org_id)
        .push(", ")
        .arg(input.model_id)
        .push(", ")
        .arg(serde_json::to_string(&input.channels).expect("channels serialise"))
        .push(", ")
        .arg(input.idle_days)
        .push(", ")
        .arg(scope.user_id)
        .push(", ")
        .arg(first.key.as_str())
        .push(", ")
        .arg(now_millis())
        .push(") RETURNING id")
        .fetch_one(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "create",
            entity: "grading_schedule",
            entity_id: Some(id),
            summary: String::new(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE g.id = ").arg(id);
    sql.fetch_one(&db.pool).await
}

impl GradingSchedule {
    /// Where the warnings go.
    pub fn channels(&self) -> Vec<Channel> {
        serde_json::from_str(&self.channels).unwrap_or_default()
    }
}

/// The schedules of orgs in the caller's grading reach.
pub async fn list(db: &Db, scope: &Scope) -> Result<Vec<GradingSchedule>> {
    require(scope, "grading.manage")?;
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE ")
        .reach("o.path", &scope.reach("grading.manage"))
        .push(" ORDER BY o.path, g.id");
    sql.fetch_all(&db.pool).await
}

/// Stops a schedule; the runs it made stay.
pub async fn delete(db: &Db, scope: &Scope, id: i64) -> Result<()> {
    require(scope, "grading.manage")?;
    let mut tx = db.begin().await?;
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE g.id = ")
        .arg(id)
        .push(" AND ")
        .reach("o.path", &scope.reach("grading.manage"));
    let s: GradingSchedule = sql
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    Sql::new("DELETE FROM grading_schedules WHERE id = ")
        .arg(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: &s.org_path,
            action: "delete",
            entity: "grading_schedule",
            entity_id: Some(id),
            summary: s.model_name.clone(),
            changes: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What one scheduled run did.
#[derive(Debug, Clone)]
pub struct Ran {
    pub schedule_id: i64,
    pub period: String,
    pub run_id: i64,
    pub downgraded: usize,
    pub churn: usize,
    pub deliveries: usize,
}

fn texts(lines: &[(i64, String)]) -> Vec<&str> {
    lines.iter().map(|(_, l)| l.as_str()).collect()
}

fn previous_month(period: &str) -> String {
    let first =
        chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").unwrap_or_default();
    let prev = first - chrono::Duration::days(1);
    prev.format("%Y-%m").to_string()
}

/// The scheduler's round at `now`: each schedule whose org closed a month it has not run yet runs
/// its model for that month with the scope of the person who set it up, and sends the warnings.
pub async fn run_due(db: &Db, now: Millis, base_url: &str) -> Result<Vec<Ran>> {
    let rows: Vec<GradingSchedule> = Sql::new(SELECT)
        .push(" WHERE o.enabled = 1 ORDER BY g.id")
        .fetch_all(&db.pool)
        .await?;
    let mut done = Vec::new();
    for s in rows {
        let period = last_closed(Frequency::Monthly, &s.timezone, now).key;
        if period <= s.last_period {
            continue;
        }
        let claimed = Sql::new("UPDATE grading_schedules SET last_period = ")
            .arg(period.as_str())
            .push(" WHERE id = ")
            .arg(s.id)
            .push(" AND last_period = ")
            .arg(s.last_period.as_str())
            .execute(&db.pool)
            .await?;
        if claimed != 1 {
            continue;
        }
        match run_one(db, &s, &period, base_url).await {
            Ok(ran) => done.push(ran),
            Err(e) => {
                tracing::warn!(schedule = s.id, period = %period, error = %e, "scheduled grading run failed; tried again next round");
                Sql::new("UPDATE grading_schedules SET last_period = ")
                    .arg(s.last_period.as_str())
                    .push(" WHERE id = ")
                    .arg(s.id)
                    .push(" AND last_period = ")
                    .arg(period.as_str())
                    .execute(&db.pool)
                    .await?;
            }
        }
    }
    Ok(done)
}

async fn run_one(db: &Db, s: &GradingSchedule, period: &str, base_url: &str) -> Result<Ran> {
    let holder = accounts::holder(db, s.created_by).await?;
    let scope = accounts::scope_of(db, &holder).await?;
    let run = grading::run(
        db,
        &scope,
        RunRequest {
            model_id: s.model_id,
            period: period.to_string(),
            org_id: Some(s.org_id),
            trigger: "schedule",
        },
    )
    .await?;
    let diff = grading::run_diff(db, &scope, run.id, None).await?;
    // churn: the inputs of the month and the month before, of the customers this run graded,
    // with the owner rep's e-mail address
    type InputRow = (i64, String, Option<String>, Option<String>, Option<String>);
    let inputs: Vec<InputRow> = Sql::new("SELECT c.id, c.name, u.email, a.input_values, b.input_values FROM grade_results r JOIN customers c ON c.id = r.customer_id LEFT JOIN users u ON u.id = c.owner_id AND u.enabled = 1 LEFT JOIN scoring_inputs a ON a.customer_id = r.customer_id AND a.period = ")
        .arg(period)
        .push(" LEFT JOIN scoring_inputs b ON b.customer_id = r.customer_id AND b.period = ")
        .arg(previous_month(period))
        .push(" WHERE r.run_id = ")
        .arg(run.id)
        .push(" ORDER BY c.id")
        .fetch_all(&db.pool)
        .await?;
    let parse = |v: &Option<String>| {
        v.as_deref()
            .and_then(|v| serde_json::from_str::<Map<String, Value>>(v).ok())
    };
    let owner_email: HashMap<i64, &str> = inputs
        .iter()
        .filter_map(|(id, _, email, _, _)| {
            let email = email.as_deref().map(str::trim).filter(|e| !e.is_empty())?;
            Some((*id, email))
        })
        .collect();
    let churn: Vec<(i64, String)> = inputs
        .iter()
        .filter_map(|(id, name, _, now, before)| {
            let reasons = churn_reasons(&parse(now)?, parse(before).as_ref(), s.idle_days);
            (!reasons.is_empty()).then(|| (*id, format!("{name}：{}", reasons.join("，"))))
        })
        .collect();
    let down: Vec<(i64, String)> = diff
        .down
        .iter()
        .map(|m| {
            (
                m.customer_id,
                format!(
                    "{}：{} → {}（{:.1} → {:.1}）",
                    m.customer_name, m.before_grade, m.grade, m.before_score, m.score
                ),
            )
        })
        .collect();
    let link = format!("{}/grading/runs/{}", base_url.trim_end_matches('/'), run.id);
    let warning = |down: &[&str], churn: &[&str]| {
        let mut text = format!(
            "{period} 客户分级（{}）：共 {} 位客户",
            run.model_name, run.scored
        );
        for (title, lines) in [("降级", down), ("流失预警", churn)] {
            if !lines.is_empty() {
                text.push_str(&format!("\n{title} {} 位：", lines.len()));
                for l in lines.iter().take(20) {
                    text.push_str(&format!("\n· {l}"));
                }
                if lines.len() > 20 {
                    text.push_str(&format!("\n· ……另有 {} 位", lines.len() - 20));
                }
            }
        }
        Notice {
            kind: "grading_warning".into(),
            subject: format!("{period} 客户降级与流失预警"),
            text,
            link: Some(link.clone()),
            attachment: None,
        }
    };
    let channels = s.channels();
    let mut deliveries = 0;
    let mut tx = db.begin().await?;
    Sql::new("UPDATE grading_schedules SET last_run_id = ")
        .arg(run.id)
        .push(" WHERE id = ")
        .arg(s.id)
        .execute(&mut *tx)
        .await?;
    if !down.is_empty() || !churn.is_empty() {
        let notice = warning(&texts(&down), &texts(&churn));
        deliveries = notify::enqueue_notice(&mut tx, s.org_id, &channels, &notice).await?;
        // each owner rep hears of his own customers, by e-mail when his account has an address
        let mut per_owner: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
        for (which, lines) in [(0, &down), (1, &churn)] {
            for (customer, line) in lines.iter() {
                if let Some(email) = owner_email.get(customer) {
                    let entry = per_owner.entry(email).or_default();
                    if which == 0 {
                        &mut entry.0
                    } else {
                        &mut entry.1
                    }
                    .push(line.as_str());
                }
            }
        }
        for (email, (down, churn)) in per_owner {
            let to = [Channel::Email {
                to: email.to_string(),
            }];
            deliveries +=
                notify::enqueue_notice(&mut tx, s.org_id, &to, &warning(&down, &churn)).await?;
        }
    }
    tx.commit().await?;
    Ok(Ran {
        schedule_id: s.id,
        period: period.to_string(),
        run_id: run.id,
        downgraded: down.len(),
        churn: churn.len(),
        deliveries,
    })
}
