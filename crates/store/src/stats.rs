//! Evaluation statistics (统计信息) read from roll-ups, and the roll-ups themselves.
//!
//! `stats_rollup` holds the figures per outlet × window × staff × business type × option key, in
//! three grains: local hour ('h'), local day ('d') and local month ('m'), in the outlet's time
//! zone. Beside these full cells the same figures are kept without the dimensions most requests
//! do not ask for (migration 0014, [`GRAINS`]): 'oh'/'od'/'om' per outlet × option key,
//! 'wd'/'wm' per window × option key. A request reads whole months from month rows and the days
//! at the edges from day rows, so a year for head office reads a few rows per window instead of
//! every rating, and it reads the narrowest family that holds its answer: full cells only when
//! narrowed to a window or a staff member (through the window and staff indexes) or grouped by
//! staff or business type.
//!
//! Every raw write appends what it adds to `stats_pending` in its own transaction, once per
//! finest cell ([`Rollup::write`]: the press writer once per batch, End once per service), and
//! the press writer folds those rows into all eight grains every few seconds, a few outlets per
//! transaction ([`fold_orgs`]): a cell then gathers seconds of presses before it is written,
//! instead of being written by every batch. Statistics read the folded cells and the pending rows
//! from one snapshot, so an answer never waits for a fold. [`rebuild`] recomputes everything from
//! raw rows and reports the differences (`keping stats rebuild [--check]`).
//!
//! Reports follow the **current** org tree: roll-up rows name the outlet (org id), and the subtree
//! is taken from today's paths, so after an outlet moves to another branch its whole history is
//! reported under the new branch.
//!
//! Further figures (migration 0008): `prompted` counts ended services whose rating prompt was
//! offered — End counts it, and a Start at the window less than 3 s later takes it back
//! ([`rules::MIN_PROMPT_MS`]); `duty_ms` is on-duty time from ended duty sessions, cut at local hour
//! edges (open sessions count once they end); `hb00`…`hb15` are a histogram of handling times
//! ([`rules::HANDLE_BUCKETS`]) from which the p90 is read, rounded up to its bucket's edge.
//! Window busyness = handling time / on-duty time at the window (its "open time").
//!
//! Time: services count on the day they ended, ratings on the day they were given (so a service
//! ended at 23:59:58 and rated at 00:00:03 is a service of one day and a rating of the next),
//! removed presses at their effective time (or receipt, when too old to have one).

use crate::db::push_quoted;
use crate::{Backend, Db, Result, Sql, StoreError};
use keping_domain::evaluation::wilson_lower_bound;
use keping_domain::org::OrgPath;
use keping_domain::scope::{Reach, Scope};
use keping_domain::stats::{self as rules, local_parts, GroupBy};
use keping_domain::Millis;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use utoipa::ToSchema;

/// The suppression rules whose removed presses are counted, in column order.
pub const RULES: [&str; 5] = [
    "already_rated",
    "duplicate_interval",
    "no_prompt",
    "too_old",
    "no_service",
];

/// One roll-up cell's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub grain: &'static str,
    pub day: String,
    pub hour: i64,
    pub org_id: i64,
    pub window_id: i64,
    pub staff_id: i64,
    pub business_type_id: i64,
    pub key: String,
    pub polarity: String,
}

/// The figures a cell adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub bucket: Millis,
    pub services: i64,
    pub handle_ms: i64,
    pub ratings: i64,
    pub rated: i64,
    pub removed: [i64; 5],
    /// Ended services whose prompt was offered (not cut short by the next Start).
    pub prompted: i64,
    /// On-duty time at the window, in ms, cut at local hour edges.
    pub duty_ms: i64,
    /// Ended services per handling-time bucket ([`rules::HANDLE_BUCKETS`]).
    pub hist: [i64; HIST],
}

/// Buckets of the handling-time histogram.
pub const HIST: usize = rules::HANDLE_BUCKETS.len();

/// The figure columns of `stats_rollup`, in [`Figures::values`] order.
pub fn figure_columns() -> Vec<String> {
    let mut c: Vec<String> = ["services", "handle_ms", "ratings", "rated"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.extend(RULES.iter().map(|r| format!("rm_{r}")));
    c.push("prompted".into());
    c.push("duty_ms".into());
    c.extend((0..HIST).map(|i| format!("hb{i:02}")));
    c
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.services += o.services;
        self.handle_ms += o.handle_ms;
        self.ratings += o.ratings;
        self.rated += o.rated;
        for i in 0..5 {
            self.removed[i] += o.removed[i];
        }
        self.prompted += o.prompted;
        self.duty_ms += o.duty_ms;
        for i in 0..HIST {
            self.hist[i] += o.hist[i];
        }
    }

    /// The figures in [`figure_columns`] order.
    pub fn values(&self) -> Vec<i64> {
        let mut v = vec![self.services, self.handle_ms, self.ratings, self.rated];
        v.extend(self.removed);
        v.push(self.prompted);
        v.push(self.duty_ms);
        v.extend(self.hist);
        v
    }

    /// Figures from values in [`figure_columns`] order.
    pub fn from_values(bucket: Millis, v: &[i64]) -> Figures {
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let mut f = Figures {
            bucket,
            services: at(0),
            handle_ms: at(1),
            ratings: at(2),
            rated: at(3),
            removed: [at(4), at(5), at(6), at(7), at(8)],
            prompted: at(9),
            duty_ms: at(10),
            hist: [0; HIST],
        };
        for i in 0..HIST {
            f.hist[i] = at(11 + i);
        }
        f
    }

    fn same_counts(&self, o: &Figures) -> bool {
        Figures { bucket: 0, ..*self } == Figures { bucket: 0, ..*o }
    }
}

/// What one raw row adds: where, and which option (key '' for services and removed presses).
pub struct Fact<'a> {
    pub timezone: &'a str,
    pub at: Millis,
    pub org_id: i64,
    pub window_id: i64,
    pub staff_id: Option<i64>,
    pub business_type_id: Option<i64>,
    pub key: &'a str,
    pub polarity: &'a str,
    pub figures: Figures,
}

/// The finest cell a raw row adds to: a local hour at one outlet, window, staff member, business
/// type and option key. Writes append these to `stats_pending`; [`fold_orgs`] adds them to every
/// grain of `stats_rollup`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fine {
    pub hour_start: Millis,
    pub day: String,
    pub hour: i64,
    pub month: String,
    pub day_start: Millis,
    pub month_start: Millis,
    pub org_id: i64,
    pub window_id: i64,
    pub staff_id: i64,
    pub business_type_id: i64,
    pub key: String,
    pub polarity: String,
}

/// Roll-up additions gathered in memory, by finest cell.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rollup {
    pub additions: BTreeMap<Fine, Figures>,
}

/// The roll-up grains: (code, time grain 'h'/'d'/'m', keeps the window, keeps staff and
/// business type). The full cells ('h', 'd', 'm') answer requests narrowed to a window or a staff
/// member and the staff and business type groupings; the narrower ones (migration 0014) answer
/// the rest with far fewer rows: 'o…' per outlet, 'w…' per window.
const GRAINS: [(&str, char, bool, bool); 8] = [
    ("h", 'h', true, true),
    ("d", 'd', true, true),
    ("m", 'm', true, true),
    ("oh", 'h', false, false),
    ("od", 'd', false, false),
    ("om", 'm', false, false),
    ("wd", 'd', true, false),
    ("wm", 'm', true, false),
];

/// The columns of a finest cell in `stats_pending`, in [`Fine`] order.
const FINE_COLUMNS: &str = "hour_start, day, hour, month, day_start, month_start, org_id, window_id, staff_id, business_type_id, key, polarity";

impl Rollup {
    pub fn add(&mut self, f: Fact) {
        let p = local_parts(f.timezone, f.at);
        let fine = Fine {
            hour_start: p.hour_start,
            day: p.day,
            hour: p.hour,
            month: p.month,
            day_start: p.day_start,
            month_start: p.month_start,
            org_id: f.org_id,
            window_id: f.window_id,
            staff_id: f.staff_id.unwrap_or(0),
            business_type_id: f.business_type_id.unwrap_or(0),
            key: f.key.to_string(),
            polarity: f.polarity.to_string(),
        };
        self.additions.entry(fine).or_default().add(&f.figures);
    }

    /// The additions in every grain of `stats_rollup`.
    pub fn cells(&self) -> BTreeMap<Cell, Figures> {
        let mut cells: BTreeMap<Cell, Figures> = BTreeMap::new();
        for (fine, figures) in &self.additions {
            for (grain, time, window, staff) in GRAINS {
                let (day, hour, bucket) = match time {
                    'h' => (&fine.day, fine.hour, fine.hour_start),
                    'd' => (&fine.day, 0, fine.day_start),
                    _ => (&fine.month, 0, fine.month_start),
                };
                let cell = Cell {
                    grain,
                    day: day.clone(),
                    hour,
                    org_id: fine.org_id,
                    window_id: if window { fine.window_id } else { 0 },
                    staff_id: if staff { fine.staff_id } else { 0 },
                    business_type_id: if staff { fine.business_type_id } else { 0 },
                    key: fine.key.clone(),
                    polarity: fine.polarity.clone(),
                };
                cells
                    .entry(cell)
                    .or_insert(Figures {
                        bucket,
                        ..Figures::default()
                    })
                    .add(figures);
            }
        }
        cells
    }

    /// A counted rating.
    #[allow(clippy::too_many_arguments)]
    pub fn rating(
        &mut self,
        timezone: &str,
        at: Millis,
        org_id: i64,
        window_id: i64,
        staff_id: Option<i64>,
        business_type_id: Option<i64>,
        key: &str,
        polarity: &str,
        with_service: bool,
    ) {
        self.add(Fact {
            timezone,
            at,
            org_id,
            window_id,
            staff_id,
            business_type_id,
            key,
            polarity,
            figures: Figures {
                ratings: 1,
                rated: i64::from(with_service),
                ..Figures::default()
            },
        });
    }

    /// A press kept but not counted, by the rule that removed it.
    pub fn removed(&mut self, timezone: &str, at: Millis, org_id: i64, window_id: i64, rule: &str) {
        let mut figures = Figures::default();
        match RULES.iter().position(|r| *r == rule) {
            Some(i) => figures.removed[i] = 1,
            None => return,
        }
        self.add(Fact {
            timezone,
            at,
            org_id,
            window_id,
            staff_id: None,
            business_type_id: None,
            key: "",
            polarity: "",
            figures,
        });
    }

    /// An ended service.
    #[allow(clippy::too_many_arguments)]
    pub fn service(
        &mut self,
        timezone: &str,
        started_at: Millis,
        ended_at: Millis,
        org_id: i64,
        window_id: i64,
        staff_id: Option<i64>,
        business_type_id: Option<i64>,
        prompted: bool,
    ) {
        let mut hist = [0; HIST];
        hist[rules::handle_bucket(ended_at - started_at)] = 1;
        self.add(Fact {
            timezone,
            at: ended_at,
            org_id,
            window_id,
            staff_id,
            business_type_id,
            key: "",
            polarity: "",
            figures: Figures {
                services: 1,
                handle_ms: (ended_at - started_at).max(0),
                prompted: i64::from(prompted),
                hist,
                ..Figures::default()
            },
        });
    }

    /// A Start that cut short the prompt of the service ended at `ended_at`: that prompt was not
    /// offered after all (the End counted it as offered).
    #[allow(clippy::too_many_arguments)]
    pub fn prompt_cut(
        &mut self,
        timezone: &str,
        ended_at: Millis,
        org_id: i64,
        window_id: i64,
        staff_id: Option<i64>,
        business_type_id: Option<i64>,
    ) {
        self.add(Fact {
            timezone,
            at: ended_at,
            org_id,
            window_id,
            staff_id,
            business_type_id,
            key: "",
            polarity: "",
            figures: Figures {
                prompted: -1,
                ..Figures::default()
            },
        });
    }

    /// An ended duty session: its time at the window, cut at local hour edges, counted in the
    /// hours it covered (business type unknown: 0).
    pub fn duty(
        &mut self,
        timezone: &str,
        started_at: Millis,
        ended_at: Millis,
        org_id: i64,
        window_id: i64,
        staff_id: i64,
    ) {
        for (at, len) in rules::hour_pieces(timezone, started_at, ended_at) {
            self.add(Fact {
                timezone,
                at,
                org_id,
                window_id,
                staff_id: Some(staff_id),
                business_type_id: None,
                key: "",
                polarity: "",
                figures: Figures {
                    duty_ms: len,
                    ..Figures::default()
                },
            });
        }
    }

    /// Appends the additions to `stats_pending` (one statement per 500 cells), inside the caller's
    /// transaction.
    pub async fn write(&self, tx: &mut Transaction<'_, Any>, backend: Backend) -> Result<()> {
        let head = format!(
            "INSERT INTO stats_pending ({FINE_COLUMNS}, {}) VALUES ",
            figure_columns().join(", ")
        );
        write_rows(tx, backend, &head, "", &self.additions, |text, c, f| {
            use std::fmt::Write;
            let _ = write!(text, "{}, ", c.hour_start);
            push_quoted(text, &c.day);
            let _ = write!(text, ", {}, ", c.hour);
            push_quoted(text, &c.month);
            let _ = write!(
                text,
                ", {}, {}, {}, {}, {}, {}, ",
                c.day_start, c.month_start, c.org_id, c.window_id, c.staff_id, c.business_type_id
            );
            push_quoted(text, &c.key);
            text.push_str(", ");
            push_quoted(text, &c.polarity);
            push_values(text, f);
        })
        .await
    }
}

/// Adds `cells` to `stats_rollup` (one statement per 500 cells), inside the caller's transaction.
async fn write_cells(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    cells: &BTreeMap<Cell, Figures>,
) -> Result<()> {
    let head = format!("INSERT INTO stats_rollup (grain, day, hour, org_id, window_id, staff_id, business_type_id, key, polarity, bucket, {}) VALUES ", figure_columns().join(", "));
    let tail = format!("{CELL_CONFLICT}{}", cell_update());
    write_rows(tx, backend, &head, &tail, cells, |text, c, f| {
        use std::fmt::Write;
        push_quoted(text, c.grain);
        text.push_str(", ");
        push_quoted(text, &c.day);
        let _ = write!(
            text,
            ", {}, {}, {}, {}, {}, ",
            c.hour, c.org_id, c.window_id, c.staff_id, c.business_type_id
        );
        push_quoted(text, &c.key);
        text.push_str(", ");
        push_quoted(text, &c.polarity);
        let _ = write!(text, ", {}", f.bucket);
        push_values(text, f);
    })
    .await
}

/// `head`, then a parenthesised row per entry of `rows` (its values written by `push_row`), then
/// `tail`: one statement per 500 rows, inside the caller's transaction. Values are written into
/// the statement rather than bound: binding thousands of values through sqlx's `Any` was most of
/// a batch's time.
async fn write_rows<K, V>(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    head: &str,
    tail: &str,
    rows: &BTreeMap<K, V>,
    push_row: impl Fn(&mut String, &K, &V),
) -> Result<()> {
    let rows: Vec<_> = rows.iter().collect();
    for chunk in rows.chunks(500) {
        let mut text = String::with_capacity(head.len() + tail.len() + 200 * chunk.len());
        text.push_str(head);
        for (n, (k, v)) in chunk.iter().enumerate() {
            text.push_str(if n == 0 { "(" } else { ", (" });
            push_row(&mut text, k, v);
            text.push(')');
        }
        text.push_str(tail);
        Sql::bulk(backend, &text).execute(&mut **tx).await?;
    }
    Ok(())
}

/// `, figure, figure, …` in [`figure_columns`] order.
fn push_values(text: &mut String, f: &Figures) {
    use std::fmt::Write;
    for v in f.values() {
        let _ = write!(text, ", {v}");
    }
}

const CELL_CONFLICT: &str = " ON CONFLICT (grain, day, hour, org_id, window_id, staff_id, business_type_id, key, polarity) DO UPDATE SET ";

/// `figure = stats_rollup.figure + excluded.figure, …`: an upsert adds to a cell.
fn cell_update() -> String {
    figure_columns()
        .iter()
        .map(|c| format!("{c} = stats_rollup.{c} + excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------- fold

/// Pending additions folded in one transaction, about: a fold holds the write lock, and presses
/// wait for it (some 13 ms per 1,000 rows on SQLite at 10 million ratings).
pub const FOLD_ROWS: i64 = 1_000;

/// The outlets with pending additions, in groups of about [`FOLD_ROWS`] rows, each for one
/// [`fold_orgs`].
pub async fn fold_plan(db: &Db) -> Result<Vec<Vec<i64>>> {
    let counts: Vec<(i64, i64)> =
        Sql::new("SELECT org_id, COUNT(*) FROM stats_pending GROUP BY org_id ORDER BY org_id")
            .fetch_all(&db.pool)
            .await?;
    let mut groups: Vec<Vec<i64>> = Vec::new();
    let mut rows = FOLD_ROWS;
    for (org, n) in counts {
        if rows + n > FOLD_ROWS {
            groups.push(Vec::new());
            rows = 0;
        }
        groups.last_mut().expect("pushed").push(org);
        rows += n;
    }
    Ok(groups)
}

/// Moves the pending additions of `orgs` into every grain of `stats_rollup`, inside the caller's
/// transaction: one statement sums them per cell of each grain and adds the sums. On PostgreSQL
/// the rows are claimed by the same statement that deletes them, so that two instances folding
/// at once never fold a row twice.
pub async fn fold_orgs(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    orgs: &[i64],
) -> Result<()> {
    if orgs.is_empty() {
        return Ok(());
    }
    let ids = orgs
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let filter = format!("org_id IN ({ids})");
    let source = match backend {
        Backend::Sqlite => format!("stats_pending WHERE {filter}"),
        Backend::Postgres => "moved".to_string(),
    };
    let sum = |c: &String| format!("CAST(SUM({c}) AS BIGINT)");
    let figures = figure_columns();
    // the rows summed per finest cell once, then each grain from those sums
    let fine = format!(
        "fine AS MATERIALIZED (SELECT {FINE_COLUMNS}, {} FROM {source} GROUP BY {FINE_COLUMNS})",
        figures
            .iter()
            .map(|c| format!("{} AS {c}", sum(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let sums = figures.iter().map(sum).collect::<Vec<_>>().join(", ");
    let arms = GRAINS
        .iter()
        .map(|&(grain, time, window, staff)| {
            let (day, hour, bucket) = match time {
                'h' => ("day", "hour", "hour_start"),
                'd' => ("day", "0", "day_start"),
                _ => ("month", "0", "month_start"),
            };
            let mut group = vec![day];
            if time == 'h' {
                group.push("hour");
            }
            group.push("org_id");
            if window {
                group.push("window_id");
            }
            if staff {
                group.extend(["staff_id", "business_type_id"]);
            }
            group.extend(["key", "polarity"]);
            format!(
                "SELECT '{grain}', {day}, {hour}, org_id, {}, {}, {}, key, polarity, MIN({bucket}), {sums} FROM fine GROUP BY {}",
                if window { "window_id" } else { "0" },
                if staff { "staff_id" } else { "0" },
                if staff { "business_type_id" } else { "0" },
                group.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let insert = format!(
        "INSERT INTO stats_rollup (grain, day, hour, org_id, window_id, staff_id, business_type_id, key, polarity, bucket, {}) SELECT * FROM ({arms}) x",
        figures.join(", ")
    );
    let upsert = match backend {
        // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT
        Backend::Sqlite => format!("WITH {fine} {insert} WHERE true"),
        // in cell order, so that two folds touching the same cells lock them in one order
        Backend::Postgres => format!(
            "WITH moved AS (DELETE FROM stats_pending WHERE {filter} RETURNING *), {fine} {insert} ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
        ),
    };
    Sql::literal(&format!("{upsert}{CELL_CONFLICT}{}", cell_update()))
        .execute(&mut **tx)
        .await?;
    if backend == Backend::Sqlite {
        // the write lock has kept every other writer out since the rows were summed
        Sql::literal(&format!("DELETE FROM stats_pending WHERE {filter}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Folds every pending addition into `stats_rollup`, a group of outlets per transaction.
pub async fn fold_all(db: &Db) -> Result<()> {
    for orgs in fold_plan(db).await? {
        let mut tx = db.begin().await?;
        fold_orgs(&mut tx, db.backend, &orgs).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Adds the duty sessions just ended (ids) to the roll-ups, inside the caller's transaction.
pub(crate) async fn duties_ended(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    ids: &[(i64,)],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = ids.iter().map(|(id,)| *id).collect();
    type D = (String, i64, i64, i64, i64, i64);
    let rows: Vec<D> = Sql::new("SELECT o.timezone, w.org_id, d.window_id, d.staff_id, d.started_at, d.ended_at FROM duties d JOIN windows w ON w.id = d.window_id JOIN orgs o ON o.id = w.org_id WHERE d.ended_at IS NOT NULL AND ")
        .in_ids("d.id", &ids)
        .fetch_all(&mut **tx)
        .await?;
    let mut r = Rollup::default();
    for (tz, org, window, staff, start, end) in &rows {
        r.duty(tz, *start, *end, *org, *window, *staff);
    }
    r.write(tx, backend).await
}

// ---------------------------------------------------------------- rebuild

/// What a rebuild found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildReport {
    /// Cells compared (from raw rows and from the table together).
    pub cells: usize,
    /// Cells whose stored figures differ from the raw rows' (missing or extra cells included).
    pub differences: usize,
    /// The first differences, in words.
    pub examples: Vec<String>,
    /// Cells starting before this moment were left alone: raw rows before it may have been cleaned up.
    pub since: Millis,
    /// Whether the table was rewritten.
    pub rewritten: bool,
}

/// Windows rebuilt together, about: the roll-ups of 10 million ratings did not fit in memory at once.
const REBUILD_WINDOWS: usize = 32;

/// A part of the roll-ups that can be rebuilt on its own: windows and the orgs their raw rows and
/// cells name. Every cell names a window of the part, or (window 0) an org of the part.
#[derive(Debug, Default)]
struct RebuildPart {
    windows: Vec<i64>,
    orgs: Vec<i64>,
}

impl RebuildPart {
    /// `FROM stats_rollup WHERE` the cell starts at or after `since` and belongs to this part.
    fn cells(&self, since: Millis) -> Sql {
        let mut sql = Sql::new("FROM stats_rollup WHERE bucket >= ");
        sql.arg(since).push(" AND (");
        if self.windows.is_empty() {
            sql.push("1 = 0");
        } else {
            sql.in_ids("window_id", &self.windows);
        }
        if !self.orgs.is_empty() {
            sql.push(" OR (window_id = 0 AND ")
                .in_ids("org_id", &self.orgs)
                .push(")");
        }
        sql.push(")");
        sql
    }
}

/// Splits the roll-ups into parts of about `windows_per_part` windows. Windows joined by an org
/// (a window that moved to another outlet, or an outlet's per-outlet cells) stay in one part, so
/// that no cell draws on two parts.
async fn rebuild_parts(
    tx: &mut Transaction<'static, Any>,
    windows_per_part: usize,
) -> Result<Vec<RebuildPart>> {
    let mut pairs: Vec<(i64, i64)> = Sql::new("SELECT id, org_id FROM windows")
        .fetch_all(&mut **tx)
        .await?;
    for table in ["services", "ratings", "stats_rollup", "stats_pending"] {
        pairs.extend(
            Sql::new(&format!(
                "SELECT DISTINCT window_id, org_id FROM {table} WHERE window_id <> 0"
            ))
            .fetch_all::<(i64, i64), _>(&mut **tx)
            .await?,
        );
    }
    let lone_orgs: Vec<(i64,)> =
        Sql::new("SELECT DISTINCT org_id FROM stats_rollup WHERE window_id = 0")
            .fetch_all(&mut **tx)
            .await?;
    // union-find over windows (w) and orgs (o)
    let mut parent: HashMap<(char, i64), (char, i64)> = HashMap::new();
    fn root(parent: &mut HashMap<(char, i64), (char, i64)>, n: (char, i64)) -> (char, i64) {
        let mut r = n;
        while let Some(&p) = parent.get(&r).filter(|p| **p != r) {
            r = p;
        }
        parent.insert(n, r);
        r
    }
    for &(w, o) in &pairs {
        let (a, b) = (root(&mut parent, ('w', w)), root(&mut parent, ('o', o)));
        parent.insert(a, b);
    }
    for &(o,) in &lone_orgs {
        root(&mut parent, ('o', o));
    }
    let nodes: Vec<(char, i64)> = parent.keys().copied().collect();
    let mut groups: BTreeMap<(char, i64), RebuildPart> = BTreeMap::new();
    for n in nodes {
        let g = groups.entry(root(&mut parent, n)).or_default();
        match n.0 {
            'w' => g.windows.push(n.1),
            _ => g.orgs.push(n.1),
        }
    }
    let mut parts = vec![RebuildPart::default()];
    for (_, g) in groups {
        let last = parts.last_mut().expect("one part at least");
        if !last.windows.is_empty() && last.windows.len() + g.windows.len() > windows_per_part {
            parts.push(g);
        } else {
            last.windows.extend(g.windows);
            last.orgs.extend(g.orgs);
        }
    }
    Ok(parts)
}

/// The roll-ups of one part as its raw rows give them, for cells starting at or after `since`.
async fn from_raw(
    tx: &mut Transaction<'static, Any>,
    zones: &HashMap<i64, String>,
    part: &RebuildPart,
    since: Millis,
) -> Result<BTreeMap<Cell, Figures>> {
    let zone = |id: i64| zones.get(&id).map_or("Asia/Shanghai", String::as_str);
    let mut r = Rollup::default();
    if part.windows.is_empty() {
        return Ok(BTreeMap::new());
    }
    type S = (i64, i64, Option<i64>, Option<i64>, i64, i64, Option<i64>);
    // the next Start at the window tells whether the prompt was cut short
    let services: Vec<S> = Sql::new("SELECT s.org_id, s.window_id, s.staff_id, s.business_type_id, s.started_at, s.ended_at, (SELECT MIN(n.started_at) FROM services n WHERE n.window_id = s.window_id AND n.id <> s.id AND n.started_at >= s.ended_at) FROM services s WHERE s.ended_at IS NOT NULL AND ")
        .in_ids("s.window_id", &part.windows)
        .fetch_all(&mut **tx)
        .await?;
    for (org, window, staff, bt, start, end, next) in services {
        r.service(
            zone(org),
            start,
            end,
            org,
            window,
            staff,
            bt,
            rules::prompt_offered(end, next),
        );
    }
    type D = (i64, i64, i64, i64, i64);
    let duties: Vec<D> = Sql::new("SELECT w.org_id, d.window_id, d.staff_id, d.started_at, d.ended_at FROM duties d JOIN windows w ON w.id = d.window_id WHERE d.ended_at IS NOT NULL AND ")
        .in_ids("d.window_id", &part.windows)
        .fetch_all(&mut **tx)
        .await?;
    for (org, window, staff, start, end) in duties {
        r.duty(zone(org), start, end, org, window, staff);
    }
    type R = (
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        String,
        String,
        Option<i64>,
        i64,
    );
    let ratings: Vec<R> = Sql::new("SELECT org_id, window_id, staff_id, business_type_id, key, polarity, service_id, rated_at FROM ratings WHERE ")
        .in_ids("window_id", &part.windows)
        .fetch_all(&mut **tx)
        .await?;
    for (org, window, staff, bt, key, pol, service, at) in &ratings {
        r.rating(
            zone(*org),
            *at,
            *org,
            *window,
            *staff,
            *bt,
            key,
            pol,
            service.is_some(),
        );
    }
    type P = (i64, i64, Option<String>, i64);
    let removed: Vec<P> = Sql::new("SELECT w.org_id, p.window_id, p.reason, COALESCE(p.effective_at, p.received_at) FROM presses p JOIN windows w ON w.id = p.window_id WHERE p.counted = 0 AND ")
        .in_ids("p.window_id", &part.windows)
        .fetch_all(&mut **tx)
        .await?;
    for (org, window, reason, at) in &removed {
        if let Some(reason) = reason {
            r.removed(zone(*org), *at, *org, *window, reason);
        }
    }
    let mut cells = r.cells();
    cells.retain(|_, f| f.bucket >= since);
    Ok(cells)
}

/// The roll-up cells of one part as stored, its pending additions included, for cells starting
/// at or after `since`.
async fn stored(
    tx: &mut Transaction<'static, Any>,
    part: &RebuildPart,
    since: Millis,
) -> Result<BTreeMap<Cell, Figures>> {
    type Keys = (String, String, i64, i64, i64, i64, i64, String, String, i64);
    let rows: Vec<Keys> = part
        .cells(since)
        .wrapped(
            "SELECT grain, day, hour, org_id, window_id, staff_id, business_type_id, key, polarity, bucket ",
            " ORDER BY id",
        )
        .fetch_all(&mut **tx)
        .await?;
    let figures: Vec<Nums> = part
        .cells(since)
        .wrapped(
            &format!("SELECT {} ", figure_columns().join(", ")),
            " ORDER BY id",
        )
        .fetch_all(&mut **tx)
        .await?;
    let mut pending = Rollup::default();
    if !part.windows.is_empty() {
        type F = (
            i64,
            String,
            i64,
            String,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            String,
            String,
        );
        let pending_sql = |columns: &str| {
            let mut sql = Sql::new(&format!("SELECT {columns} FROM stats_pending WHERE "));
            sql.in_ids("window_id", &part.windows).push(" ORDER BY id");
            sql
        };
        let fine: Vec<F> = pending_sql(FINE_COLUMNS).fetch_all(&mut **tx).await?;
        let figures: Vec<Nums> = pending_sql(&figure_columns().join(", "))
            .fetch_all(&mut **tx)
            .await?;
        for (c, f) in fine.into_iter().zip(figures) {
            let fine = Fine {
                hour_start: c.0,
                day: c.1,
                hour: c.2,
                month: c.3,
                day_start: c.4,
                month_start: c.5,
                org_id: c.6,
                window_id: c.7,
                staff_id: c.8,
                business_type_id: c.9,
                key: c.10,
                polarity: c.11,
            };
            pending
                .additions
                .entry(fine)
                .or_default()
                .add(&Figures::from_values(0, &f.0));
        }
    }
    let mut cells = BTreeMap::new();
    for (c, f) in rows.into_iter().zip(figures) {
        let Some(grain) = GRAINS.iter().map(|g| g.0).find(|g| *g == c.0) else {
            continue;
        };
        cells.insert(
            Cell {
                grain,
                day: c.1,
                hour: c.2,
                org_id: c.3,
                window_id: c.4,
                staff_id: c.5,
                business_type_id: c.6,
                key: c.7,
                polarity: c.8,
            },
            Figures::from_values(c.9, &f.0),
        );
    }
    for (c, f) in pending.cells() {
        if f.bucket >= since {
            cells
                .entry(c)
                .or_insert(Figures {
                    bucket: f.bucket,
                    ..Figures::default()
                })
                .add(&f);
        }
    }
    Ok(cells)
}

/// A row of numbers (BIGINT columns), read by position.
struct Nums(Vec<i64>);

impl sqlx::FromRow<'_, sqlx::any::AnyRow> for Nums {
    fn from_row(row: &sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        use sqlx::Row;
        (0..row.len())
            .map(|i| row.try_get::<i64, _>(i))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Nums)
    }
}

/// A grouped aggregate: group, key, polarity, then the figures in [`figure_columns`] order.
struct Agg {
    group: String,
    key: String,
    polarity: String,
    figures: Figures,
}

impl sqlx::FromRow<'_, sqlx::any::AnyRow> for Agg {
    fn from_row(row: &sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        use sqlx::Row;
        let v = (3..row.len())
            .map(|i| row.try_get::<i64, _>(i))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Agg {
            group: row.try_get(0)?,
            key: row.try_get(1)?,
            polarity: row.try_get(2)?,
            figures: Figures::from_values(0, &v),
        })
    }
}

/// Recomputes the roll-ups from raw rows and compares them with the table; unless `check_only`,
/// rewrites the differing cells. Cells before the latest cleanup's cut-off are left alone: their
/// raw rows may be gone while the roll-ups were kept.
pub async fn rebuild(db: &Db, check_only: bool) -> Result<RebuildReport> {
    rebuild_in_parts(db, check_only, REBUILD_WINDOWS).await
}

/// [`rebuild`], with parts of about `windows_per_part` windows.
pub async fn rebuild_in_parts(
    db: &Db,
    check_only: bool,
    windows_per_part: usize,
) -> Result<RebuildReport> {
    let since: Millis = Sql::new("SELECT COALESCE(MAX(cutoff_at), 0) FROM cleanup_runs")
        .fetch_i64(&db.pool)
        .await?;
    let zones: HashMap<i64, String> = Sql::new("SELECT id, timezone FROM orgs")
        .fetch_all::<(i64, String), _>(&db.pool)
        .await?
        .into_iter()
        .collect();
    let mut report = RebuildReport {
        since,
        ..RebuildReport::default()
    };
    let parts = rebuild_parts(&mut db.read().await?, windows_per_part).await?;
    for (n, part) in parts.iter().enumerate() {
        // a part is read and rewritten in one transaction, so that presses recorded meanwhile are
        // neither missed nor counted twice; a check only reads, from one snapshot
        let mut tx = if check_only {
            db.snapshot().await?
        } else {
            db.begin().await?
        };
        if !check_only {
            // the part's pending additions first, so that a rewrite leaves none behind
            fold_orgs(&mut tx, db.backend, &part.orgs).await?;
        }
        let raw = from_raw(&mut tx, &zones, part, since).await?;
        let have = stored(&mut tx, part, since).await?;
        let keys: HashSet<&Cell> = raw.keys().chain(have.keys()).collect();
        report.cells += keys.len();
        let mut keys: Vec<&Cell> = keys.into_iter().collect();
        keys.sort();
        let zero = Figures::default();
        let mut differences = 0;
        for c in keys {
            let a = raw.get(c).unwrap_or(&zero);
            let b = have.get(c).unwrap_or(&zero);
            if !a.same_counts(b) {
                differences += 1;
                if report.examples.len() < 20 {
                    report.examples.push(format!(
                        "{} {} hour {} outlet {} window {} staff {} type {} key '{}': raw {:?}, roll-up {:?}",
                        c.grain, c.day, c.hour, c.org_id, c.window_id, c.staff_id, c.business_type_id, c.key,
                        a.values(),
                        b.values(),
                    ));
                }
            }
        }
        report.differences += differences;
        if !check_only && differences > 0 {
            part.cells(since)
                .wrapped("DELETE ", "")
                .execute(&mut *tx)
                .await?;
            write_cells(&mut tx, db.backend, &raw).await?;
            tx.commit().await?;
            report.rewritten = true;
        }
        tracing::info!(
            part = n + 1,
            parts = parts.len(),
            windows = part.windows.len(),
            differences,
            "roll-ups compared with the raw rows"
        );
    }
    Ok(report)
}

// ---------------------------------------------------------------- queries

/// A statistics request, as the API and the page take it.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    pub org_id: i64,
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub group_by: GroupBy,
    /// Also answer for the previous period and the same period last year.
    pub compare: bool,
    /// Only this window (drill-down from a window to its staff).
    pub window_id: Option<i64>,
    /// Only this staff member.
    pub staff_id: Option<i64>,
}

/// The narrowing a period read applies besides the org subtree.
#[derive(Debug, Clone, Copy, Default)]
struct Narrow {
    window_id: Option<i64>,
    staff_id: Option<i64>,
}

/// One row (or the total) of a statistics answer.
#[derive(Debug, Clone, Serialize, ToSchema, Default)]
pub struct StatsRow {
    /// The group: an id (org, outlet, window, staff, business type; 0 = none), an hour 0–23,
    /// a date, a month `YYYY-MM`, a week's Monday, a weekday 1–7 (Monday 1) or `weekday-hour`.
    #[schema(value_type = Object)]
    pub key: Value,
    pub label: String,
    /// Ended services (客流量).
    pub services: i64,
    /// Services with a counted rating.
    pub rated: i64,
    /// Counted ratings, bare presses included.
    pub ratings: i64,
    pub counts: BTreeMap<String, i64>,
    pub positive: i64,
    pub neutral: i64,
    pub negative: i64,
    /// positive / ratings; null when there are none.
    pub satisfaction_rate: Option<f64>,
    /// rated / services (参评率); null when no service ended.
    pub rating_rate: Option<f64>,
    pub avg_handle_seconds: Option<f64>,
    /// Presses kept but not counted, per suppression rule.
    pub removed: BTreeMap<String, i64>,
    /// The lower bound of the 95% Wilson interval on the satisfaction rate: the fair ranking figure.
    pub satisfaction_lower_bound: Option<f64>,
    /// Rank by `satisfaction_lower_bound` (staff grouping only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<i64>,
    /// Ended services whose rating prompt was offered, i.e. not cut short by a Start within
    /// 3 s of the End.
    pub prompts_offered: i64,
    /// prompts_offered / services (提示覆盖率); null when no service ended.
    pub prompt_coverage: Option<f64>,
    /// The 90th percentile of handling time in seconds, rounded up to the edge of its
    /// histogram bucket (30 s wide up to 2 min, 60 s up to 5 min, then wider; 7200 = "2 h or more").
    pub p90_handle_seconds: Option<f64>,
    /// Time signed in at windows (上柜时间), in hours; counted once the duty session has ended.
    pub on_duty_hours: f64,
    /// services / on_duty_hours (效率); null without on-duty time.
    pub services_per_hour: Option<f64>,
    /// Serving time / open time (窗口繁忙度): the summed handling time of ended services over
    /// the on-duty time at the windows; null without on-duty time.
    pub busyness: Option<f64>,
    #[serde(skip)]
    handle_ms: i64,
    #[serde(skip)]
    duty_ms: i64,
    #[serde(skip)]
    hist: [i64; HIST],
}

impl StatsRow {
    fn add(&mut self, key: &str, polarity: &str, f: &Figures) {
        self.services += f.services;
        self.handle_ms += f.handle_ms;
        self.rated += f.rated;
        if !key.is_empty() {
            self.ratings += f.ratings;
            *self.counts.entry(key.to_string()).or_default() += f.ratings;
            match polarity {
                "positive" => self.positive += f.ratings,
                "neutral" => self.neutral += f.ratings,
                "negative" => self.negative += f.ratings,
                _ => {}
            }
        }
        for (i, r) in RULES.iter().enumerate() {
            if f.removed[i] != 0 {
                *self.removed.entry(r.to_string()).or_default() += f.removed[i];
            }
        }
        self.prompts_offered += f.prompted;
        self.duty_ms += f.duty_ms;
        for i in 0..HIST {
            self.hist[i] += f.hist[i];
        }
    }

    fn finish(&mut self) {
        let rate = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
        self.satisfaction_rate = rate(self.positive, self.ratings);
        self.rating_rate = rate(self.rated, self.services);
        self.avg_handle_seconds =
            (self.services > 0).then(|| self.handle_ms as f64 / 1000.0 / self.services as f64);
        self.satisfaction_lower_bound = wilson_lower_bound(self.positive, self.ratings);
        self.prompt_coverage = rate(self.prompts_offered, self.services);
        self.p90_handle_seconds = rules::histogram_quantile(&self.hist, 0.9);
        self.on_duty_hours = self.duty_ms as f64 / 3_600_000.0;
        self.services_per_hour =
            (self.duty_ms > 0).then(|| self.services as f64 / self.on_duty_hours);
        self.busyness = (self.duty_ms > 0).then(|| self.handle_ms as f64 / self.duty_ms as f64);
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsPeriod {
    pub from: String,
    pub to: String,
    pub rows: Vec<StatsRow>,
    pub total: StatsRow,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsCompare {
    pub previous: StatsPeriod,
    pub last_year: StatsPeriod,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsAnswer {
    pub org_id: i64,
    pub org_name: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub group_by: String,
    pub rows: Vec<StatsRow>,
    pub total: StatsRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<StatsCompare>,
}

/// The org a statistics request is about, within the caller's stats.view reach: (path, name, tz).
pub async fn org_in_reach(
    db: &Db,
    scope: &Scope,
    permission: &'static str,
    org_id: i64,
) -> Result<(OrgPath, String, String)> {
    if !scope.has(permission) {
        return Err(StoreError::Forbidden(permission));
    }
    let mut sql = Sql::new("SELECT path, name, timezone FROM orgs WHERE id = ");
    sql.arg(org_id)
        .push(" AND ")
        .reach("path", &scope.reach(permission));
    let (path, name, tz): (String, String, String) = sql
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let path = OrgPath::parse(&path).ok_or(StoreError::NotFound)?;
    Ok((path, name, tz))
}

/// The orgs the caller's statistics reach (for the page's org picker), parents before children:
/// (id, name, depth below the shallowest one). At most 5,000.
pub async fn orgs_in_reach(db: &Db, scope: &Scope) -> Result<Vec<(i64, String, usize)>> {
    if !scope.has("stats.view") {
        return Err(StoreError::Forbidden("stats.view"));
    }
    let mut sql = Sql::new("SELECT id, name, path FROM orgs WHERE ");
    sql.reach("path", &scope.reach("stats.view"))
        .push(" ORDER BY path LIMIT 5000");
    let rows: Vec<(i64, String, String)> = sql.fetch_all(&db.pool).await?;
    let depth = |p: &str| p.matches('/').count();
    let top = rows.iter().map(|r| depth(&r.2)).min().unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|(id, name, path)| (id, name, depth(&path) - top))
        .collect())
}

/// The statistics a request asks for, read from roll-ups, within the caller's stats.view reach.
pub async fn evaluation(db: &Db, scope: &Scope, q: &StatsQuery) -> Result<StatsAnswer> {
    rules::check_range(q.from, q.to)?;
    let (path, org_name, timezone) = org_in_reach(db, scope, "stats.view", q.org_id).await?;
    let reach = scope.reach("stats.view");
    let narrow = Narrow {
        window_id: q.window_id,
        staff_id: q.staff_id,
    };
    answer(db, &reach, Some(&path), narrow, q, org_name, timezone).await
}

/// A staff member's own figures (his page): every rating and service that names him, wherever he
/// served, with stats.view at any data level. `org_id` in the answer is 0.
pub async fn own(db: &Db, scope: &Scope, q: &StatsQuery) -> Result<StatsAnswer> {
    rules::check_range(q.from, q.to)?;
    if !scope.has("stats.view") {
        return Err(StoreError::Forbidden("stats.view"));
    }
    let (name, timezone): (String, String) =
        Sql::new("SELECT u.name, o.timezone FROM users u JOIN orgs o ON o.path = ")
            .arg(scope.org_path.as_str())
            .push(" WHERE u.id = ")
            .arg(scope.user_id)
            .fetch_optional(&db.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
    let narrow = Narrow {
        window_id: None,
        staff_id: Some(scope.user_id),
    };
    let q = StatsQuery {
        org_id: 0,
        ..q.clone()
    };
    answer(db, &Reach::Everything, None, narrow, &q, name, timezone).await
}

async fn answer(
    db: &Db,
    reach: &Reach,
    path: Option<&OrgPath>,
    narrow: Narrow,
    q: &StatsQuery,
    org_name: String,
    timezone: String,
) -> Result<StatsAnswer> {
    let (rows, total) = period(db, reach, path, narrow, q.from, q.to, q.group_by).await?;
    let compare = if q.compare {
        let (pf, pt) = rules::previous_period(q.from, q.to);
        let (lf, lt) = rules::last_year(q.from, q.to);
        let (prows, ptotal) = period(db, reach, path, narrow, pf, pt, q.group_by).await?;
        let (lrows, ltotal) = period(db, reach, path, narrow, lf, lt, q.group_by).await?;
        Some(StatsCompare {
            previous: StatsPeriod {
                from: pf.to_string(),
                to: pt.to_string(),
                rows: prows,
                total: ptotal,
            },
            last_year: StatsPeriod {
                from: lf.to_string(),
                to: lt.to_string(),
                rows: lrows,
                total: ltotal,
            },
        })
    } else {
        None
    };
    Ok(StatsAnswer {
        org_id: q.org_id,
        org_name,
        timezone,
        from: q.from.to_string(),
        to: q.to.to_string(),
        group_by: q.group_by.code().to_string(),
        rows,
        total,
        compare,
    })
}

fn month_end(first: chrono::NaiveDate) -> chrono::NaiveDate {
    first
        .checked_add_months(chrono::Months::new(1))
        .expect("in range")
        - chrono::Duration::days(1)
}

async fn period(
    db: &Db,
    reach: &Reach,
    path: Option<&OrgPath>,
    narrow: Narrow,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    group_by: GroupBy,
) -> Result<(Vec<StatsRow>, StatsRow)> {
    use chrono::Datelike;
    let g = match group_by {
        GroupBy::Org | GroupBy::Outlet => "CAST(x.org_id AS TEXT)",
        GroupBy::Window => "CAST(x.window_id AS TEXT)",
        GroupBy::Staff => "CAST(x.staff_id AS TEXT)",
        GroupBy::BusinessType => "CAST(x.business_type_id AS TEXT)",
        GroupBy::Hour => "CAST(x.hour AS TEXT)",
        GroupBy::Month => "substr(x.day, 1, 7)",
        GroupBy::Day | GroupBy::Week | GroupBy::Weekday => "x.day",
        GroupBy::WeekdayHour => "x.day || ' ' || CAST(x.hour AS TEXT)",
        GroupBy::None => "''",
    };
    let sums = figure_columns()
        .iter()
        .map(|c| format!("CAST(SUM(x.{c}) AS BIGINT)"))
        .collect::<Vec<_>>()
        .join(", ");
    let head = |table: &str| {
        Sql::new(&format!("SELECT {g}, x.key, x.polarity, {sums} FROM {table} x JOIN orgs o ON o.id = x.org_id WHERE "))
    };
    let mut sql = head("stats_rollup");
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    // additions not folded yet, at the finest cell: by their day alone
    let mut pending = head("stats_pending");
    pending
        .push("x.day >= ")
        .arg(day(from))
        .push(" AND x.day <= ")
        .arg(day(to));
    // the narrowest cells that still hold what the request asks for
    let family = if narrow.window_id.is_some()
        || narrow.staff_id.is_some()
        || matches!(group_by, GroupBy::Staff | GroupBy::BusinessType)
    {
        ""
    } else if group_by == GroupBy::Window {
        "w"
    } else {
        "o"
    };
    let grain = |time: &str| format!("{family}{time}");
    if group_by.needs_hours() {
        sql.push("x.grain = ")
            .arg(grain("h"))
            .push(" AND x.day >= ")
            .arg(day(from))
            .push(" AND x.day <= ")
            .arg(day(to));
    } else {
        // whole months inside the range from the month rows, the edges from day rows
        let first_full = if from.day() == 1 {
            from
        } else {
            month_end(from.with_day(1).expect("day 1")) + chrono::Duration::days(1)
        };
        let last_full_start = {
            let m = to.with_day(1).expect("day 1");
            if month_end(m) == to {
                Some(m)
            } else {
                m.checked_sub_months(chrono::Months::new(1))
            }
        };
        let months = !matches!(group_by, GroupBy::Day | GroupBy::Week | GroupBy::Weekday)
            && last_full_start.is_some_and(|l| l >= first_full);
        if months {
            let l = last_full_start.expect("checked");
            sql.push("((x.grain = ")
                .arg(grain("m"))
                .push(" AND x.day >= ")
                .arg(day(first_full))
                .push(" AND x.day <= ")
                .arg(day(l))
                .push(") OR (x.grain = ")
                .arg(grain("d"))
                .push(" AND ((x.day >= ")
                .arg(day(from))
                .push(" AND x.day < ")
                .arg(day(first_full))
                .push(") OR (x.day > ")
                .arg(day(month_end(l)))
                .push(" AND x.day <= ")
                .arg(day(to))
                .push("))))");
        } else {
            sql.push("x.grain = ")
                .arg(grain("d"))
                .push(" AND x.day >= ")
                .arg(day(from))
                .push(" AND x.day <= ")
                .arg(day(to));
        }
    }
    for sql in [&mut sql, &mut pending] {
        if let Some(path) = path {
            let (lo, hi) = path.subtree_range();
            sql.push(" AND (o.path = ")
                .arg(path.as_str())
                .push(" OR (o.path >= ")
                .arg(lo)
                .push(" AND o.path < ")
                .arg(hi)
                .push("))");
        }
        if let Some(w) = narrow.window_id {
            sql.push(" AND x.window_id = ").arg(w);
        }
        if let Some(s) = narrow.staff_id {
            sql.push(" AND x.staff_id = ").arg(s);
        }
        sql.push(" AND ")
            .reach("o.path", reach)
            .push(&if group_by == GroupBy::None {
                // PostgreSQL refuses a constant in GROUP BY
                " GROUP BY x.key, x.polarity".to_string()
            } else {
                format!(" GROUP BY {g}, x.key, x.polarity")
            });
    }
    // one snapshot, so that a fold between the two reads neither hides nor doubles a row
    let mut tx = db.snapshot().await?;
    let mut agg: Vec<Agg> = sql.fetch_all(&mut *tx).await?;
    agg.extend(pending.fetch_all::<Agg, _>(&mut *tx).await?);
    tx.commit().await?;

    // org grouping: each outlet to the requested org's child above it
    let mut child_of: HashMap<i64, i64> = HashMap::new();
    if let (GroupBy::Org, Some(path)) = (group_by, path) {
        let ids: Vec<i64> = agg
            .iter()
            .filter_map(|a| a.group.parse().ok())
            .collect::<HashSet<i64>>()
            .into_iter()
            .collect();
        if !ids.is_empty() {
            let paths: Vec<(i64, String)> = Sql::new("SELECT id, path FROM orgs WHERE ")
                .in_ids("id", &ids)
                .fetch_all(&db.pool)
                .await?;
            for (id, p) in paths {
                let rest = p.strip_prefix(path.as_str()).unwrap_or("");
                let child = rest
                    .split('/')
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| {
                        path.as_str()
                            .trim_end_matches('/')
                            .rsplit('/')
                            .next()
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(id)
                    });
                child_of.insert(id, child);
            }
        }
    }

    let mut groups: BTreeMap<String, StatsRow> = BTreeMap::new();
    let mut total = StatsRow {
        key: Value::Null,
        label: String::new(),
        ..StatsRow::default()
    };
    for a in &agg {
        let f = a.figures;
        total.add(&a.key, &a.polarity, &f);
        let (sort, key) = group_key(group_by, &a.group, &child_of);
        if group_by == GroupBy::None {
            continue;
        }
        let row = groups.entry(sort).or_insert_with(|| StatsRow {
            key,
            ..StatsRow::default()
        });
        row.add(&a.key, &a.polarity, &f);
    }
    total.finish();
    let mut rows: Vec<StatsRow> = groups.into_values().collect();
    if group_by == GroupBy::None {
        rows.push(StatsRow {
            key: Value::Null,
            label: String::new(),
            ..total.clone()
        });
    }
    for r in &mut rows {
        r.finish();
    }
    label_rows(db, group_by, &mut rows).await?;
    if group_by == GroupBy::Staff {
        // fair ranking: the Wilson lower bound, then volume; rows without ratings last
        rows.sort_by(|a, b| {
            b.satisfaction_lower_bound
                .unwrap_or(-1.0)
                .total_cmp(&a.satisfaction_lower_bound.unwrap_or(-1.0))
                .then(b.ratings.cmp(&a.ratings))
        });
        for (i, r) in rows.iter_mut().enumerate() {
            r.rank = r.satisfaction_lower_bound.map(|_| i as i64 + 1);
        }
    }
    Ok((rows, total))
}

/// (sort key, answer key) of a group.
fn group_key(group_by: GroupBy, g: &str, child_of: &HashMap<i64, i64>) -> (String, Value) {
    use chrono::Datelike;
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    match group_by {
        GroupBy::Org => {
            let id: i64 = g.parse().unwrap_or(0);
            let c = child_of.get(&id).copied().unwrap_or(id);
            (format!("{c:020}"), json!(c))
        }
        GroupBy::Outlet | GroupBy::Window | GroupBy::Staff | GroupBy::BusinessType => {
            let id: i64 = g.parse().unwrap_or(0);
            (format!("{id:020}"), json!(id))
        }
        GroupBy::Hour => {
            let h: i64 = g.parse().unwrap_or(0);
            (format!("{h:02}"), json!(h))
        }
        GroupBy::Day | GroupBy::Month => (g.to_string(), json!(g)),
        GroupBy::Week => {
            let w = date(g)
                .map(rules::week_start)
                .map(|d| d.to_string())
                .unwrap_or_default();
            (w.clone(), json!(w))
        }
        GroupBy::Weekday => {
            let n = date(g).map_or(0, |d| d.weekday().number_from_monday());
            (n.to_string(), json!(n))
        }
        GroupBy::WeekdayHour => {
            let mut it = g.split(' ');
            let n = it
                .next()
                .and_then(date)
                .map_or(0, |d| d.weekday().number_from_monday());
            let h: i64 = it.next().and_then(|h| h.parse().ok()).unwrap_or(0);
            let k = format!("{n}-{h:02}");
            (k.clone(), json!(k))
        }
        GroupBy::None => (String::new(), Value::Null),
    }
}

async fn label_rows(db: &Db, group_by: GroupBy, rows: &mut [StatsRow]) -> Result<()> {
    let table = match group_by {
        GroupBy::Org | GroupBy::Outlet => "orgs",
        GroupBy::Window => "windows",
        GroupBy::Staff => "users",
        GroupBy::BusinessType => "business_types",
        _ => {
            for r in rows.iter_mut() {
                r.label = match &r.key {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
            }
            return Ok(());
        }
    };
    let ids: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.key.as_i64())
        .filter(|id| *id != 0)
        .collect();
    let mut names: HashMap<i64, String> = HashMap::new();
    if !ids.is_empty() {
        for (id, name) in Sql::new(&format!("SELECT id, name FROM {table} WHERE "))
            .in_ids("id", &ids)
            .fetch_all::<(i64, String), _>(&db.pool)
            .await?
        {
            names.insert(id, name);
        }
    }
    for r in rows.iter_mut() {
        let id = r.key.as_i64().unwrap_or(0);
        r.label = names.get(&id).cloned().unwrap_or_else(|| {
            if id == 0 {
                "—".to_string()
            } else {
                format!("#{id}")
            }
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- export

/// The statistics table as an xlsx workbook (输出Excel): the filters in the header rows, then one
/// row per group and the total, numbers as numbers. Needs stats.export besides stats.view; obeys
/// scope like the answer itself; recorded in the audit log.
pub async fn export_xlsx(db: &Db, scope: &Scope, q: &StatsQuery) -> Result<(StatsAnswer, Vec<u8>)> {
    if !scope.has("stats.export") {
        return Err(StoreError::Forbidden("stats.export"));
    }
    let answer = evaluation(
        db,
        scope,
        &StatsQuery {
            compare: false,
            ..q.clone()
        },
    )
    .await?;
    let xlsx = |e: rust_xlsxwriter::XlsxError| {
        StoreError::Database(sqlx::Error::Protocol(format!("xlsx: {e}")))
    };
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("统计").map_err(xlsx)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let pct = rust_xlsxwriter::Format::new().set_num_format("0.0%");
    let filters = [
        (
            "机构 org",
            format!("{} (#{})", answer.org_name, answer.org_id),
        ),
        ("期间 period", format!("{} – {}", answer.from, answer.to)),
        ("分组 group_by", answer.group_by.clone()),
        ("时区 time zone", answer.timezone.clone()),
    ];
    for (i, (k, v)) in filters.iter().enumerate() {
        sheet
            .write_string_with_format(i as u32, 0, *k, &bold)
            .map_err(xlsx)?;
        sheet.write_string(i as u32, 1, v).map_err(xlsx)?;
    }
    let mut keys: Vec<String> = answer.total.counts.keys().cloned().collect();
    keys.sort();
    let mut headers: Vec<String> = [
        "分组 key",
        "名称 label",
        "服务 services",
        "参评 rated",
        "评价 ratings",
        "满意 positive",
        "一般 neutral",
        "不满意 negative",
        "满意率 satisfaction_rate",
        "参评率 rating_rate",
        "平均办理秒 avg_handle_seconds",
        "公平排名值 lower_bound",
        "提示覆盖率 prompt_coverage",
        "90%办理秒 p90_handle_seconds",
        "上柜小时 on_duty_hours",
        "每小时服务 services_per_hour",
        "窗口繁忙度 busyness",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    headers.extend(keys.iter().cloned());
    let head = filters.len() as u32 + 1;
    for (i, h) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(head, i as u16, h, &bold)
            .map_err(xlsx)?;
        sheet
            .set_column_width(i as u16, if i == 1 { 24 } else { 14 })
            .map_err(xlsx)?;
    }
    let total = StatsRow {
        key: Value::String("合计 total".into()),
        label: "合计 total".into(),
        ..answer.total.clone()
    };
    for (n, row) in answer
        .rows
        .iter()
        .chain(std::iter::once(&total))
        .enumerate()
    {
        let r = head + 1 + n as u32;
        match &row.key {
            Value::Number(v) => {
                sheet
                    .write_number(r, 0, v.as_f64().unwrap_or(0.0))
                    .map_err(xlsx)?;
            }
            Value::String(s) => {
                sheet.write_string(r, 0, s).map_err(xlsx)?;
            }
            _ => {}
        }
        sheet.write_string(r, 1, &row.label).map_err(xlsx)?;
        for (c, v) in [
            row.services,
            row.rated,
            row.ratings,
            row.positive,
            row.neutral,
            row.negative,
        ]
        .iter()
        .enumerate()
        {
            sheet
                .write_number(r, 2 + c as u16, *v as f64)
                .map_err(xlsx)?;
        }
        for (c, v) in [row.satisfaction_rate, row.rating_rate].iter().enumerate() {
            if let Some(v) = v {
                sheet
                    .write_number_with_format(r, 8 + c as u16, *v, &pct)
                    .map_err(xlsx)?;
            }
        }
        if let Some(v) = row.avg_handle_seconds {
            sheet.write_number(r, 10, v).map_err(xlsx)?;
        }
        if let Some(v) = row.satisfaction_lower_bound {
            sheet.write_number(r, 11, v).map_err(xlsx)?;
        }
        if let Some(v) = row.prompt_coverage {
            sheet
                .write_number_with_format(r, 12, v, &pct)
                .map_err(xlsx)?;
        }
        if let Some(v) = row.p90_handle_seconds {
            sheet.write_number(r, 13, v).map_err(xlsx)?;
        }
        sheet.write_number(r, 14, row.on_duty_hours).map_err(xlsx)?;
        if let Some(v) = row.services_per_hour {
            sheet.write_number(r, 15, v).map_err(xlsx)?;
        }
        if let Some(v) = row.busyness {
            sheet
                .write_number_with_format(r, 16, v, &pct)
                .map_err(xlsx)?;
        }
        for (c, k) in keys.iter().enumerate() {
            let v = row.counts.get(k).copied().unwrap_or(0);
            sheet
                .write_number(r, 17 + c as u16, v as f64)
                .map_err(xlsx)?;
        }
    }
    let bytes = book.save_to_buffer().map_err(xlsx)?;
    crate::audit::record(
        &db.pool,
        scope.into(),
        crate::audit::Entry {
            org_path: scope.org_path.as_str(),
            action: "stats.export",
            entity: "org",
            entity_id: Some(answer.org_id),
            summary: format!(
                "evaluation statistics of {} exported: {} – {}, by {}, {} rows",
                answer.org_name,
                answer.from,
                answer.to,
                answer.group_by,
                answer.rows.len()
            ),
            changes: None,
        },
    )
    .await?;
    Ok((answer, bytes))
}

/// The rows an export of individual ratings holds at most (a sheet holds 1,048,576).
pub const RATINGS_EXPORT_MAX: usize = 1_000_000;

/// The individual ratings behind a statistics cell as an xlsx workbook (the drill-down page's
/// filters, all pages of it): read 10,000 rows at a time in the caller's stats.view reach and
/// written through a constant-memory sheet, so memory stays flat however many rows there are.
/// Times are in the time zone of the filter's org (or the caller's); negative reasons and phones
/// only for roles with negative.view, phones masked without phone.view, as on the page. Needs
/// stats.export; recorded in the audit log. Answers the row count and the file.
pub async fn export_ratings_xlsx(
    db: &Db,
    scope: &Scope,
    filter: &crate::evaluation::RatingFilter,
) -> Result<(usize, Vec<u8>)> {
    if !scope.has("stats.export") {
        return Err(StoreError::Forbidden("stats.export"));
    }
    let org = match filter.org_id {
        Some(id) => {
            let (_, name, tz) = org_in_reach(db, scope, "stats.view", id).await?;
            Some((id, name, tz))
        }
        None => None,
    };
    let timezone = match &org {
        Some((_, _, tz)) => tz.clone(),
        None => Sql::new("SELECT timezone FROM orgs WHERE path = ")
            .arg(scope.org_path.as_str())
            .fetch_optional::<(String,), _>(&db.pool)
            .await?
            .map_or_else(|| "Asia/Shanghai".to_string(), |t| t.0),
    };
    let name_of = |table: &'static str, id: Option<i64>| async move {
        let Some(id) = id else {
            return Ok::<_, StoreError>(String::new());
        };
        let name: Option<(String,)> = Sql::new(&format!("SELECT name FROM {table} WHERE id = "))
            .arg(id)
            .fetch_optional(&db.pool)
            .await?;
        Ok(format!("{} (#{id})", name.map(|n| n.0).unwrap_or_default()))
    };
    let day = |ms: Option<Millis>| {
        ms.map(|t| rules::local_datetime(&timezone, t).date().to_string())
            .unwrap_or_default()
    };
    let filters = [
        (
            "机构 org",
            org.as_ref()
                .map(|(id, name, _)| format!("{name} (#{id})"))
                .unwrap_or_default(),
        ),
        ("窗口 window", name_of("windows", filter.window_id).await?),
        ("员工 staff", name_of("users", filter.staff_id).await?),
        ("评价 polarity", filter.polarity.clone().unwrap_or_default()),
        (
            "期间 period",
            format!(
                "{} – {}",
                day(filter.from_ms),
                day(filter.to_ms.map(|t| t - 1))
            ),
        ),
        ("时区 time zone", timezone.clone()),
    ];
    let details = scope.has("negative.view");
    let mut headers = vec![
        "编号 id",
        "服务 service_id",
        "时间 rated_at",
        "机构 org",
        "窗口 window",
        "员工 staff",
        "选项 option",
        "键 key",
        "倾向 polarity",
    ];
    if details {
        headers.extend(["不满意原因 negative_reason", "电话 phone"]);
    }

    let xlsx = |e: rust_xlsxwriter::XlsxError| {
        StoreError::Database(sqlx::Error::Protocol(format!("xlsx: {e}")))
    };
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet_with_constant_memory().map_err(xlsx)?;
    sheet.set_name("评价 ratings").map_err(xlsx)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let when = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    // widths first: a constant-memory sheet writes its rows out as it goes
    for (i, w) in [10, 10, 20, 20, 16, 12, 14, 18, 10, 24, 16]
        .iter()
        .take(headers.len())
        .enumerate()
    {
        sheet.set_column_width(i as u16, *w).map_err(xlsx)?;
    }
    for (i, (k, v)) in filters.iter().enumerate() {
        sheet
            .write_string_with_format(i as u32, 0, *k, &bold)
            .map_err(xlsx)?;
        sheet.write_string(i as u32, 1, v).map_err(xlsx)?;
    }
    let head = filters.len() as u32 + 1;
    for (i, h) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(head, i as u16, *h, &bold)
            .map_err(xlsx)?;
    }
    // Excel's day number of 1970-01-01
    const EPOCH: f64 = 25_569.0;
    let mut row = head + 1;
    let mut count = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let page = crate::evaluation::ratings(db, scope, filter, 10_000, cursor.as_deref()).await?;
        for r in &page.items {
            if count == RATINGS_EXPORT_MAX {
                break;
            }
            let local = rules::local_datetime(&timezone, r.rated_at);
            let serial = EPOCH + local.and_utc().timestamp_millis() as f64 / 86_400_000.0;
            sheet.write_number(row, 0, r.id as f64).map_err(xlsx)?;
            if let Some(s) = r.service_id {
                sheet.write_number(row, 1, s as f64).map_err(xlsx)?;
            }
            sheet
                .write_number_with_format(row, 2, serial, &when)
                .map_err(xlsx)?;
            sheet.write_string(row, 3, &r.org_name).map_err(xlsx)?;
            sheet.write_string(row, 4, &r.window_name).map_err(xlsx)?;
            if let Some(s) = &r.staff_name {
                sheet.write_string(row, 5, s).map_err(xlsx)?;
            }
            sheet.write_string(row, 6, &r.label).map_err(xlsx)?;
            sheet.write_string(row, 7, &r.key).map_err(xlsx)?;
            sheet.write_string(row, 8, &r.polarity).map_err(xlsx)?;
            if details {
                if let Some(x) = &r.negative_reason {
                    sheet.write_string(row, 9, x).map_err(xlsx)?;
                }
                if let Some(x) = &r.phone {
                    sheet.write_string(row, 10, x).map_err(xlsx)?;
                }
            }
            row += 1;
            count += 1;
        }
        match page.next_cursor {
            Some(c) if count < RATINGS_EXPORT_MAX => cursor = Some(c),
            _ => break,
        }
    }
    let bytes = book.save_to_buffer().map_err(xlsx)?;
    crate::audit::record(
        &db.pool,
        scope.into(),
        crate::audit::Entry {
            org_path: scope.org_path.as_str(),
            action: "stats.ratings_export",
            entity: "org",
            entity_id: filter.org_id,
            summary: format!(
                "{count} individual ratings exported: {}",
                filters
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            changes: None,
        },
    )
    .await?;
    Ok((count, bytes))
}
