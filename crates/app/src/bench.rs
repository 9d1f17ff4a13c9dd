//! `keping bench platform`: seeds a large org tree and staff into a fresh database, starts the real
//! server as a child process, and measures latency of the list endpoints and the server's memory.
//! Load goes to 127.0.0.1 only.

use anyhow::{bail, Context};
use keping_domain::auth;
use keping_store::{Db, Sql};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct PlatformBench {
    pub database_url: Option<String>,
    pub orgs: usize,
    pub staff: usize,
    pub requests: usize,
    pub concurrency: usize,
}

const PASSWORD: &str = "bench-admin-pass";

/// A fresh database: a SQLite file in a temporary directory, or a new database next to the given PostgreSQL URL.
pub(crate) async fn fresh_database(
    url: Option<&str>,
) -> anyhow::Result<(String, Option<std::path::PathBuf>)> {
    match url {
        None => {
            let dir = std::env::temp_dir().join(format!("keping-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            Ok((
                format!("sqlite://{}", dir.join("keping.db").display()),
                Some(dir),
            ))
        }
        Some(pg) => {
            let name = format!("keping_bench_{}", std::process::id());
            pg_admin(
                pg,
                &[
                    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                    format!("CREATE DATABASE \"{name}\""),
                ],
            )
            .await?;
            let base = pg.rsplit_once('/').map_or(pg, |(b, _)| b);
            Ok((format!("{base}/{name}"), None))
        }
    }
}

/// Runs statements on a PostgreSQL server that cannot run inside the database they concern
/// (dropping and creating databases).
pub(crate) async fn pg_admin(url: &str, statements: &[String]) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("cannot reach PostgreSQL")?;
    for statement in statements {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    Ok(())
}

/// An outlet made by [`seed`] and its staff.
pub struct SeededOutlet {
    pub id: i64,
    pub staff: Vec<i64>,
}

/// A tree of `orgs` nodes (branches of ~20 outlets under the root) and `staff` people spread over the outlets.
pub async fn seed(db: &Db, orgs: usize, staff: usize) -> anyhow::Result<Vec<SeededOutlet>> {
    let hash = auth::hash_password("bench-staff-pass");
    let now = keping_domain::now_millis();
    let mut tx = db.begin().await?;
    let (root_id, root_path) =
        Sql::new("SELECT id, path FROM orgs WHERE parent_id IS NULL ORDER BY id LIMIT 1")
            .fetch_one::<(i64, String), _>(&mut *tx)
            .await?;
    let (clerk_role,) = Sql::new("INSERT INTO roles (name, permissions, data_level, builtin, created_at, updated_at) VALUES ('柜员', '[\"org.view\"]', 'self', 0, ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_one::<(i64,), _>(&mut *tx)
        .await?;
    let mut outlets: Vec<SeededOutlet> = Vec::new();
    let mut branch: Option<(i64, String)> = None;
    for i in 1..orgs {
        let is_branch = branch.is_none() || i % 21 == 1;
        let (parent_id, parent_path, depth) = match (&branch, is_branch) {
            (Some((id, path)), false) => (*id, path.clone(), 2),
            _ => (root_id, root_path.clone(), 1),
        };
        let id = Sql::new("INSERT INTO orgs (parent_id, name, code, kind, path, depth, timezone, enabled, created_at, updated_at) VALUES (")
            .arg(parent_id)
            .push(", ")
            .arg(format!("{}{i}", if is_branch { "分行" } else { "网点" }))
            .push(", ")
            .arg(format!("O{i}"))
            .push(", ")
            .arg(if is_branch { "branch" } else { "outlet" })
            .push(", ")
            .arg(format!("/pending/{i}/"))
            .push(", ")
            .arg(depth)
            .push(", 'Asia/Shanghai', 1, ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(") RETURNING id")
            .fetch_i64(&mut *tx)
            .await?;
        let path = format!("{parent_path}{id}/");
        Sql::new("UPDATE orgs SET path = ")
            .arg(path.as_str())
            .push(" WHERE id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        if is_branch {
            branch = Some((id, path));
        } else {
            outlets.push(SeededOutlet {
                id,
                staff: Vec::new(),
            });
        }
    }
    if outlets.is_empty() {
        bail!("--orgs must be at least 3 to make an outlet");
    }
    for i in 0..staff {
        let outlet_count = outlets.len();
        let outlet = &mut outlets[i % outlet_count];
        let org_id = outlet.id;
        let id = Sql::new("INSERT INTO users (username, password_hash, name, employee_no, org_id, enabled, locale, created_at, updated_at) VALUES (")
            .arg(format!("staff{i}"))
            .push(", ")
            .arg(hash.as_str())
            .push(", ")
            .arg(format!("职员{i}"))
            .push(", ")
            .arg(format!("E{i:06}"))
            .push(", ")
            .arg(org_id)
            .push(", 1, 'zh-CN', ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(") RETURNING id")
            .fetch_i64(&mut *tx)
            .await?;
        Sql::new("INSERT INTO user_roles (user_id, role_id, org_id) VALUES (")
            .arg(id)
            .push(", ")
            .arg(clerk_role)
            .push(", ")
            .arg(org_id)
            .push(")")
            .execute(&mut *tx)
            .await?;
        outlet.staff.push(id);
    }
    tx.commit().await?;
    Ok(outlets)
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

/// `requests` GETs of `path`, `concurrency` at a time, each worker waiting for its answer (closed loop).
pub(crate) async fn drive(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Duration>, Duration, usize)> {
    let start = Instant::now();
    let per_worker = requests.div_ceil(concurrency);
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token) = (client.clone(), url.to_string(), token.to_string());
        handles.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(per_worker);
            let mut errors = 0;
            for _ in 0..per_worker {
                let t = Instant::now();
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => errors += 1,
                }
                times.push(t.elapsed());
            }
            (times, errors)
        }));
    }
    let mut all = Vec::with_capacity(requests);
    let mut errors = 0;
    for h in handles {
        let (t, e) = h.await?;
        all.extend(t);
        errors += e;
    }
    let wall = start.elapsed();
    all.sort();
    Ok((all, wall, errors))
}

/// Starts `keping serve` on `url` as a child process on a free port of 127.0.0.1 and waits until
/// it answers. The administrator, when the database has none, gets `admin_password`.
pub(crate) async fn server(
    url: &str,
    admin_password: &str,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("KEPING_DATABASE_URL", url)
        .env("KEPING_BIND", format!("127.0.0.1:{port}"))
        .env("KEPING_LOG", "warn")
        .env("KEPING_ADMIN_PASSWORD", admin_password)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((child, base));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not come up")
}

pub struct PressBench {
    /// The database to run on (e.g. one filled by `keping generate`); a fresh SQLite file when absent.
    pub database_url: Option<String>,
    pub admin_password: String,
    pub terminals: usize,
    pub rate: f64,
    pub duration: Duration,
}

/// The press endpoint under load: the server as a child process, `keping simulate --presses-only`
/// as the load, both on this machine.
pub async fn presses(b: PressBench) -> anyhow::Result<()> {
    let (url, dir) = match b.database_url {
        Some(url) => (url, None),
        None => fresh_database(None).await?,
    };
    let (mut child, base) = server(&url, &b.admin_password).await?;
    let pid = child.id().context("no child pid")?;
    crate::simulate::run(crate::simulate::Simulation {
        base_url: base,
        username: "admin".into(),
        password: b.admin_password,
        terminals: b.terminals,
        rate: b.rate,
        duration: b.duration,
        presses_only: true,
    })
    .await?;
    println!(
        "server memory (RSS) after the load: {:.1} MiB",
        rss_kib(pid).unwrap_or(0) as f64 / 1024.0
    );
    child.kill().await?;
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

pub async fn platform(b: PlatformBench) -> anyhow::Result<()> {
    let (url, dir) = fresh_database(b.database_url.as_deref()).await?;
    println!(
        "keping bench platform: {} orgs, {} staff, {} requests per case at concurrency {}",
        b.orgs, b.staff, b.requests, b.concurrency
    );
    let t = Instant::now();
    {
        let db = Db::connect(&url).await?;
        keping_store::accounts::bootstrap(&db, &auth::hash_password(PASSWORD)).await?;
        seed(&db, b.orgs, b.staff).await?;
        // a live database has planner statistics; a freshly bulk-loaded one has none yet
        Sql::new("ANALYZE").execute(&db.pool).await?;
        db.pool.close().await;
    }
    println!(
        "seeded in {:.1} s ({})",
        t.elapsed().as_secs_f64(),
        if url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        }
    );

    let (mut child, base) = server(&url, PASSWORD).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency * 2)
        .build()?;
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().context("login failed")?.to_string();
    let pid = child.id().context("no child pid")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid).unwrap_or(0);

    let cases = [
        (
            "GET /api/v1/orgs (root user, first page of 50)",
            format!("{base}/api/v1/orgs"),
        ),
        (
            "GET /api/v1/orgs?limit=500 (root user)",
            format!("{base}/api/v1/orgs?limit=500"),
        ),
        (
            "GET /api/v1/users (first page of 50)",
            format!("{base}/api/v1/users"),
        ),
        (
            "GET /api/v1/users?q=职员1999 (search)",
            format!("{base}/api/v1/users?q=%E8%81%8C%E5%91%981999"),
        ),
    ];
    // a deep page, as someone paging through staff would reach it
    let mut deep = format!("{base}/api/v1/users?limit=50");
    for _ in 0..100 {
        let page: serde_json::Value = client
            .get(&deep)
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        match page["next_cursor"].as_str() {
            Some(c) => deep = format!("{base}/api/v1/users?limit=50&cursor={c}"),
            None => break,
        }
    }
    println!(
        "\n{:<52} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6}",
        "case", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "errors"
    );
    for (name, url) in cases
        .iter()
        .map(|(n, u)| (n.to_string(), u.clone()))
        .chain([("GET /api/v1/users (page 100, by cursor)".to_string(), deep)])
    {
        drive(&client, &url, &token, b.requests.min(200), b.concurrency).await?; // warm-up
        let (times, wall, errors) = drive(&client, &url, &token, b.requests, b.concurrency).await?;
        println!(
            "{:<52} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.0} {:>6}",
            name,
            percentile(&times, 0.50),
            percentile(&times, 0.95),
            percentile(&times, 0.99),
            percentile(&times, 1.0),
            times.len() as f64 / wall.as_secs_f64(),
            errors
        );
    }
    let after = rss_kib(pid).unwrap_or(0);
    println!(
        "\nserver memory (RSS): idle {:.1} MiB, after the load {:.1} MiB",
        idle as f64 / 1024.0,
        after as f64 / 1024.0
    );
    child.kill().await?;
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

pub struct GradingBench {
    /// A PostgreSQL server URL (a fresh database is made beside it); a fresh SQLite file when absent.
    pub database_url: Option<String>,
    pub customers: usize,
    pub period: String,
    /// Grade cards fetched through the server for the latency figures.
    pub requests: usize,
}

/// Rows per seeding INSERT; values are written into the text (numbers and fixed strings only).
const SEED_BATCH: usize = 2_000;

/// `customers` customers spread over 10 branches under the root, each with the period's inputs
/// for the composite model (and the figures classifications read), drawn from a fixed seed.
pub async fn seed_customers(db: &Db, customers: usize, period: &str) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    use std::fmt::Write;
    let now = keping_domain::now_millis();
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut tx = db.begin().await?;
    let (root_id, root_path) =
        Sql::new("SELECT id, path FROM orgs WHERE parent_id IS NULL ORDER BY id LIMIT 1")
            .fetch_one::<(i64, String), _>(&mut *tx)
            .await?;
    let mut branches = Vec::new();
    for i in 1..=10 {
        let id = Sql::new("INSERT INTO orgs (parent_id, name, code, kind, path, depth, timezone, enabled, created_at, updated_at) VALUES (")
            .arg(root_id)
            .push(", ")
            .arg(format!("分行{i}"))
            .push(", ")
            .arg(format!("B{i}"))
            .push(", 'branch', ")
            .arg(format!("/pending/{i}/"))
            .push(", 1, 'Asia/Shanghai', 1, ")
            .arg(now)
            .push(", ")
            .arg(now)
            .push(") RETURNING id")
            .fetch_i64(&mut *tx)
            .await?;
        Sql::new("UPDATE orgs SET path = ")
            .arg(format!("{root_path}{id}/"))
            .push(" WHERE id = ")
            .arg(id)
            .execute(&mut *tx)
            .await?;
        branches.push(id);
    }
    const INDUSTRIES: [&str; 5] = ["机械", "化工", "食品", "建材", "电子"];
    for start in (0..customers).step_by(SEED_BATCH) {
        let end = (start + SEED_BATCH).min(customers);
        let mut text = String::with_capacity(160 * (end - start));
        text.push_str("INSERT INTO customers (org_id, kind, name, industry, name_company_key, search_text, last_touched_at, created_at, updated_at) VALUES ");
        for i in start..end {
            if i > start {
                text.push_str(", ");
            }
            let _ = write!(
                text,
                "({}, 'customer', '客户{i}', '{}', 'c{i}|', 'c{i}', {now}, {now}, {now})",
                branches[i % branches.len()],
                INDUSTRIES[i % INDUSTRIES.len()]
            );
        }
        text.push_str(" RETURNING id");
        let ids: Vec<(i64,)> = Sql::bulk(db.backend, &text).fetch_all(&mut *tx).await?;
        let mut text = String::with_capacity(260 * (end - start));
        text.push_str(
            "INSERT INTO scoring_inputs (customer_id, period, input_values, updated_at) VALUES ",
        );
        for (n, (id,)) in ids.iter().enumerate() {
            if n > 0 {
                text.push_str(", ");
            }
            let _ = write!(
                text,
                "({id}, '{period}', '{{\"sales_amount\":{},\"sales_volume\":{},\"sales_growth_yoy\":{:.1},\"collection_rate\":{:.1},\"return_rate\":{:.1},\"manager\":{},\"order_batches\":{},\"arrears\":{},\"contribution_points\":{}}}', {now})",
                rng.gen_range(0..3_000_000),
                rng.gen_range(0..5_000),
                rng.gen_range(-30.0..40.0),
                rng.gen_range(80.0..100.0),
                rng.gen_range(0.0..8.0),
                rng.gen_range(40..=100),
                rng.gen_range(0..12),
                rng.gen_range(0..30_000),
                rng.gen_range(0..1_500),
            );
        }
        Sql::bulk(db.backend, &text).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `keping bench grading`: seeds customers with a period's inputs, runs the composite model
/// in-process (timing reading, scoring and storing), then measures the grade card through the
/// real server.
pub async fn grading(b: GradingBench) -> anyhow::Result<()> {
    use keping_store::grading as store;
    let (url, dir) = fresh_database(b.database_url.as_deref()).await?;
    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    println!(
        "keping bench grading: {} customers, period {}, {backend}",
        b.customers, b.period
    );
    let db = Db::connect(&url).await?;
    keping_store::accounts::bootstrap(&db, &auth::hash_password(PASSWORD)).await?;
    let t = Instant::now();
    seed_customers(&db, b.customers, &b.period).await?;
    Sql::new("ANALYZE").execute(&db.pool).await?;
    println!(
        "seeded {} customers with inputs in {:.1} s",
        b.customers,
        t.elapsed().as_secs_f64()
    );

    let (admin_id, org_path): (i64, String) = Sql::new(
        "SELECT u.id, o.path FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.username = 'admin'",
    )
    .fetch_one(&db.pool)
    .await?;
    let scope = keping_store::accounts::scope_of(
        &db,
        &keping_store::tokens::Holder {
            user_id: admin_id,
            username: "admin".into(),
            name: "admin".into(),
            locale: "zh-CN".into(),
            org_path,
        },
    )
    .await?;
    let (model_id,): (i64,) =
        Sql::new("SELECT id FROM scoring_models WHERE template = 'composite'")
            .fetch_one(&db.pool)
            .await?;
    for attempt in 1..=2 {
        let t = Instant::now();
        let (run, timings) = store::run_timed(
            &db,
            &scope,
            store::RunRequest {
                model_id,
                period: b.period.clone(),
                org_id: None,
                trigger: "manual",
            },
        )
        .await?;
        println!(
            "run {attempt} of the composite model: {} customers in {:.2} s (read inputs {:.2} s, classify {:.2} s, score and store results {:.2} s); grades {:?}",
            run.scored,
            t.elapsed().as_secs_f64(),
            timings.read.as_secs_f64(),
            timings.classify.as_secs_f64(),
            timings.score_and_store.as_secs_f64(),
            run.distribution
        );
    }
    let (lo, hi): (i64, i64) = Sql::new("SELECT MIN(id), MAX(id) FROM customers")
        .fetch_one(&db.pool)
        .await?;
    db.pool.close().await;

    let (mut child, base) = server(&url, PASSWORD).await?;
    // a redirect (to the login page) counts as an error, not as a fast answer
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().context("login failed")?.to_string();
    let ids: Vec<i64> = {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..b.requests).map(|_| rng.gen_range(lo..=hi)).collect()
    };
    let mut results = Vec::new();
    for (label, path) in [
        (
            "GET /api/v1/customers/{id}/grades",
            "/api/v1/customers/{}/grades",
        ),
        ("GET /customers/{id}/grades (page)", "/customers/{}/grades"),
    ] {
        let mut times = Vec::with_capacity(ids.len());
        let mut errors = 0;
        for (n, id) in ids.iter().chain(ids.iter().take(100)).enumerate() {
            let url = format!("{base}{}", path.replace("{}", &id.to_string()));
            let t = Instant::now();
            let answer = client
                .get(&url)
                .bearer_auth(&token)
                .header("Cookie", format!("keping_session={token}"))
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                }
                _ => errors += 1,
            }
            // the first 100 warm the server up
            if n >= 100 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        results.push((label, times, errors));
    }
    println!(
        "\n{:<40} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "grade card (1 at a time)", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"
    );
    for (label, times, errors) in results {
        println!(
            "{:<40} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            label,
            percentile(&times, 0.50),
            percentile(&times, 0.95),
            percentile(&times, 0.99),
            percentile(&times, 1.0),
            errors
        );
    }
    child.kill().await?;
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
