//! Past evaluation data for demos and benchmarks: duties, services, presses, ratings and
//! follow-ups as counters would have produced them, written straight into the tables (the device
//! API refuses presses older than its clock policy allows). Every row obeys the same rules as live
//! data: one duty and one service at a time per window, a prompt rated at most once within its
//! time limit, repeated presses kept with the rule that removed them.

use crate::{Backend, Db, Result, Sql};
use keping_domain::evaluation::{EvaluationSettings, Polarity};
use keping_domain::Millis;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MINUTE: Millis = 60_000;
const DAY: Millis = 24 * 60 * MINUTE;
/// Rows per INSERT statement: large enough to amortise the round trip, small enough for any
/// backend's parameter limit.
const ROWS_PER_INSERT: usize = 400;

/// A window whose past is generated, with the staff who take turns at it.
pub struct HistoryWindow {
    pub window_id: i64,
    pub org_id: i64,
    pub terminal_id: i64,
    pub business_type_id: Option<i64>,
    pub timezone: String,
    /// Each day one of them is on duty, in turn.
    pub staff: Vec<i64>,
}

pub struct HistoryPlan {
    /// Days before `until`, each generated in full.
    pub days: u32,
    /// The end: the generated past stops at the local midnight before this moment.
    pub until: Millis,
    /// Services per window and weekday on average (weekends see half).
    pub services_per_day: f64,
    pub seed: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct HistoryCount {
    pub services: u64,
    pub presses: u64,
    pub ratings: u64,
    pub follow_ups: u64,
}

/// Rows waiting for their INSERT, with the ids they were given.
#[derive(Default)]
struct Rows {
    duties: Vec<[Option<i64>; 5]>,
    services: Vec<[Option<i64>; 8]>,
    presses: Vec<Press>,
    ratings: Vec<Rating>,
    follow_ups: Vec<FollowUp>,
}

struct Press {
    id: i64,
    terminal_id: i64,
    window_id: i64,
    key: String,
    at: Millis,
    service_id: Option<i64>,
    reason: Option<&'static str>,
    rating_id: Option<i64>,
}

struct Rating {
    id: i64,
    press_id: i64,
    service_id: i64,
    window_id: i64,
    org_id: i64,
    staff_id: i64,
    business_type_id: Option<i64>,
    option: usize,
    negative_reason: Option<String>,
    at: Millis,
}

struct FollowUp {
    id: i64,
    rating_id: i64,
    org_id: i64,
    window_id: i64,
    staff_id: i64,
    created_at: Millis,
    closed_at: Option<Millis>,
}

struct NextIds {
    duty: i64,
    service: i64,
    press: i64,
    rating: i64,
    follow_up: i64,
}

const TABLES: [&str; 5] = ["duties", "services", "presses", "ratings", "follow_ups"];

/// Generates the plan's days for every window, oldest first, one transaction per day, and tells
/// `progress` after each day. Ratings use the default options (非常满意 / 满意 / 一般 / 不满意).
pub async fn generate(
    db: &Db,
    windows: &[HistoryWindow],
    plan: &HistoryPlan,
    mut progress: impl FnMut(u32, HistoryCount),
) -> Result<HistoryCount> {
    let settings = EvaluationSettings::default();
    let mut next = {
        let mut first = [0i64; 5];
        for (i, table) in TABLES.iter().enumerate() {
            first[i] = Sql::new(&format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {table}"))
                .fetch_i64(&db.pool)
                .await?;
        }
        NextIds {
            duty: first[0],
            service: first[1],
            press: first[2],
            rating: first[3],
            follow_up: first[4],
        }
    };
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut count = HistoryCount::default();
    for day in (1..=plan.days).rev() {
        let mut rows = Rows::default();
        for w in windows {
            let noon = plan.until - i64::from(day) * DAY;
            let (midnight, _) = keping_domain::org::local_day(&w.timezone, noon);
            one_day(
                w, midnight, day, plan, &settings, &mut rng, &mut next, &mut rows,
            );
        }
        count.services += rows.services.len() as u64;
        count.presses += rows.presses.len() as u64;
        count.ratings += rows.ratings.len() as u64;
        count.follow_ups += rows.follow_ups.len() as u64;
        write(db, &rows, &settings, plan.until).await?;
        progress(plan.days - day + 1, count);
    }
    if db.backend == Backend::Postgres {
        // the ids were given here, so the identity columns must continue after them
        for table in TABLES {
            Sql::new(&format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"))
                .fetch_all::<(i64,), _>(&db.pool)
                .await?;
        }
    }
    Ok(count)
}

/// How many customers come in each hour of the working day (09:00–17:00): a morning and an
/// afternoon peak, as at a bank counter.
const HOURLY_WEIGHT: [f64; 8] = [0.9, 1.4, 1.3, 0.8, 0.7, 1.1, 1.3, 0.9];

#[allow(clippy::too_many_arguments)]
fn one_day(
    w: &HistoryWindow,
    midnight: Millis,
    day: u32,
    plan: &HistoryPlan,
    settings: &EvaluationSettings,
    rng: &mut StdRng,
    next: &mut NextIds,
    rows: &mut Rows,
) {
    if w.staff.is_empty() {
        return;
    }
    let weekday = (midnight / DAY + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    let weekend = weekday == 0 || weekday == 6;
    let mean = plan.services_per_day * if weekend { 0.5 } else { 1.0 };
    let staff = w.staff[(day as usize + w.window_id as usize) % w.staff.len()];
    let (open, close) = (
        midnight + 8 * 60 * MINUTE + 30 * MINUTE,
        midnight + 17 * 60 * MINUTE + 30 * MINUTE,
    );
    rows.duties.push([
        Some(next.duty),
        Some(w.window_id),
        Some(staff),
        Some(open),
        Some(close),
    ]);
    next.duty += 1;

    let services = (mean * rng.gen_range(0.6..1.4)).round() as usize;
    let total: f64 = HOURLY_WEIGHT.iter().sum();
    let mut starts: Vec<Millis> = (0..services)
        .map(|_| {
            let mut pick = rng.gen_range(0.0..total);
            let hour = HOURLY_WEIGHT
                .iter()
                .position(|&h| {
                    pick -= h;
                    pick < 0.0
                })
                .unwrap_or(7) as i64;
            midnight + (9 + hour) * 60 * MINUTE + rng.gen_range(0..60 * MINUTE)
        })
        .collect();
    starts.sort_unstable();
    let timeout = settings.rating_timeout_seconds * 1000;
    let mut free_at = open;
    for start in starts {
        // one service at a time: a customer who arrives while the clerk is busy waits
        let started = start.max(free_at + rng.gen_range(5_000..60_000));
        let ended = started + rng.gen_range(2 * MINUTE..15 * MINUTE);
        if ended + timeout >= close {
            break;
        }
        free_at = ended + timeout;
        let service_id = next.service;
        next.service += 1;
        let roll: f64 = rng.gen();
        let mut rating_id = None;
        if roll < 0.88 {
            let option = pick_option(rng);
            let at = ended + rng.gen_range(2_000..timeout - 2_000);
            let (press_id, id) = (next.press, next.rating);
            next.press += 1;
            next.rating += 1;
            rating_id = Some(id);
            rows.presses.push(Press {
                id: press_id,
                terminal_id: w.terminal_id,
                window_id: w.window_id,
                key: settings.options[option].key.clone(),
                at,
                service_id: Some(service_id),
                reason: None,
                rating_id: Some(id),
            });
            let negative = settings.options[option].polarity == Polarity::Negative;
            rows.ratings.push(Rating {
                id,
                press_id,
                service_id,
                window_id: w.window_id,
                org_id: w.org_id,
                staff_id: staff,
                business_type_id: w.business_type_id,
                option,
                negative_reason: negative.then(|| {
                    settings.negative_reasons[rng.gen_range(0..settings.negative_reasons.len())]
                        .clone()
                }),
                at,
            });
            if negative {
                // follow-ups of the last three days are still open
                let closed_at = (day > 3).then(|| at + rng.gen_range(30 * MINUTE..DAY));
                rows.follow_ups.push(FollowUp {
                    id: next.follow_up,
                    rating_id: id,
                    org_id: w.org_id,
                    window_id: w.window_id,
                    staff_id: staff,
                    created_at: at,
                    closed_at,
                });
                next.follow_up += 1;
            }
            if rng.gen_bool(0.04) {
                // a customer pressing twice: kept, not counted
                rows.presses.push(Press {
                    id: next.press,
                    terminal_id: w.terminal_id,
                    window_id: w.window_id,
                    key: settings.options[option].key.clone(),
                    at: (at + rng.gen_range(300..1_500)).min(ended + timeout - 1),
                    service_id: None,
                    reason: Some("already_rated"),
                    rating_id: None,
                });
                next.press += 1;
            }
        } else if roll < 0.92 {
            // a press after the prompt closed counts for nothing
            rows.presses.push(Press {
                id: next.press,
                terminal_id: w.terminal_id,
                window_id: w.window_id,
                key: settings.options[pick_option(rng)].key.clone(),
                at: ended + timeout + rng.gen_range(1_000..20_000),
                service_id: None,
                reason: Some("no_prompt"),
                rating_id: None,
            });
            next.press += 1;
        }
        rows.services.push([
            Some(service_id),
            Some(w.window_id),
            Some(w.org_id),
            Some(staff),
            w.business_type_id,
            Some(started),
            Some(ended),
            rating_id,
        ]);
    }
}

/// 非常满意 62 %, 满意 27 %, 一般 8 %, 不满意 3 %.
fn pick_option(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..100) {
        0..62 => 0,
        62..89 => 1,
        89..97 => 2,
        _ => 3,
    }
}

async fn write(db: &Db, rows: &Rows, settings: &EvaluationSettings, now: Millis) -> Result<()> {
    let mut tx = db.begin().await?;
    for chunk in rows.duties.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::bulk(
            db.backend,
            "INSERT INTO duties (id, window_id, staff_id, started_at, ended_at, end_reason) VALUES ",
        );
        for (n, d) in chunk.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" });
            for (k, v) in d.iter().enumerate() {
                if k > 0 {
                    sql.push(", ");
                }
                sql.arg(*v);
            }
            sql.push(", 'signed_out')");
        }
        sql.execute(&mut *tx).await?;
    }
    for chunk in rows.services.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::bulk(db.backend, "INSERT INTO services (id, window_id, org_id, staff_id, business_type_id, started_at, ended_at, rating_id) VALUES ");
        for (n, s) in chunk.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" });
            for (k, v) in s.iter().enumerate() {
                if k > 0 {
                    sql.push(", ");
                }
                sql.arg(*v);
            }
            sql.push(")");
        }
        sql.execute(&mut *tx).await?;
    }
    for chunk in rows.presses.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::bulk(db.backend, "INSERT INTO presses (id, terminal_id, window_id, idempotency_key, body_digest, key, pressed_at, received_at, effective_at, service_id, counted, reason, rating_id) VALUES ");
        for (n, p) in chunk.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" })
                .arg(p.id)
                .push(", ")
                .arg(p.terminal_id)
                .push(", ")
                .arg(p.window_id)
                .push(", ")
                .arg(format!("history-{}", p.id))
                .push(", 'history', ")
                .arg(&p.key)
                .push(", ")
                .arg(p.at)
                .push(", ")
                .arg(p.at)
                .push(", ")
                .arg(p.at)
                .push(", ")
                .arg(p.service_id)
                .push(", ")
                .arg(p.reason.is_none())
                .push(", ")
                .arg(p.reason)
                .push(", ")
                .arg(p.rating_id)
                .push(")");
        }
        sql.execute(&mut *tx).await?;
    }
    for chunk in rows.ratings.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::bulk(db.backend, "INSERT INTO ratings (id, press_id, service_id, window_id, org_id, staff_id, business_type_id, key, label, polarity, negative_reason, rated_at) VALUES ");
        for (n, r) in chunk.iter().enumerate() {
            let option = &settings.options[r.option];
            sql.push(if n == 0 { "(" } else { ", (" })
                .arg(r.id)
                .push(", ")
                .arg(r.press_id)
                .push(", ")
                .arg(r.service_id)
                .push(", ")
                .arg(r.window_id)
                .push(", ")
                .arg(r.org_id)
                .push(", ")
                .arg(r.staff_id)
                .push(", ")
                .arg(r.business_type_id)
                .push(", ")
                .arg(&option.key)
                .push(", ")
                .arg(&option.label)
                .push(", ")
                .arg(option.polarity.code())
                .push(", ")
                .arg(r.negative_reason.clone())
                .push(", ")
                .arg(r.at)
                .push(")");
        }
        sql.execute(&mut *tx).await?;
    }
    for chunk in rows.follow_ups.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::bulk(db.backend, "INSERT INTO follow_ups (id, rating_id, org_id, window_id, staff_id, status, note, created_at, closed_at) VALUES ");
        for (n, f) in chunk.iter().enumerate() {
            let closed = f.closed_at.filter(|&c| c < now);
            sql.push(if n == 0 { "(" } else { ", (" })
                .arg(f.id)
                .push(", ")
                .arg(f.rating_id)
                .push(", ")
                .arg(f.org_id)
                .push(", ")
                .arg(f.window_id)
                .push(", ")
                .arg(f.staff_id)
                .push(", ")
                .arg(if closed.is_some() { "closed" } else { "open" })
                .push(", ")
                .arg(closed.map(|_| "已回访，客户表示理解"))
                .push(", ")
                .arg(f.created_at)
                .push(", ")
                .arg(closed)
                .push(")");
        }
        sql.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
