//! `keping bench stats`: the statistics endpoint on a filled database (one made by `keping
//! generate`, roll-ups rebuilt): random subtrees, groupings and periods one after another, then
//! head office's year-over-year report, with latency percentiles; then the newest 100,000
//! ratings exported to xlsx. Load goes to 127.0.0.1 only.

use crate::bench::{percentile, server};
use anyhow::{bail, Context};
use chrono::{Duration as Days, NaiveDate};
use keping_store::{Db, Sql};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct StatsBench {
    pub database_url: String,
    pub admin_password: String,
    pub requests: usize,
}

const GROUPINGS: [&str; 12] = [
    "none",
    "org",
    "outlet",
    "window",
    "staff",
    "business_type",
    "hour",
    "day",
    "week",
    "month",
    "weekday",
    "weekday_hour",
];
/// Period lengths in days: a day, a week, a month, a quarter, a year, two years.
const SPANS: [i64; 6] = [1, 7, 30, 91, 365, 730];

fn summary(label: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "{label:<44} {:>6} requests  p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        times.len(),
        percentile(times, 0.50),
        percentile(times, 0.95),
        percentile(times, 0.99),
        percentile(times, 1.0),
    );
}

pub async fn stats(b: StatsBench) -> anyhow::Result<()> {
    let db = Db::connect(&b.database_url).await?;
    let orgs: Vec<(i64, String)> = Sql::new("SELECT id, path FROM orgs WHERE enabled = 1")
        .fetch_all(&db.pool)
        .await?;
    let (first, last): (Option<String>, Option<String>) =
        Sql::new("SELECT MIN(day), MAX(day) FROM stats_rollup WHERE grain = 'd'")
            .fetch_one(&db.pool)
            .await?;
    db.pool.close().await;
    let (Some(first), Some(last)) = (first, last) else {
        bail!("no roll-ups in this database: fill it with `keping generate`, then `keping stats rebuild`")
    };
    let first = NaiveDate::parse_from_str(&first, "%Y-%m-%d")?;
    let last = NaiveDate::parse_from_str(&last, "%Y-%m-%d")?;
    // orgs by depth: head office, branches, outlets…
    let mut by_depth: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for (id, path) in &orgs {
        by_depth
            .entry(path.matches('/').count())
            .or_default()
            .push(*id);
    }
    let levels: Vec<&Vec<i64>> = by_depth.values().collect();
    let root = levels
        .first()
        .and_then(|l| l.first())
        .copied()
        .context("no orgs")?;
    println!(
        "keping bench stats: {} orgs on {} levels, days {first} … {last}, {} requests",
        orgs.len(),
        levels.len(),
        b.requests
    );

    let (mut child, base) = server(&b.database_url, &b.admin_password).await?;
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": b.admin_password}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"]
        .as_str()
        .context("login failed: pass the database's administrator password with --password")?
        .to_string();
    let get = |query: String| {
        let (client, token, url) = (
            client.clone(),
            token.clone(),
            format!("{base}/api/v1/stats/evaluation?{query}"),
        );
        async move {
            let t = Instant::now();
            let r = client.get(&url).bearer_auth(&token).send().await?;
            let ok = r.status().is_success();
            let body = r.bytes().await?;
            if !ok {
                bail!("{url}: {}", String::from_utf8_lossy(&body));
            }
            Ok::<_, anyhow::Error>(t.elapsed())
        }
    };

    let mut rng = rand::thread_rng();
    let mut all = Vec::with_capacity(b.requests);
    let mut per_grouping: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut per_span: BTreeMap<i64, Vec<Duration>> = BTreeMap::new();
    let total_days = (last - first).num_days() + 1;
    for n in 0..b.requests {
        let level = levels.choose(&mut rng).expect("levels");
        let org = *level.choose(&mut rng).expect("orgs");
        let group_by = GROUPINGS[n % GROUPINGS.len()];
        let span = SPANS
            .choose(&mut rng)
            .copied()
            .expect("spans")
            .min(total_days);
        let to = last - Days::days(rng.gen_range(0..=(total_days - span)));
        let from = to - Days::days(span - 1);
        let compare = if rng.gen_bool(0.5) {
            "&compare=both"
        } else {
            ""
        };
        let took = get(format!(
            "org_id={org}&from={from}&to={to}&group_by={group_by}{compare}"
        ))
        .await?;
        all.push(took);
        per_grouping.entry(group_by).or_default().push(took);
        per_span.entry(span).or_default().push(took);
    }
    summary("any subtree, grouping and period", &mut all);
    for (g, times) in &mut per_grouping {
        summary(&format!("  group_by={g}"), times);
    }
    for (span, times) in &mut per_span {
        summary(&format!("  {span} day(s)"), times);
    }

    // head office, the last whole year by outlet, with the year before beside it
    let mut yoy = Vec::new();
    let from = last - Days::days(364);
    for _ in 0..50 {
        yoy.push(
            get(format!(
                "org_id={root}&from={from}&to={last}&group_by=outlet&compare=last_year"
            ))
            .await?,
        );
    }
    summary("head office, a year by outlet, year over year", &mut yoy);

    // the newest 100,000 ratings of the whole tree to xlsx
    let db = Db::connect(&b.database_url).await?;
    let since: Option<(i64,)> =
        Sql::new("SELECT rated_at FROM ratings ORDER BY rated_at DESC LIMIT 1 OFFSET 99999")
            .fetch_optional(&db.pool)
            .await?;
    if let Some((since,)) = since {
        let rows = Sql::new("SELECT COUNT(*) FROM ratings WHERE rated_at >= ")
            .arg(since)
            .fetch_i64(&db.pool)
            .await?;
        let from = chrono::DateTime::from_timestamp_millis(since)
            .context("rating time")?
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let url = format!("{base}/api/v1/ratings/export?org_id={root}&from={from}");
        let t = Instant::now();
        let r = client.get(&url).bearer_auth(&token).send().await?;
        if !r.status().is_success() {
            bail!("{url}: {}", r.text().await?);
        }
        let size = r.bytes().await?.len();
        println!(
            "ratings export to xlsx                       {rows} rows  {:.2} s  {:.1} MB",
            t.elapsed().as_secs_f64(),
            size as f64 / 1e6
        );
    }
    db.pool.close().await;
    child.kill().await?;
    Ok(())
}
