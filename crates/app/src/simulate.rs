//! `keping simulate`: drives the device API like real counters — sign-in, Start, End, a press —
//! with occasional duplicate presses and offline bursts uploaded late. For demos and load tests;
//! only ever point it at a server of your own.

use anyhow::{bail, Context};
use chrono::Utc;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Simulation {
    pub base_url: String,
    pub username: String,
    pub password: String,
    pub terminals: usize,
    /// Services per second per terminal.
    pub rate: f64,
    pub duration: Duration,
    /// Only presses, no Start/End: plain keypads with bare presses counted (the load test of the press endpoint).
    pub presses_only: bool,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    outcomes: BTreeMap<String, u64>,
    press_latency: Vec<Duration>,
}

async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Windows per simulated outlet, as at a large outlet: the day's figures an alert carries are per outlet.
const WINDOWS_PER_OUTLET: usize = 10;

/// The org with this code, made under `parent` when missing; answers its id.
async fn org(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    code: &str,
    name: &str,
    kind: &str,
    parent: &Value,
) -> anyhow::Result<i64> {
    let (_, found) = api(
        client,
        reqwest::Method::GET,
        format!("{base}/api/v1/orgs?q={code}"),
        token,
        None,
    )
    .await?;
    if let Some(id) = found["items"]
        .as_array()
        .and_then(|items| items.iter().find(|o| o["code"] == code))
        .and_then(|o| o["id"].as_i64())
    {
        return Ok(id);
    }
    let (status, made) = api(
        client,
        reqwest::Method::POST,
        format!("{base}/api/v1/orgs"),
        token,
        Some(json!({"name": name, "code": code, "parent_id": parent, "kind": kind})),
    )
    .await?;
    if status != 201 {
        bail!("cannot create the simulation org {code}: {made}");
    }
    made["id"].as_i64().context("org id")
}

/// A branch `SIM` with outlets of ten windows, a clerk and a keypad each; answers the keypads' tokens.
async fn provision(client: &reqwest::Client, s: &Simulation) -> anyhow::Result<Vec<String>> {
    let base = &s.base_url;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": s.username, "password": s.password}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"]
        .as_str()
        .context("cannot sign in: check --username and --password")?
        .to_string();
    let post = |path: &str, body: Value| {
        api(
            client,
            reqwest::Method::POST,
            format!("{base}{path}"),
            &token,
            Some(body),
        )
    };
    let (_, root) = api(
        client,
        reqwest::Method::GET,
        format!("{base}/api/v1/orgs?limit=1"),
        &token,
        None,
    )
    .await?;
    let root = root["items"][0]["id"].clone();
    let branch = org(client, base, &token, "SIM", "模拟分行", "branch", &root).await?;
    // presses count without Start/End only where the org says so
    let (_, mut settings) = api(
        client,
        reqwest::Method::GET,
        format!("{base}/api/v1/orgs/{branch}/evaluation-settings"),
        &token,
        None,
    )
    .await?;
    settings["bare_presses_count"] = json!(s.presses_only);
    settings["press_interval_seconds"] = json!(0);
    api(
        client,
        reqwest::Method::PUT,
        format!("{base}/api/v1/orgs/{branch}/evaluation-settings"),
        &token,
        Some(settings),
    )
    .await?;
    let (_, roles) = api(
        client,
        reqwest::Method::GET,
        format!("{base}/api/v1/roles"),
        &token,
        None,
    )
    .await?;
    let role = match roles["items"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "模拟柜员"))
    {
        Some(r) => r["id"].clone(),
        None => post(
            "/api/v1/roles",
            json!({"name": "模拟柜员", "permissions": [], "data_level": "self"}),
        )
        .await?
        .1["id"]
            .clone(),
    };
    let mut tokens = Vec::with_capacity(s.terminals);
    let mut outlet = 0;
    for i in 1..=s.terminals {
        if (i - 1) % WINDOWS_PER_OUTLET == 0 {
            let n = (i - 1) / WINDOWS_PER_OUTLET + 1;
            outlet = org(
                client,
                base,
                &token,
                &format!("SIM-{n:03}"),
                &format!("模拟网点{n}"),
                "outlet",
                &json!(branch),
            )
            .await?;
        }
        let code = format!("SIM{i:04}");
        let (_, found) = api(
            client,
            reqwest::Method::GET,
            format!("{base}/api/v1/windows?org_id={outlet}&q={code}"),
            &token,
            None,
        )
        .await?;
        let window = match found["items"].as_array().and_then(|w| w.first()) {
            Some(w) => w["id"].clone(),
            None => post(
                "/api/v1/windows",
                json!({"org_id": outlet, "name": format!("{i}号窗口"), "code": code}),
            )
            .await?
            .1["id"]
                .clone(),
        };
        post("/api/v1/users", json!({"username": format!("sim{i:04}"), "password": "simulated-clerk", "name": format!("模拟柜员{i}"), "employee_no": code, "org_id": outlet, "roles": [{"role_id": role, "org_id": outlet}]})).await?;
        let (status, t) = post(
            "/api/v1/terminals",
            json!({"window_id": window, "kind": "keypad", "name": "simulator"}),
        )
        .await?;
        if status != 201 {
            bail!("cannot register a terminal: {t}");
        }
        tokens.push(t["token"].as_str().context("terminal token")?.to_string());
    }
    Ok(tokens)
}

const KEYS: [(&str, u32); 4] = [
    ("very_satisfied", 60),
    ("satisfied", 30),
    ("neutral", 7),
    ("dissatisfied", 3),
];

fn pick_key() -> &'static str {
    let mut roll = rand::thread_rng().gen_range(0..100);
    for (k, w) in KEYS {
        if roll < w {
            return k;
        }
        roll -= w;
    }
    KEYS[0].0
}

/// One counter, until the deadline.
async fn counter(
    client: reqwest::Client,
    base: String,
    token: String,
    n: usize,
    s: Arc<Simulation>,
    tally: Arc<Mutex<Tally>>,
    deadline: Instant,
) {
    let url = |p: &str| format!("{base}/api/v1/device{p}");
    let count = |t: &Arc<Mutex<Tally>>, ok: bool| {
        let mut t = t.lock().unwrap();
        t.requests += 1;
        if !ok {
            t.errors += 1;
        }
    };
    if !s.presses_only {
        let r = api(
            &client,
            reqwest::Method::POST,
            url("/sign-in"),
            &token,
            Some(json!({"employee_no": format!("SIM{n:04}")})),
        )
        .await;
        count(&tally, r.is_ok_and(|(st, _)| st == 200));
    }
    let interval = Duration::from_secs_f64(1.0 / s.rate.max(0.001));
    let mut offline: Vec<Value> = Vec::new();
    let mut next = Instant::now() + interval.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
    while Instant::now() < deadline {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        if !s.presses_only {
            let r = api(
                &client,
                reqwest::Method::POST,
                url("/services"),
                &token,
                Some(json!({})),
            )
            .await;
            let ok = matches!(&r, Ok((201, _)));
            count(&tally, ok);
            if let Ok((201, body)) = r {
                let id = body["service_id"].as_i64().unwrap_or_default();
                let r = api(
                    &client,
                    reqwest::Method::POST,
                    url(&format!("/services/{id}/end")),
                    &token,
                    None,
                )
                .await;
                count(&tally, r.is_ok_and(|(st, _)| st == 200));
            }
        }
        let press = json!({"key": pick_key(), "idempotency_key": uuid_like(), "pressed_at": Utc::now().to_rfc3339()});
        let roll: f64 = rand::thread_rng().gen();
        if roll < 0.02 || (!offline.is_empty() && offline.len() < 5) {
            // the network is down for a moment: keep the press for later
            offline.push(press);
            continue;
        }
        let mut batch = std::mem::take(&mut offline);
        batch.push(press.clone());
        if roll > 0.97 {
            // a clerk's double press, or a retry of the same upload
            batch.push(press);
        }
        for mut p in batch {
            p["sent_at"] = json!(Utc::now().to_rfc3339());
            let t = Instant::now();
            let r = api(
                &client,
                reqwest::Method::POST,
                url("/presses"),
                &token,
                Some(p),
            )
            .await;
            let elapsed = t.elapsed();
            let mut tl = tally.lock().unwrap();
            tl.requests += 1;
            tl.press_latency.push(elapsed);
            match r {
                Ok((201, b)) => {
                    *tl.outcomes
                        .entry(b["reason"].as_str().unwrap_or("counted").to_string())
                        .or_default() += 1
                }
                Ok((200, _)) => *tl.outcomes.entry("replayed".into()).or_default() += 1,
                Ok((st, _)) => {
                    tl.errors += 1;
                    *tl.outcomes.entry(format!("http_{st}")).or_default() += 1;
                }
                Err(_) => {
                    tl.errors += 1;
                    *tl.outcomes.entry("network_error".into()).or_default() += 1;
                }
            }
        }
    }
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::thread_rng().gen();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn run(s: Simulation) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s.terminals.max(1))
        .timeout(Duration::from_secs(30))
        .build()?;
    println!("provisioning {} terminals at {} …", s.terminals, s.base_url);
    let tokens = provision(&client, &s).await?;
    let s = Arc::new(s);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let deadline = start + s.duration;
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        tasks.push(tokio::spawn(counter(
            client.clone(),
            s.base_url.clone(),
            token,
            i + 1,
            s.clone(),
            tally.clone(),
            deadline,
        )));
    }
    for t in tasks {
        t.await?;
    }
    let wall = start.elapsed().as_secs_f64();
    let mut t = tally.lock().unwrap();
    t.press_latency.sort();
    let pct = |p: f64| {
        t.press_latency
            .get(((t.press_latency.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "\n{} requests in {wall:.1} s ({:.0}/s), {} errors",
        t.requests,
        t.requests as f64 / wall,
        t.errors
    );
    println!(
        "presses: {} ({:.0}/s); latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        t.press_latency.len(),
        t.press_latency.len() as f64 / wall,
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    for (outcome, n) in &t.outcomes {
        println!("  {outcome:<20} {n}");
    }
    Ok(())
}
