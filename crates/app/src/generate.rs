//! `keping generate`: a large organisation with years of ratings, for benchmarks and for trying
//! statistics at scale. Orgs and staff are written straight into the tables (one password hash for
//! all), windows get a keypad each, and the past comes from `keping_store::history`.

use crate::bench::seed;
use keping_domain::auth::{generate_password, hash_password, new_secret, secret_digest};
use keping_domain::now_millis;
use keping_store::history::{self, HistoryPlan, HistoryWindow};
use keping_store::{Db, Sql};
use std::time::Instant;

pub struct Generate {
    pub database_url: String,
    /// For the administrator, when the database has none yet; generated (and printed) when absent.
    pub admin_password: Option<String>,
    pub windows: usize,
    pub staff: usize,
    pub ratings: u64,
    pub days: u32,
}

/// Windows per outlet, as at a mid-sized bank outlet.
const WINDOWS_PER_OUTLET: usize = 5;
/// Share of services rated, and weekday-weighted days (weekends see half the customers): turns a
/// wanted number of ratings into services per window and day.
const RATED_SHARE: f64 = 0.88;
const DAY_WEIGHT: f64 = (5.0 + 2.0 * 0.5) / 7.0;

pub async fn run(g: Generate) -> anyhow::Result<()> {
    let started = Instant::now();
    let db = Db::connect(&g.database_url).await?;
    let password = g.admin_password.clone().unwrap_or_else(generate_password);
    if keping_store::accounts::bootstrap(&db, &hash_password(&password)).await? {
        println!("administrator 'admin' created with the password {password}");
    }
    let outlets = g.windows.div_ceil(WINDOWS_PER_OUTLET).max(1);
    // seed() opens a branch before every 20 outlets
    let orgs = outlets + outlets.div_ceil(20) + 1;
    println!(
        "creating {outlets} outlets, {} staff, {} windows …",
        g.staff, g.windows
    );
    let outlets = seed(&db, orgs, g.staff).await?;
    let windows = windows(&db, &outlets, g.windows).await?;
    let services_per_day =
        g.ratings as f64 / (g.windows as f64 * f64::from(g.days) * RATED_SHARE * DAY_WEIGHT);
    println!(
        "generating {} days of history (~{services_per_day:.1} services per window and weekday) …",
        g.days
    );
    let count = history::generate(
        &db,
        &windows,
        &HistoryPlan {
            days: g.days,
            until: now_millis(),
            services_per_day,
            seed: 1,
        },
        |day, c| {
            if day % 30 == 0 || day == g.days {
                println!(
                    "  day {day}/{}: {} services, {} presses, {} ratings ({:.0} s)",
                    g.days,
                    c.services,
                    c.presses,
                    c.ratings,
                    started.elapsed().as_secs_f64()
                );
            }
        },
    )
    .await?;
    // history is written straight into the raw tables: the statistics roll-ups from them
    let report = keping_store::stats::rebuild(&db, false).await?;
    println!(
        "statistics roll-ups built: {} cells ({:.0} s)",
        report.cells,
        started.elapsed().as_secs_f64()
    );
    // a live database has planner statistics; a freshly bulk-loaded one has none yet
    Sql::new("ANALYZE").execute(&db.pool).await?;
    println!(
        "done in {:.0} s: {} services, {} presses, {} ratings, {} follow-ups",
        started.elapsed().as_secs_f64(),
        count.services,
        count.presses,
        count.ratings,
        count.follow_ups
    );
    Ok(())
}

/// `count` windows over the outlets, a keypad each; an outlet's staff are split over its windows
/// so that nobody is on duty at two windows on the same day.
async fn windows(
    db: &Db,
    outlets: &[crate::bench::SeededOutlet],
    count: usize,
) -> anyhow::Result<Vec<HistoryWindow>> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    let mut made = Vec::with_capacity(count);
    for n in 0..count {
        let outlet = &outlets[n / WINDOWS_PER_OUTLET % outlets.len()];
        let seat = n % WINDOWS_PER_OUTLET;
        let window_id = Sql::new(
            "INSERT INTO windows (org_id, name, code, is_open, created_at, updated_at) VALUES (",
        )
        .arg(outlet.id)
        .push(", ")
        .arg(format!("{}号窗口", seat + 1))
        .push(", ")
        .arg(format!("G{n:05}"))
        .push(", 1, ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&mut *tx)
        .await?;
        let terminal_id =
            Sql::new("INSERT INTO terminals (window_id, kind, name, digest, created_at) VALUES (")
                .arg(window_id)
                .push(", 'keypad', '评价器', ")
                .arg(secret_digest(&new_secret("kpd")))
                .push(", ")
                .arg(now)
                .push(") RETURNING id")
                .fetch_i64(&mut *tx)
                .await?;
        made.push(HistoryWindow {
            window_id,
            org_id: outlet.id,
            terminal_id,
            business_type_id: None,
            timezone: "Asia/Shanghai".into(),
            staff: outlet
                .staff
                .iter()
                .skip(seat)
                .step_by(WINDOWS_PER_OUTLET)
                .copied()
                .collect(),
        });
    }
    tx.commit().await?;
    Ok(made)
}
