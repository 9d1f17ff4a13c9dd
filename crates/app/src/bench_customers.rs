//! `keping bench customers`: seeds a fresh database with customers and contacts (multi-row inserts,
//! search terms computed as the store computes them), starts the real server as a child process and
//! measures the customer list, search, an xlsx import with duplicate checks and an export. Load goes
//! to 127.0.0.1 only.

use crate::bench::{drive, fresh_database, percentile, pg_admin, rss_kib, seed, server};
use anyhow::Context;
use keping_domain::auth;
use keping_domain::customers::{self as rules, Phone, SearchSource};
use keping_store::{Backend, Db, Sql};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

pub struct CustomerBench {
    pub database_url: Option<String>,
    pub customers: usize,
    pub contacts: usize,
    pub import_rows: usize,
    pub requests: usize,
    pub concurrency: usize,
    pub seed_file: Option<std::path::PathBuf>,
}

const PASSWORD: &str = "bench-admin-pass";
const MANAGER_PASSWORD: &str = "bench-manager-pass";

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
    "明", "超", "霞", "平", "刚", "桂", "英", "华", "玉", "兰", "辉", "鹏", "飞", "波", "宁", "斌",
    "建", "国", "志", "红", "文", "海", "峰", "婷", "雪", "琳", "晨", "宇", "浩", "凯", "健", "俊",
    "帆", "欣", "怡", "佳", "思", "雨", "子", "梦", "嘉", "博", "昊", "然", "睿", "轩", "泽", "瑞",
];
const CITIES: &[&str] = &[
    "上海", "北京", "广州", "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "重庆", "天津",
    "长沙", "郑州", "青岛", "宁波", "厦门", "合肥", "济南", "福州",
];
const WORDS: &[&str] = &[
    "华兴", "鼎盛", "恒通", "宏达", "瑞丰", "金桥", "星河", "远航", "东方", "盛世", "天成", "汇丰",
    "永信", "博远", "新源", "嘉禾", "中诚", "联创", "润泽", "德信", "安泰", "富华", "海纳", "启明",
    "卓越", "凯旋", "明珠", "万象", "长青", "同创",
];
const TRADES: &[&str] = &[
    "科技", "贸易", "实业", "电子", "机械", "建材", "物流", "食品", "医药", "纺织", "化工", "环保",
];
const IMPORTANCE: &[&str] = &[
    "urgent",
    "considering",
    "watching",
    "not_this_year",
    "done",
    "unknown",
];

fn person(rng: &mut StdRng) -> String {
    let mut s = SURNAMES[rng.gen_range(0..SURNAMES.len())].to_string();
    for _ in 0..rng.gen_range(1..=2) {
        s.push_str(GIVEN[rng.gen_range(0..GIVEN.len())]);
    }
    s
}

fn company(rng: &mut StdRng) -> String {
    format!(
        "{}{}{}有限公司",
        CITIES[rng.gen_range(0..CITIES.len())],
        WORDS[rng.gen_range(0..WORDS.len())],
        TRADES[rng.gen_range(0..TRADES.len())]
    )
}

fn mobile(rng: &mut StdRng) -> String {
    format!(
        "1{}{:09}",
        ["3", "5", "7", "8", "9"][rng.gen_range(0..5)],
        rng.gen_range(0..1_000_000_000u64)
    )
}

/// One seeded customer and what the store would index for it.
struct Row {
    id: i64,
    org_id: i64,
    owner_id: Option<i64>,
    kind: &'static str,
    name: String,
    company: Option<String>,
    phone: String,
    importance: &'static str,
    contacts: Vec<(String, String)>,
}

/// The database's own placeholders for a multi-row insert (plain `?` on SQLite).
fn bulk(db: &Db, text: &str) -> Sql {
    Sql::bulk(db.backend, text)
}

async fn write_batch(
    conn: &mut sqlx::AnyConnection,
    db: &Db,
    rows: &[Row],
    next_contact: &mut i64,
    now: i64,
) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let mut terms: Vec<(String, i64)> = Vec::new();
    let mut phones: Vec<(String, i64)> = Vec::new();
    for chunk in rows.chunks(400) {
        let mut sql = bulk(db, "INSERT INTO customers (id, org_id, owner_id, kind, is_company, name, company, phone, importance, name_company_key, search_text, last_touched_at, created_at, updated_at) VALUES ");
        for (i, r) in chunk.iter().enumerate() {
            let mut src = SearchSource::default();
            src.names.push(&r.name);
            src.names.extend(r.company.as_deref());
            for (n, _) in &r.contacts {
                src.names.push(n);
            }
            let mut digits: Vec<String> = std::iter::once(&r.phone)
                .chain(r.contacts.iter().map(|(_, p)| p))
                .filter_map(|p| Phone::parse("phone", p).ok().map(|p| p.digits))
                .collect();
            digits.sort();
            digits.dedup();
            src.phones = digits.iter().map(String::as_str).collect();
            terms.extend(rules::search_terms(&src).into_iter().map(|t| (t, r.id)));
            let text = rules::search_text(&src);
            phones.extend(digits.iter().map(|d| (d.clone(), r.id)));
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .arg(r.id)
                .push(", ")
                .arg(r.org_id)
                .push(", ")
                .arg(r.owner_id)
                .push(", ")
                .arg(r.kind)
                .push(", ")
                .arg(i64::from(r.company.is_some()))
                .push(", ")
                .arg(r.name.as_str())
                .push(", ")
                .arg(r.company.clone())
                .push(", ")
                .arg(r.phone.as_str())
                .push(", ")
                .arg(r.importance)
                .push(", ")
                .arg(rules::name_company_key(&r.name, r.company.as_deref()))
                .push(", ")
                .arg(text)
                .push(", ")
                .arg(now)
                .push(", ")
                .arg(now)
                .push(", ")
                .arg(now)
                .push(")");
        }
        sql.execute(&mut *tx).await?;
    }
    let contacts: Vec<(i64, &str, &str)> = rows
        .iter()
        .flat_map(|r| {
            r.contacts
                .iter()
                .map(move |(n, p)| (r.id, n.as_str(), p.as_str()))
        })
        .collect();
    for chunk in contacts.chunks(1000) {
        let mut sql = bulk(
            db,
            "INSERT INTO contacts (id, customer_id, name, mobile, created_at, updated_at) VALUES ",
        );
        for (i, (cid, n, p)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            *next_contact += 1;
            sql.push("(")
                .arg(*next_contact)
                .push(", ")
                .arg(*cid)
                .push(", ")
                .arg(*n)
                .push(", ")
                .arg(*p)
                .push(", ")
                .arg(now)
                .push(", ")
                .arg(now)
                .push(")");
        }
        sql.execute(&mut *tx).await?;
    }
    for (table, pairs, parted) in [
        ("customer_terms (term, customer_id, part)", &terms, true),
        ("customer_phones (digits, customer_id)", &phones, false),
    ] {
        for chunk in pairs.chunks(4000) {
            let mut sql = bulk(db, &format!("INSERT INTO {table} VALUES "));
            for (i, (t, id)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(").arg(t.as_str()).push(", ").arg(*id);
                if parted {
                    sql.push(", ").arg(rules::term_part(*id));
                }
                sql.push(")");
            }
            sql.push(" ON CONFLICT DO NOTHING");
            sql.execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// What the measured requests look for: a name part, a phone fragment, pinyin initials.
#[derive(serde::Serialize, serde::Deserialize)]
struct Probes {
    name_part: String,
    phone_part: String,
    initials: String,
    manager_branch: i64,
}

async fn seed_customers(db: &Db, b: &CustomerBench) -> anyhow::Result<Probes> {
    let outlets = seed(db, 64, 600).await?;
    let now = keping_domain::now_millis();
    // a customer-manager role held at the first branch over its whole subtree
    let branch: (i64,) = Sql::new("SELECT parent_id FROM orgs WHERE id = ")
        .arg(outlets[0].id)
        .fetch_one(&db.pool)
        .await?;
    let role = Sql::new("INSERT INTO roles (name, permissions, data_level, builtin, created_at, updated_at) VALUES ('客户经理主管', '[\"org.view\",\"customer.view\",\"customer.edit\",\"customer.export\",\"customer.import\",\"phone.view\"]', 'org_and_children', 0, ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&db.pool)
        .await?;
    let manager = Sql::new("INSERT INTO users (username, password_hash, name, employee_no, org_id, enabled, locale, created_at, updated_at) VALUES ('manager', ")
        .arg(auth::hash_password(MANAGER_PASSWORD))
        .push(", '客户主管', 'M000001', ")
        .arg(branch.0)
        .push(", 1, 'zh-CN', ")
        .arg(now)
        .push(", ")
        .arg(now)
        .push(") RETURNING id")
        .fetch_i64(&db.pool)
        .await?;
    Sql::new("INSERT INTO user_roles (user_id, role_id, org_id) VALUES (")
        .arg(manager)
        .push(", ")
        .arg(role)
        .push(", ")
        .arg(branch.0)
        .push(")")
        .execute(&db.pool)
        .await?;

    let mut conn = db.pool.acquire().await?;
    if db.backend == Backend::Sqlite {
        // the seeding connection only: a large page cache keeps the term index's inserts in memory
        sqlx::query("PRAGMA cache_size = -1500000")
            .execute(&mut *conn)
            .await?;
    }
    let mut rng = StdRng::seed_from_u64(42);
    let per = b.contacts as f64 / b.customers.max(1) as f64;
    let mut owed = 0.0;
    let mut next_contact = 0i64;
    let mut batch: Vec<Row> = Vec::with_capacity(10_000);
    let mut probe: Option<(String, String, String)> = None;
    let t = Instant::now();
    for i in 0..b.customers {
        let outlet = &outlets[rng.gen_range(0..outlets.len())];
        // one in ten is in the public pool
        let owner_id = (i % 10 != 3).then(|| outlet.staff[rng.gen_range(0..outlet.staff.len())]);
        let is_company = rng.gen_bool(0.6);
        let name = if is_company {
            company(&mut rng)
        } else {
            person(&mut rng)
        };
        owed += per;
        let mut contacts = Vec::new();
        while owed >= 1.0 {
            owed -= 1.0;
            contacts.push((person(&mut rng), mobile(&mut rng)));
        }
        let phone = mobile(&mut rng);
        if i == b.customers / 2 {
            let who = contacts
                .first()
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| person(&mut rng));
            probe = Some((name.clone(), phone.clone(), who));
        }
        batch.push(Row {
            id: i as i64 + 1,
            org_id: outlet.id,
            owner_id,
            kind: if i % 10 == 0 { "lead" } else { "customer" },
            company: is_company.then(|| name.clone()),
            name,
            phone,
            importance: IMPORTANCE[rng.gen_range(0..IMPORTANCE.len())],
            contacts,
        });
        if batch.len() == 10_000 {
            write_batch(&mut conn, db, &batch, &mut next_contact, now).await?;
            batch.clear();
            if (i + 1) % 100_000 == 0 {
                println!(
                    "  {} customers in {:.0} s",
                    i + 1,
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }
    if !batch.is_empty() {
        write_batch(&mut conn, db, &batch, &mut next_contact, now).await?;
    }
    if db.backend == Backend::Postgres {
        for table in ["customers", "contacts"] {
            Sql::new(&format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"))
                .execute(&mut *conn)
                .await?;
        }
    }
    drop(conn);
    let (name, phone, person) = probe.context("--customers must be at least 2")?;
    // a word of the middle customer's name, four digits of its phone, its contact's initials
    let word: String = name.chars().skip(2).take(2).collect();
    Ok(Probes {
        name_part: if word.chars().count() == 2 {
            word
        } else {
            name
        },
        phone_part: phone[5..9].to_string(),
        initials: rules::initials(&person),
        manager_branch: branch.0,
    })
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An xlsx of `rows` customers as people send them; one row in twenty repeats the phone of an
/// earlier row (a duplicate to skip). Every row is checked against the customers on file.
fn import_file(rows: usize) -> anyhow::Result<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in [
        "客户名称",
        "单位名称",
        "联系人",
        "手机",
        "行业",
        "地区",
        "重要程度",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(0, c as u16, *h)?;
    }
    let mut existing: Vec<String> = Vec::new();
    for r in 0..rows {
        let row = (r + 1) as u32;
        let name = if rng.gen_bool(0.6) {
            company(&mut rng)
        } else {
            person(&mut rng)
        };
        sheet.write_string(row, 0, format!("{name}{r}"))?;
        sheet.write_string(row, 1, company(&mut rng))?;
        sheet.write_string(row, 2, person(&mut rng))?;
        let phone = mobile(&mut rng);
        if r % 20 == 19 && !existing.is_empty() {
            sheet.write_string(row, 3, existing[rng.gen_range(0..existing.len())].as_str())?;
        } else {
            sheet.write_string(row, 3, phone.as_str())?;
        }
        if r % 20 == 0 && existing.len() < 1000 {
            existing.push(phone);
        }
        sheet.write_string(row, 4, TRADES[rng.gen_range(0..TRADES.len())])?;
        sheet.write_string(row, 5, CITIES[rng.gen_range(0..CITIES.len())])?;
        sheet.write_string(row, 6, "考虑中")?;
    }
    Ok(book.save_to_buffer()?)
}

/// A seeded database kept between runs (`--seed-file`): for SQLite a copy of the file; for
/// PostgreSQL a template database, whose name the file holds. The search probes are kept beside.
struct Kept {
    file: std::path::PathBuf,
    /// The SQLite file the bench runs on; None on PostgreSQL.
    db_file: Option<std::path::PathBuf>,
}

impl Kept {
    fn new(file: &std::path::Path, dir: Option<&std::path::Path>) -> Kept {
        Kept {
            file: file.to_path_buf(),
            db_file: dir.map(|d| d.join("keping.db")),
        }
    }

    fn probes_file(&self) -> std::path::PathBuf {
        self.file.with_extension("probes.json")
    }

    /// The template database's name on PostgreSQL: from the file's name, letters and digits only.
    fn template(&self) -> String {
        let stem: String = self
            .file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("keping_seed_{}", stem.to_ascii_lowercase())
    }

    /// Copies the kept database over the fresh one the bench runs on.
    async fn restore(&self, url: &str) -> anyhow::Result<()> {
        match &self.db_file {
            Some(db_file) => {
                std::fs::copy(&self.file, db_file)?;
            }
            None => {
                let template = std::fs::read_to_string(&self.file)?;
                let (server, fresh) = url.rsplit_once('/').context("a database URL")?;
                copy_database(server, template.trim(), fresh).await?;
            }
        }
        Ok(())
    }

    /// Keeps the database just seeded (no connection may be open to it).
    async fn keep(&self, url: &str) -> anyhow::Result<()> {
        match &self.db_file {
            Some(db_file) => {
                std::fs::copy(db_file, &self.file)?;
            }
            None => {
                let template = self.template();
                let (server, fresh) = url.rsplit_once('/').context("a database URL")?;
                copy_database(server, fresh, &template).await?;
                std::fs::write(&self.file, &template)?;
            }
        }
        Ok(())
    }
}

/// Replaces PostgreSQL database `target` on `server` (a URL without a database) with a copy of
/// `source`.
async fn copy_database(server: &str, source: &str, target: &str) -> anyhow::Result<()> {
    pg_admin(
        &format!("{server}/postgres"),
        &[
            format!("DROP DATABASE IF EXISTS \"{target}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{target}\" TEMPLATE \"{source}\""),
        ],
    )
    .await
}

/// A customer's own fields as the yardstick answers them.
#[derive(sqlx::FromRow, serde::Serialize)]
struct BareCustomer {
    id: i64,
    kind: String,
    is_company: i64,
    name: String,
    company: Option<String>,
    code: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    region: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    customer_group: Option<String>,
    tags: String,
    importance: Option<String>,
    intent: Option<String>,
    expected_close_by: Option<String>,
    hobbies: Option<String>,
    birthday: Option<String>,
    birthday_reminder: i64,
    notes: Option<String>,
    blacklisted: i64,
    blacklist_reason: Option<String>,
    custom: String,
    org_id: i64,
    owner_id: Option<i64>,
    last_follow_up_at: Option<i64>,
    next_follow_up_on: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// The yardstick for the list: a bare axum + SQLite server answering the newest 50
/// customers as JSON, each with the fields of its row that keping's list answers too (no sign-in,
/// scope, filter, joined names or formatting), on the same database and driven like keping,
/// so that the two figures come from the same machine at the same time. It runs on a runtime of
/// its own, as keping's server runs in a process of its own; answers its URL.
fn bare_list(db_file: std::path::PathBuf) -> anyhow::Result<String> {
    use axum::{extract::State, routing::get, Json, Router};
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime for the yardstick");
        runtime.block_on(async move {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&db_file)
                        .read_only(true),
                )
                .await
                .expect("the bench database");
            let app = Router::new()
                .route(
                    "/customers",
                    get(|State(pool): State<sqlx::SqlitePool>| async move {
                        sqlx::query_as::<_, BareCustomer>(
                            "SELECT id, kind, is_company, name, company, code, phone, email, address, region, industry, source, customer_group, tags, importance, intent, expected_close_by, hobbies, birthday, birthday_reminder, notes, blacklisted, blacklist_reason, custom, org_id, owner_id, last_follow_up_at, next_follow_up_on, created_at, updated_at FROM customers ORDER BY id DESC LIMIT 50",
                        )
                        .fetch_all(&pool)
                        .await
                        .map(Json)
                        .map_err(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                    }),
                )
                .with_state(pool);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port on 127.0.0.1");
            let addr = listener.local_addr().expect("the yardstick's address");
            let _ = url_tx.send(format!("http://{addr}/customers"));
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(url_rx.recv_timeout(Duration::from_secs(30))?)
}

/// Polls an import's progress until it is done and answers how long each phase lasted (reading
/// includes the upload).
async fn import_phases(
    client: reqwest::Client,
    url: String,
    token: String,
) -> anyhow::Result<Vec<(String, f64)>> {
    let mut phases: Vec<(String, Instant)> = Vec::new();
    loop {
        let r = client.get(&url).bearer_auth(&token).send().await?;
        if r.status().is_success() {
            let progress: serde_json::Value = r.json().await?;
            let phase = progress["phase"].as_str().unwrap_or_default().to_string();
            if phases.last().is_none_or(|(p, _)| *p != phase) {
                phases.push((phase.clone(), Instant::now()));
            }
            if phase == "done" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(phases
        .windows(2)
        .map(|w| (w[0].0.clone(), (w[1].1 - w[0].1).as_secs_f64()))
        .collect())
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    Ok(login["token"]
        .as_str()
        .with_context(|| format!("login of {user} failed: {login}"))?
        .to_string())
}

pub async fn customers(b: CustomerBench) -> anyhow::Result<()> {
    let (url, dir) = fresh_database(b.database_url.as_deref()).await?;
    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    println!(
        "keping bench customers ({backend}): {} customers, {} contacts, {} requests per case at concurrency {}",
        b.customers, b.contacts, b.requests, b.concurrency
    );
    let t = Instant::now();
    let kept = b
        .seed_file
        .as_ref()
        .map(|file| Kept::new(file, dir.as_deref()));
    let probes = match &kept {
        Some(kept) if kept.file.exists() => {
            kept.restore(&url).await?;
            let probes: Probes = serde_json::from_slice(&std::fs::read(kept.probes_file())?)?;
            // the kept database may be of an older schema
            Db::connect(&url).await?.pool.close().await;
            println!("copied the seeded database in from {}", kept.file.display());
            probes
        }
        _ => {
            let db = Db::connect(&url).await?;
            keping_store::accounts::bootstrap(&db, &auth::hash_password(PASSWORD)).await?;
            let p = seed_customers(&db, &b).await?;
            Sql::new("ANALYZE").execute(&db.pool).await?;
            if dir.is_some() {
                // the file alone holds everything once the WAL is copied in
                Sql::new("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&db.pool)
                    .await?;
            }
            db.pool.close().await;
            println!("seeded in {:.1} s", t.elapsed().as_secs_f64());
            if let Some(kept) = &kept {
                kept.keep(&url).await?;
                std::fs::write(kept.probes_file(), serde_json::to_vec(&p)?)?;
            }
            p
        }
    };

    let (mut child, base) = server(&url, PASSWORD).await?;
    let pid = child.id().context("no child pid")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency * 2)
        .build()?;
    let admin = login(&client, &base, "admin", PASSWORD).await?;
    let manager = login(&client, &base, "manager", MANAGER_PASSWORD).await?;

    let list = format!("{base}/api/v1/customers?limit=50&kind=customer&importance=considering");
    let cases = [
        (
            "list: branch manager, kind+importance, 50".to_string(),
            list.clone(),
        ),
        (
            format!("list: same, sorted by name (org {})", probes.manager_branch),
            format!("{list}&sort=name"),
        ),
        (
            format!("search: name part '{}'", probes.name_part),
            format!(
                "{base}/api/v1/customers?limit=50&q={}",
                enc(&probes.name_part)
            ),
        ),
        (
            format!("search: phone fragment '{}'", probes.phone_part),
            format!("{base}/api/v1/customers?limit=50&q={}", probes.phone_part),
        ),
        (
            format!("search: pinyin initials '{}'", probes.initials),
            format!("{base}/api/v1/customers?limit=50&q={}", probes.initials),
        ),
    ];
    let mut cases = cases.to_vec();
    if let Some(dir) = &dir {
        let bare = bare_list(dir.join("keping.db"))?;
        cases.push(("yardstick: bare axum + SQLite list of 50".to_string(), bare));
    }
    println!(
        "\n{:<52} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6}",
        "case", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "errors"
    );
    for (name, url) in &cases {
        drive(&client, url, &manager, b.requests.min(200), b.concurrency).await?; // warm-up
        let (times, wall, errors) =
            drive(&client, url, &manager, b.requests, b.concurrency).await?;
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

    if b.import_rows > 0 {
        let file = import_file(b.import_rows)?;
        let t = Instant::now();
        let form = reqwest::multipart::Form::new()
            .text("progress", "bench")
            .text("duplicates", "skip")
            .part(
                "file",
                reqwest::multipart::Part::bytes(file.clone()).file_name("bench.xlsx"),
            );
        let phases = tokio::spawn(import_phases(
            client.clone(),
            format!("{base}/api/v1/customers/imports/progress/bench"),
            admin.clone(),
        ));
        let r = client
            .post(format!("{base}/api/v1/customers/imports"))
            .bearer_auth(&admin)
            .multipart(form)
            .timeout(Duration::from_secs(600))
            .send()
            .await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        // the poll ends at once once the answer is in; an import refused before it began is never followed
        let phases = tokio::time::timeout(Duration::from_secs(5), phases)
            .await
            .unwrap_or(Ok(Ok(Vec::new())))??;
        println!(
            "\nimport of {} rows from xlsx ({:.1} MiB, duplicates skipped): {:.1} s (HTTP {status}, created {}, duplicates {}, rejected {})",
            b.import_rows,
            file.len() as f64 / 1048576.0,
            t.elapsed().as_secs_f64(),
            body["created"],
            body["duplicates"].as_array().map_or(0, Vec::len),
            body["rejected"].as_array().map_or(0, Vec::len),
        );
        println!(
            "  phases (polled): {}",
            phases
                .iter()
                .map(|(phase, secs)| format!("{phase} {secs:.1} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // every tenth seeded customer is a lead: 100,000 of 1,000,000
    let t = Instant::now();
    let r = client
        .get(format!("{base}/api/v1/customers/export?kind=lead"))
        .bearer_auth(&admin)
        .timeout(Duration::from_secs(600))
        .send()
        .await?;
    let status = r.status();
    let bytes = r.bytes().await?;
    println!(
        "export of {} leads to xlsx: {:.1} s (HTTP {status}, {:.1} MiB)",
        b.customers.div_ceil(10),
        t.elapsed().as_secs_f64(),
        bytes.len() as f64 / 1048576.0
    );
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
