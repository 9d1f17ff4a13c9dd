//! Data management (数据清理): removing raw evaluation rows older than a cut-off within one org
//! subtree, by hand or on schedule (the retention setting), in short chunks so that terminals keep
//! writing meanwhile. What a cleanup keeps is written in `keping_domain::data`.
//!
//! A cleanup is a *run* (table `cleanup_runs`): it is created, then worked off chunk by chunk; each
//! chunk is one short transaction that also moves the run's counters, so the run shows progress and
//! a run interrupted by a restart is picked up again where it stopped (deleting is idempotent).

use crate::audit::{self, Actor, Changes, Entry};
use crate::db::id_cursor;
use crate::{settings, Backend, Db, Page, Result, Sql, StoreError};
use keping_domain::data::{months_ago, OlderThan, Retention};
use keping_domain::org::OrgPath;
use keping_domain::scope::Scope;
use keping_domain::{now_millis, Millis};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

const RETENTION: &str = "data_retention";
/// Rows removed per transaction: small enough that a terminal's press never waits long for it.
pub const CHUNK: i64 = 1_000;
/// A running run whose counters have not moved for this long was interrupted (the process
/// stopped) and is resumed by the data worker.
pub const STALLED_MS: Millis = 5 * 60_000;

/// Roll-up tables, which statistics over long ranges read and which outlive raw rows:
/// (table, column with the org id, column with the bucket's start in UTC ms). A cleanup asked to
/// drop roll-ups (`keep_rollups: false`) removes their buckets before the cut-off as well.
/// Each needs an `id` column. The statistics roll-ups (store/src/stats.rs) are folded cells and
/// additions still pending.
const ROLLUPS: &[(&str, &str, &str)] = &[
    ("stats_rollup", "org_id", "bucket"),
    ("stats_pending", "org_id", "hour_start"),
];

/// How many rows of each kind a cleanup removes (or, in a preview, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct CleanupCounts {
    pub ratings: i64,
    /// Closed follow-up items of the removed ratings.
    pub follow_ups: i64,
    pub presses: i64,
    pub services: i64,
    /// Duty sessions (上岗记录).
    pub duties: i64,
    /// Roll-up rows; always 0 while roll-ups are kept.
    pub rollups: i64,
}

impl CleanupCounts {
    pub fn total(&self) -> i64 {
        self.ratings + self.follow_ups + self.presses + self.services + self.duties + self.rollups
    }

    fn summary(&self) -> String {
        format!(
            "{} ratings, {} follow-ups, {} presses, {} services, {} duty sessions, {} roll-up rows",
            self.ratings, self.follow_ups, self.presses, self.services, self.duties, self.rollups
        )
    }
}

/// What a cleanup would remove, for the confirmation step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CleanupPreview {
    pub org_id: i64,
    pub org_name: String,
    pub older_than: String,
    /// Rows older than this go (a local midnight of the org's time zone, or now for `all`).
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub cutoff_at: i64,
    pub keep_rollups: bool,
    pub counts: CleanupCounts,
    /// Ratings old enough to go that stay because their follow-up item is still open.
    pub kept_open_follow_ups: i64,
}

/// One cleanup, asked for by someone or made by the retention worker, with its progress.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct CleanupRun {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    /// manual or retention
    pub source: String,
    /// month, year, all, or the retention period (e.g. 24m)
    pub older_than: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub cutoff_at: i64,
    #[serde(serialize_with = "ser_bool")]
    #[schema(value_type = bool)]
    pub keep_rollups: i64,
    /// running, done or failed
    pub status: String,
    /// Removed so far.
    #[sqlx(flatten)]
    pub counts: CleanupCounts,
    /// Who asked (null for the retention worker, named "system").
    pub user_id: Option<i64>,
    pub username: String,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(serialize_with = "keping_domain::ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    #[serde(serialize_with = "keping_domain::ser_opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    #[serde(skip)]
    pub org_path: String,
    #[serde(skip)]
    pub except_paths: String,
}

fn ser_bool<S: serde::Serializer>(v: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(*v != 0)
}

const RUN_SELECT: &str = "SELECT c.id, c.org_id, o.name AS org_name, c.source, c.older_than, c.cutoff_at, c.keep_rollups, c.status, \
     c.ratings, c.follow_ups, c.presses, c.services, c.duties, c.rollups, c.user_id, c.username, c.started_at, c.updated_at, c.finished_at, c.error, \
     c.org_path, c.except_paths FROM cleanup_runs c JOIN orgs o ON o.id = c.org_id";

// ---------------------------------------------------------------- what goes

/// The rows a run removes: within one subtree, minus subtrees that govern themselves, older than the cut-off.
#[derive(Debug, Clone)]
struct Target {
    path: OrgPath,
    except: Vec<OrgPath>,
    cutoff: Millis,
}

impl Target {
    /// `o.path` within the subtree and outside the exceptions.
    fn orgs(&self, sql: &mut Sql) {
        let (lo, hi) = self.path.subtree_range();
        sql.push("o.path >= ")
            .arg(lo)
            .push(" AND o.path < ")
            .arg(hi);
        for e in &self.except {
            let (lo, hi) = e.subtree_range();
            sql.push(" AND NOT (o.path >= ")
                .arg(lo)
                .push(" AND o.path < ")
                .arg(hi)
                .push(")");
        }
    }

    /// `head` (a SELECT or DELETE) then `FROM … WHERE …` of the ratings that go. A rating with an
    /// open follow-up stays (someone still has to close it), and with it its press and its service.
    fn ratings(&self, head: &str) -> Sql {
        let mut sql = Sql::new(&format!(
            "{head}FROM ratings r JOIN orgs o ON o.id = r.org_id WHERE "
        ));
        self.orgs(&mut sql);
        sql.push(" AND r.rated_at < ")
            .arg(self.cutoff)
            .push(" AND ")
            .push(&not_open("r.id"));
        sql
    }

    fn presses(&self, head: &str) -> Sql {
        let mut sql = Sql::new(&format!("{head}FROM presses p JOIN windows w ON w.id = p.window_id JOIN orgs o ON o.id = w.org_id WHERE "));
        self.orgs(&mut sql);
        sql.push(" AND p.received_at < ")
            .arg(self.cutoff)
            .push(" AND (p.rating_id IS NULL OR ")
            .push(&not_open("p.rating_id"))
            .push(")");
        sql
    }

    /// Ended services only: one in progress stays whatever its age.
    fn services(&self, head: &str) -> Sql {
        let mut sql = Sql::new(&format!(
            "{head}FROM services s JOIN orgs o ON o.id = s.org_id WHERE "
        ));
        self.orgs(&mut sql);
        sql.push(" AND s.ended_at IS NOT NULL AND s.ended_at < ")
            .arg(self.cutoff)
            .push(" AND (s.rating_id IS NULL OR ")
            .push(&not_open("s.rating_id"))
            .push(")");
        sql
    }

    /// Ended duty sessions only: whoever is at a window now stays there.
    fn duties(&self, head: &str) -> Sql {
        let mut sql = Sql::new(&format!("{head}FROM duties d JOIN windows w ON w.id = d.window_id JOIN orgs o ON o.id = w.org_id WHERE "));
        self.orgs(&mut sql);
        sql.push(" AND d.ended_at IS NOT NULL AND d.ended_at < ")
            .arg(self.cutoff);
        sql
    }

    fn rollup(&self, head: &str, (table, org_col, time_col): (&str, &str, &str)) -> Sql {
        let mut sql = Sql::new(&format!(
            "{head}FROM {table} x JOIN orgs o ON o.id = x.{org_col} WHERE "
        ));
        self.orgs(&mut sql);
        sql.push(&format!(" AND x.{time_col} < ")).arg(self.cutoff);
        sql
    }
}

fn not_open(rating_col: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM follow_ups f WHERE f.rating_id = {rating_col} AND f.status = 'open')")
}

const COUNT: &str = "SELECT COUNT(*) ";

/// What `target` would remove now.
async fn counts(db: &Db, target: &Target, keep_rollups: bool) -> Result<CleanupCounts> {
    let mut tx = db.read().await?;
    let ratings = target.ratings(COUNT).fetch_i64(&mut *tx).await?;
    let follow_ups = target
        .ratings("SELECT COUNT(*) FROM follow_ups ff WHERE ff.rating_id IN (SELECT r.id ")
        .push(")")
        .fetch_i64(&mut *tx)
        .await?;
    let presses = target.presses(COUNT).fetch_i64(&mut *tx).await?;
    let services = target.services(COUNT).fetch_i64(&mut *tx).await?;
    let duties = target.duties(COUNT).fetch_i64(&mut *tx).await?;
    let mut rollups = 0;
    if !keep_rollups {
        for r in ROLLUPS {
            rollups += target.rollup(COUNT, *r).fetch_i64(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(CleanupCounts {
        ratings,
        follow_ups,
        presses,
        services,
        duties,
        rollups,
    })
}

// ---------------------------------------------------------------- by hand

/// The org to clean, which must lie within the caller's data.cleanup reach: (path, name, time zone).
async fn org_to_clean(db: &Db, scope: &Scope, org_id: i64) -> Result<(OrgPath, String, String)> {
    if !scope.has("data.cleanup") {
        return Err(StoreError::Forbidden("data.cleanup"));
    }
    let mut sql = Sql::new("SELECT path, name, timezone FROM orgs WHERE id = ");
    sql.arg(org_id)
        .push(" AND ")
        .reach("path", &scope.reach("data.cleanup"));
    let (path, name, tz): (String, String, String) = sql.fetch_one(&db.pool).await?;
    Ok((
        OrgPath::parse(&path).expect("stored org paths are well formed"),
        name,
        tz,
    ))
}

/// The dry run: what a cleanup of `org_id`'s subtree would remove now.
pub async fn preview(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    older_than: OlderThan,
    keep_rollups: bool,
) -> Result<CleanupPreview> {
    let (path, org_name, tz) = org_to_clean(db, scope, org_id).await?;
    let target = Target {
        path,
        except: Vec::new(),
        cutoff: older_than.cutoff(&tz, now_millis()),
    };
    let counts = counts(db, &target, keep_rollups).await?;
    let mut held = Sql::new("SELECT COUNT(*) FROM ratings r JOIN orgs o ON o.id = r.org_id WHERE ");
    target.orgs(&mut held);
    held.push(" AND r.rated_at < ")
        .arg(target.cutoff)
        .push(" AND NOT ")
        .push(&not_open("r.id"));
    let kept_open_follow_ups = held.fetch_i64(&db.pool).await?;
    Ok(CleanupPreview {
        org_id,
        org_name,
        older_than: older_than.code().to_string(),
        cutoff_at: target.cutoff,
        keep_rollups,
        counts,
        kept_open_follow_ups,
    })
}

/// Starts a cleanup of `org_id`'s subtree; the caller then works it off with [`work`]. Only one run
/// at a time may touch a part of the tree (409 otherwise).
pub async fn start(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    older_than: OlderThan,
    keep_rollups: bool,
) -> Result<CleanupRun> {
    let (path, _, tz) = org_to_clean(db, scope, org_id).await?;
    let cutoff = older_than.cutoff(&tz, now_millis());
    let mut tx = db.begin().await?;
    let running: Vec<(String,)> =
        Sql::new("SELECT org_path FROM cleanup_runs WHERE status = 'running'")
            .fetch_all(&mut *tx)
            .await?;
    if running
        .iter()
        .any(|(p,)| OrgPath::parse(p).is_some_and(|p| p.contains(&path) || path.contains(&p)))
    {
        return Err(StoreError::conflict(
            "org_id",
            "cleanup_running",
            "a cleanup of this part of the org tree is still running; wait for it to finish",
        ));
    }
    let id = insert_run(
        &mut tx,
        NewRun {
            org_id,
            path: &path,
            source: "manual",
            source_key: None,
            older_than: older_than.code(),
            cutoff,
            keep_rollups,
            except: &[],
            actor: scope.into(),
        },
    )
    .await?
    .expect("a manual run has no source key to collide on");
    tx.commit().await?;
    run_by_id(db, id).await
}

struct NewRun<'a> {
    org_id: i64,
    path: &'a OrgPath,
    source: &'a str,
    source_key: Option<String>,
    older_than: &'a str,
    cutoff: Millis,
    keep_rollups: bool,
    except: &'a [OrgPath],
    actor: Actor<'a>,
}

/// Inserts a run; None when a run with the same source key exists already.
async fn insert_run(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run: NewRun<'_>,
) -> Result<Option<i64>> {
    let now = now_millis();
    let except: Vec<&str> = run.except.iter().map(OrgPath::as_str).collect();
    let mut sql = Sql::new("INSERT INTO cleanup_runs (org_id, org_path, source, source_key, older_than, cutoff_at, keep_rollups, except_paths, status, user_id, username, started_at, updated_at) VALUES (");
    sql.arg(run.org_id)
        .push(", ")
        .arg(run.path.as_str())
        .push(", ")
        .arg(run.source)
        .push(", ")
        .arg(run.source_key)
        .push(", ")
        .arg(run.older_than)
        .push(", ")
        .arg(run.cutoff)
        .push(", ")
        .arg(run.keep_rollups)
        .push(", ")
        .arg(serde_json::to_string(&except).expect("paths serialise"))
        .push(", 'running', ")
        .arg(run.actor.user_id)
        .push(", ")
        .arg(run.actor.username)
        .push(", ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") ON CONFLICT (source_key) DO NOTHING RETURNING id");
    Ok(sql
        .fetch_optional::<(i64,), _>(&mut **tx)
        .await?
        .map(|(id,)| id))
}

async fn run_by_id(db: &Db, id: i64) -> Result<CleanupRun> {
    Sql::new(&format!("{RUN_SELECT} WHERE c.id = "))
        .arg(id)
        .fetch_one(&db.pool)
        .await
}

/// One run, if it lies within the caller's data.cleanup reach.
pub async fn run(db: &Db, scope: &Scope, id: i64) -> Result<CleanupRun> {
    if !scope.has("data.cleanup") {
        return Err(StoreError::Forbidden("data.cleanup"));
    }
    let mut sql = Sql::new(&format!("{RUN_SELECT} WHERE c.id = "));
    sql.arg(id)
        .push(" AND ")
        .reach("c.org_path", &scope.reach("data.cleanup"));
    sql.fetch_one(&db.pool).await
}

/// Runs within the caller's data.cleanup reach, newest first.
pub async fn runs(
    db: &Db,
    scope: &Scope,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<CleanupRun>> {
    if !scope.has("data.cleanup") {
        return Err(StoreError::Forbidden("data.cleanup"));
    }
    let mut sql = Sql::new(&format!("{RUN_SELECT} WHERE "));
    sql.reach("c.org_path", &scope.reach("data.cleanup"));
    if let Some(after) = id_cursor(cursor)? {
        sql.push(" AND c.id < ").arg(after);
    }
    sql.push(" ORDER BY c.id DESC LIMIT ").arg(limit + 1);
    let rows = sql.fetch_all(&db.pool).await?;
    Ok(Page::from_rows(rows, limit, |r: &CleanupRun| {
        r.id.to_string()
    }))
}

// ---------------------------------------------------------------- working a run off

/// Works a run off, chunk by chunk, until nothing is left; then marks it done and writes the audit
/// entry with the counts. `progress` hears the counters after every chunk.
pub async fn work(
    db: &Db,
    run_id: i64,
    mut progress: impl FnMut(&CleanupCounts),
) -> Result<CleanupRun> {
    let run = run_by_id(db, run_id).await?;
    if run.status != "running" {
        return Ok(run);
    }
    let except: Vec<String> = serde_json::from_str(&run.except_paths).unwrap_or_default();
    let target = Target {
        path: OrgPath::parse(&run.org_path).expect("stored org paths are well formed"),
        except: except.iter().filter_map(|p| OrgPath::parse(p)).collect(),
        cutoff: run.cutoff_at,
    };
    let outcome = work_off(db, &run, &target, &mut progress).await;
    let mut tx = db.begin().await?;
    let run = Sql::new(&format!("{RUN_SELECT} WHERE c.id = "))
        .arg(run_id)
        .fetch_one::<CleanupRun, _>(&mut *tx)
        .await?;
    let (status, error) = match &outcome {
        Ok(()) => ("done", None),
        Err(e) => {
            tracing::error!(run = run_id, error = %e, "cleanup failed");
            ("failed", Some(e.to_string()))
        }
    };
    let now = now_millis();
    Sql::new("UPDATE cleanup_runs SET status = ")
        .arg(status)
        .push(", error = ")
        .arg(error.clone())
        .push(", finished_at = ")
        .arg(now)
        .push(", updated_at = ")
        .arg(now)
        .push(" WHERE id = ")
        .arg(run_id)
        .execute(&mut *tx)
        .await?;
    let c = run.counts;
    let mut changes = Changes::new();
    for (name, n) in [
        ("ratings", c.ratings),
        ("follow_ups", c.follow_ups),
        ("presses", c.presses),
        ("services", c.services),
        ("duties", c.duties),
        ("rollups", c.rollups),
    ] {
        changes.field(name, &n, &0);
    }
    let summary = format!(
        "{} cleanup of {} ({}, older than {}{}): removed {}{}",
        run.source,
        run.org_name,
        run.older_than,
        keping_domain::rfc3339(run.cutoff_at),
        if run.keep_rollups != 0 {
            ", roll-ups kept"
        } else {
            ""
        },
        c.summary(),
        error.map(|e| format!("; failed: {e}")).unwrap_or_default()
    );
    audit::record(
        &mut *tx,
        Actor {
            user_id: run.user_id,
            username: &run.username,
        },
        Entry {
            org_path: &run.org_path,
            action: "cleanup",
            entity: "evaluation_data",
            entity_id: Some(run.org_id),
            summary,
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    outcome?;
    run_by_id(db, run_id).await
}

/// One table's chunk in one transaction: the ids that go now (`select`), what hangs on them, and
/// the run's counters.
async fn chunk(
    db: &Db,
    run_id: i64,
    mut select: Sql,
    table: &str,
    column: &str,
) -> Result<(i64, CleanupCounts)> {
    let mut tx = db.begin().await?;
    select.push(" LIMIT ").arg(CHUNK);
    let ids: Vec<(i64,)> = select.fetch_all(&mut *tx).await?;
    let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
    let mut done = CleanupCounts::default();
    if ids.is_empty() {
        tx.commit().await?;
        return Ok((0, done));
    }
    if table == "ratings" {
        done.follow_ups = Sql::new("DELETE FROM follow_ups WHERE ")
            .in_ids("rating_id", &ids)
            .execute(&mut *tx)
            .await? as i64;
    }
    let n = Sql::new(&format!("DELETE FROM {table} WHERE "))
        .in_ids("id", &ids)
        .execute(&mut *tx)
        .await? as i64;
    match column {
        "ratings" => done.ratings = n,
        "presses" => done.presses = n,
        "services" => done.services = n,
        "duties" => done.duties = n,
        _ => done.rollups = n,
    }
    Sql::new("UPDATE cleanup_runs SET ratings = ratings + ")
        .arg(done.ratings)
        .push(", follow_ups = follow_ups + ")
        .arg(done.follow_ups)
        .push(", presses = presses + ")
        .arg(done.presses)
        .push(", services = services + ")
        .arg(done.services)
        .push(", duties = duties + ")
        .arg(done.duties)
        .push(", rollups = rollups + ")
        .arg(done.rollups)
        .push(", updated_at = ")
        .arg(now_millis())
        .push(" WHERE id = ")
        .arg(run_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((n, done))
}

async fn work_off(
    db: &Db,
    run: &CleanupRun,
    target: &Target,
    progress: &mut impl FnMut(&CleanupCounts),
) -> Result<()> {
    let mut total = run.counts;
    // ratings first (they hold the follow-ups), then what they point at
    type Select<'a> = Box<dyn Fn() -> Sql + Send + Sync + 'a>;
    let mut steps: Vec<(Select, &str, &str)> = vec![
        (
            Box::new(|| target.ratings("SELECT r.id ")),
            "ratings",
            "ratings",
        ),
        (
            Box::new(|| target.presses("SELECT p.id ")),
            "presses",
            "presses",
        ),
        (
            Box::new(|| target.services("SELECT s.id ")),
            "services",
            "services",
        ),
        (
            Box::new(|| target.duties("SELECT d.id ")),
            "duties",
            "duties",
        ),
    ];
    if run.keep_rollups == 0 {
        for r in ROLLUPS {
            steps.push((
                Box::new(move || target.rollup("SELECT x.id ", *r)),
                r.0,
                "rollups",
            ));
        }
    }
    for (select, table, column) in &steps {
        loop {
            let started = std::time::Instant::now();
            let (n, done) = chunk(db, run.id, select(), table, column).await?;
            if n == 0 {
                break;
            }
            total.ratings += done.ratings;
            total.follow_ups += done.follow_ups;
            total.presses += done.presses;
            total.services += done.services;
            total.duties += done.duties;
            total.rollups += done.rollups;
            progress(&total);
            // let the terminals' writes in between chunks: SQLite has one writer at a time, and a
            // waiting writer polls, so the pause is as long as the chunk took
            match db.backend {
                Backend::Sqlite => {
                    tokio::time::sleep(started.elapsed().max(Duration::from_millis(10))).await
                }
                Backend::Postgres => tokio::task::yield_now().await,
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- retention (on schedule)

/// The retention in force for an org and where it comes from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionInForce {
    pub org_id: i64,
    /// Months raw evaluation data is kept; null: kept for ever.
    pub keep_months: Option<u32>,
    /// Whether the org has a setting of its own (else it inherits).
    pub own: bool,
    /// The org whose setting is in force; null when none is set above (the default: kept for ever).
    pub from_org_id: Option<i64>,
    pub from_org_name: Option<String>,
}

pub async fn retention(db: &Db, scope: &Scope, org_id: i64) -> Result<RetentionInForce> {
    let (path, _, _) = org_to_clean(db, scope, org_id).await?;
    let nearest: Option<(i64, String, Retention)> =
        settings::nearest_named(&mut *db.pool.acquire().await?, &path, RETENTION).await?;
    Ok(RetentionInForce {
        org_id,
        keep_months: nearest.as_ref().and_then(|(_, _, r)| r.keep_months),
        own: nearest.as_ref().is_some_and(|(from, _, _)| *from == org_id),
        from_org_id: nearest.as_ref().map(|(from, _, _)| *from),
        from_org_name: nearest.map(|(_, name, _)| name),
    })
}

/// Sets an org's own retention (None: keep for ever here and below), or with `inherit` removes
/// its own so the nearest ancestor's applies.
pub async fn put_retention(
    db: &Db,
    scope: &Scope,
    org_id: i64,
    retention: Option<Retention>,
) -> Result<RetentionInForce> {
    if let Some(r) = &retention {
        r.validate()?;
    }
    let (path, _, _) = org_to_clean(db, scope, org_id).await?;
    let before = retention_of(db, org_id).await?;
    let mut tx = db.begin().await?;
    match &retention {
        Some(r) => settings::put(&mut tx, org_id, RETENTION, r).await?,
        None => {
            Sql::new("DELETE FROM org_settings WHERE org_id = ")
                .arg(org_id)
                .push(" AND name = ")
                .arg(RETENTION)
                .execute(&mut *tx)
                .await?;
        }
    }
    let mut changes = Changes::new();
    changes.field(
        "keep_months",
        &before.map(|r| r.keep_months),
        &retention.map(|r| r.keep_months),
    );
    audit::record(
        &mut *tx,
        scope.into(),
        Entry {
            org_path: path.as_str(),
            action: "update",
            entity: "data_retention",
            entity_id: Some(org_id),
            summary: String::new(),
            changes: Some(changes),
        },
    )
    .await?;
    tx.commit().await?;
    self::retention(db, scope, org_id).await
}

/// An org with a retention setting of its own.
#[derive(Debug, Clone, Serialize)]
pub struct OwnRetention {
    pub org_id: i64,
    pub org_name: String,
    pub keep_months: Option<u32>,
}

/// The orgs within the caller's data.cleanup reach that set their own retention, in tree order.
pub async fn own_retentions(db: &Db, scope: &Scope) -> Result<Vec<OwnRetention>> {
    if !scope.has("data.cleanup") {
        return Err(StoreError::Forbidden("data.cleanup"));
    }
    let mut sql = Sql::new("SELECT o.id, o.name, s.value FROM org_settings s JOIN orgs o ON o.id = s.org_id WHERE s.name = ");
    sql.arg(RETENTION)
        .push(" AND ")
        .reach("o.path", &scope.reach("data.cleanup"))
        .push(" ORDER BY o.path");
    let rows: Vec<(i64, String, String)> = sql.fetch_all(&db.pool).await?;
    Ok(rows
        .into_iter()
        .map(|(org_id, org_name, value)| OwnRetention {
            org_id,
            org_name,
            keep_months: serde_json::from_str::<Retention>(&value)
                .ok()
                .and_then(|r| r.keep_months),
        })
        .collect())
}

async fn retention_of(db: &Db, org_id: i64) -> Result<Option<Retention>> {
    let own: Option<(String,)> = Sql::new("SELECT value FROM org_settings WHERE org_id = ")
        .arg(org_id)
        .push(" AND name = ")
        .arg(RETENTION)
        .fetch_optional(&db.pool)
        .await?;
    Ok(own.and_then(|(v,)| serde_json::from_str(&v).ok()))
}

#[derive(sqlx::FromRow)]
struct RetentionRow {
    org_id: i64,
    path: String,
    timezone: String,
    value: String,
}

/// The data worker's round: resumes interrupted runs, then applies every retention setting in
/// force (once per org and local day). Each org's setting governs its subtree except the parts
/// below that have their own. Returns the runs it worked off.
pub async fn apply_retention(db: &Db) -> Result<Vec<CleanupRun>> {
    let mut done = Vec::new();
    let stalled: Vec<(i64,)> =
        Sql::new("SELECT id FROM cleanup_runs WHERE status = 'running' AND updated_at < ")
            .arg(now_millis() - STALLED_MS)
            .push(" ORDER BY id")
            .fetch_all(&db.pool)
            .await?;
    for (id,) in stalled {
        // claim it, so that another instance does not work it off at the same time
        let claimed = Sql::new("UPDATE cleanup_runs SET updated_at = ")
            .arg(now_millis())
            .push(" WHERE status = 'running' AND id = ")
            .arg(id)
            .push(" AND updated_at < ")
            .arg(now_millis() - STALLED_MS)
            .execute(&db.pool)
            .await?;
        if claimed == 1 {
            tracing::info!(run = id, "resuming an interrupted cleanup");
            done.push(work(db, id, |_| {}).await?);
        }
    }
    let settings: Vec<RetentionRow> = Sql::new("SELECT s.org_id, o.path, o.timezone, s.value FROM org_settings s JOIN orgs o ON o.id = s.org_id WHERE s.name = ")
        .arg(RETENTION)
        .fetch_all(&db.pool)
        .await?;
    let now = now_millis();
    for s in &settings {
        let Some(months) = serde_json::from_str::<Retention>(&s.value)
            .ok()
            .and_then(|r| r.keep_months)
        else {
            continue;
        };
        let path = OrgPath::parse(&s.path).expect("stored org paths are well formed");
        let except: Vec<OrgPath> = settings
            .iter()
            .filter(|o| o.path != s.path && o.path.starts_with(&s.path))
            .filter_map(|o| OrgPath::parse(&o.path))
            .collect();
        let target = Target {
            path: path.clone(),
            except: except.clone(),
            cutoff: months_ago(&s.timezone, now, months),
        };
        if counts(db, &target, true).await?.total() == 0 {
            continue;
        }
        // once per org, cut-off (a local midnight: once a day) and set of exceptions (a setting
        // changed below starts a fresh run the same day)
        let key = keping_domain::auth::secret_digest(&format!(
            "{}|{}|{}",
            s.org_id,
            target.cutoff,
            except
                .iter()
                .map(OrgPath::as_str)
                .collect::<Vec<_>>()
                .join(",")
        ));
        let mut tx = db.begin().await?;
        let id = insert_run(
            &mut tx,
            NewRun {
                org_id: s.org_id,
                path: &path,
                source: "retention",
                source_key: Some(format!("retention:{key}")),
                older_than: &format!("{months}m"),
                cutoff: target.cutoff,
                keep_rollups: true,
                except: &except,
                actor: Actor {
                    user_id: None,
                    username: "system",
                },
            },
        )
        .await?;
        tx.commit().await?;
        if let Some(id) = id {
            let run = work(db, id, |_| {}).await?;
            tracing::info!(
                org = s.org_id,
                removed = run.counts.total(),
                "retention applied"
            );
            done.push(run);
        }
    }
    Ok(done)
}
