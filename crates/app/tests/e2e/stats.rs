//! Evaluation statistics: figures computed by hand, period boundaries at midnight in Asia/Shanghai,
//! comparisons, the fair staff ranking, roll-ups against raw rows, and the xlsx export.

use crate::api_evaluation::{counter, end, press, start, Counter};
use crate::both;
use crate::harness::{assert_error, TestApp};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both!(
    live_figures,
    midnight_and_comparisons,
    fair_ranking,
    rollups_match_raw_rows,
    added_figures,
    live_prompts_and_duty,
    stats_pages,
    ratings_export
);

fn ms(rfc: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc)
        .unwrap()
        .timestamp_millis()
}

fn shanghai_today() -> String {
    (Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

async fn stats(app: &TestApp, query: &str) -> Value {
    let (status, body) = app
        .get(
            &format!("/api/v1/stats/evaluation?{query}"),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

fn close(v: &Value, expected: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((got - expected).abs() < 1e-3, "{got} != {expected}");
}

async fn sign_in(app: &TestApp, c: &Counter, employee_no: &str) {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/device/sign-in",
            Some(&c.terminal),
            Some(json!({"employee_no": employee_no})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn check_rollups(app: &TestApp) {
    let report = keping_store::stats::rebuild(&app.running.state.db, true)
        .await
        .unwrap();
    assert_eq!(report.differences, 0, "{:?}", report.examples);
    assert!(report.cells > 0);
}

async fn live_figures(app: TestApp) {
    let c = counter(&app, "A").await;
    sign_in(&app, &c, "CA").await;
    // three services: a very satisfied rating and a second press for the same prompt (not counted),
    // a dissatisfied one, and one left unrated
    let s1 = start(&app, &c).await;
    end(&app, &c, s1).await;
    assert_eq!(
        press(&app, &c, "very_satisfied", "k1").await.1["counted"],
        true
    );
    assert_eq!(press(&app, &c, "satisfied", "k2").await.1["counted"], false);
    let s2 = start(&app, &c).await;
    end(&app, &c, s2).await;
    assert_eq!(
        press(&app, &c, "dissatisfied", "k3").await.1["counted"],
        true
    );
    let s3 = start(&app, &c).await;
    end(&app, &c, s3).await;

    let today = shanghai_today();
    let root = app.root_id().await;
    let body = stats(
        &app,
        &format!("org_id={root}&from={today}&to={today}&group_by=none"),
    )
    .await;
    let t = &body["total"];
    assert_eq!(t["services"], 3);
    assert_eq!(t["rated"], 2);
    assert_eq!(t["counts"], json!({"very_satisfied": 1, "dissatisfied": 1}));
    assert_eq!(
        (
            t["positive"].clone(),
            t["neutral"].clone(),
            t["negative"].clone()
        ),
        (json!(1), json!(0), json!(1))
    );
    close(&t["satisfaction_rate"], 0.5);
    close(&t["rating_rate"], 2.0 / 3.0);
    assert!(t["avg_handle_seconds"].as_f64().unwrap() >= 0.0);
    let removed: i64 = t["removed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(removed, 1, "{t}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);

    // grouped by outlet, window, staff: one row each, named
    for (g, key, label) in [
        ("outlet", c.outlet, "A网点"),
        ("org", c.outlet, "A网点"),
        ("window", c.window, "1号窗口"),
        ("staff", c.staff_id, "王芳"),
    ] {
        let body = stats(
            &app,
            &format!("org_id={root}&from={today}&to={today}&group_by={g}"),
        )
        .await;
        // removed presses belong to no staff member: they make a row of their own (key 0)
        let rows: Vec<&Value> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["key"] != 0)
            .collect();
        assert_eq!(rows.len(), 1, "{g}: {body}");
        assert_eq!(rows[0]["key"], key, "{g}");
        assert_eq!(rows[0]["label"], label, "{g}");
        assert_eq!(rows[0]["services"], 3, "{g}");
    }
    check_rollups(&app).await;

    // bad input
    let q = |s: &str| format!("/api/v1/stats/evaluation?{s}");
    assert_error(
        &app.get(
            &q(&format!("org_id={root}&from=2026-03-02&to=2026-03-01")),
            &app.admin_token,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reversed_range",
        Some("to"),
    );
    assert_error(
        &app.get(
            &q(&format!(
                "org_id={root}&from=2026-03-01&to=2026-03-01&group_by=planet"
            )),
            &app.admin_token,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_group_by",
        Some("group_by"),
    );
    assert_error(
        &app.get(
            &q("org_id=999999&from=2026-03-01&to=2026-03-01"),
            &app.admin_token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    // another outlet's manager sees his own outlet, and A answers 404 to him
    let b = app.org("B网点", "B", root).await;
    let role = app
        .role(
            "网点经理",
            &["stats.view", "stats.export"],
            "org_and_children",
        )
        .await;
    let (_, token) = app.person("managerb", b, role).await;
    let (status, body) = app
        .get(&q(&format!("org_id={b}&from={today}&to={today}")), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"]["services"], 0);
    assert_error(
        &app.get(
            &q(&format!("org_id={}&from={today}&to={today}", c.outlet)),
            &token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (status, _) = app
        .get(
            &format!(
                "/api/v1/stats/evaluation/export?org_id={}&from={today}&to={today}",
                c.outlet
            ),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // the export holds the same numbers as the answer, filters in the header
    let resp = app
        .client
        .get(format!(
            "{}/api/v1/stats/evaluation/export?org_id={root}&from={today}&to={today}&group_by=window",
            app.url
        ))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap().to_vec();
    use calamine::{Data, Reader};
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range("统计").unwrap();
    let cell = |r: u32, c: u32| sheet.get_value((r, c)).cloned().unwrap_or(Data::Empty);
    assert_eq!(cell(1, 1), Data::String(format!("{today} – {today}")));
    assert_eq!(cell(2, 1), Data::String("window".into()));
    assert_eq!(cell(6, 1), Data::String("1号窗口".into()));
    assert_eq!(cell(6, 2), Data::Float(3.0));
    assert_eq!(cell(6, 3), Data::Float(2.0));
    assert_eq!(cell(6, 8), Data::Float(0.5));
    assert_eq!(cell(7, 1), Data::String("合计 total".into()));
    assert_eq!(cell(7, 2), Data::Float(3.0));
    let (_, audit) = app
        .get("/api/v1/audit?action=stats.export", &app.admin_token)
        .await;
    assert!(audit.to_string().contains("stats.export"), "{audit}");
}

/// Raw rows at chosen moments, then roll-ups rebuilt from them.
async fn midnight_and_comparisons(app: TestApp) {
    let c = counter(&app, "M").await;
    let db = &app.running.state.db;
    let t0 = ms("2026-02-28T16:00:00Z"); // 2026-03-01 00:00 in Shanghai
    let service = |id: i64, started: i64, ended: i64| {
        let db = db.clone();
        let c = (c.window, c.outlet, c.staff_id);
        async move {
            sqlx::query("INSERT INTO services (id, window_id, org_id, staff_id, started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id).bind(c.0).bind(c.1).bind(c.2).bind(started).bind(ended)
                .execute(&db.pool).await.unwrap();
        }
    };
    let rating = |service: Option<i64>, key: &'static str, polarity: &'static str, at: i64| {
        let db = db.clone();
        let c = (c.window, c.outlet, c.staff_id);
        async move {
            sqlx::query("INSERT INTO ratings (press_id, service_id, window_id, org_id, staff_id, key, label, polarity, rated_at) VALUES (0, $1, $2, $3, $4, $5, $5, $6, $7)")
                .bind(service).bind(c.0).bind(c.1).bind(c.2).bind(key).bind(polarity).bind(at)
                .execute(&db.pool).await.unwrap();
        }
    };
    // a: ends 1 ms before midnight (28 Feb), rated before midnight
    service(9001, t0 - 60_000, t0 - 1).await;
    rating(Some(9001), "satisfied", "positive", t0 - 1).await;
    // b: ends at midnight exactly (1 March), 30 s
    service(9002, t0 - 30_000, t0).await;
    rating(Some(9002), "very_satisfied", "positive", t0 + 5_000).await;
    // c: ends 31 March 23:59:59 local, 120 s
    service(9003, ms("2026-03-31T15:57:59Z"), ms("2026-03-31T15:59:59Z")).await;
    // d: ends 1 April 00:00 local
    service(9004, ms("2026-03-31T15:59:00Z"), ms("2026-03-31T16:00:00Z")).await;
    // a bare press in March
    rating(None, "neutral", "neutral", ms("2026-03-15T02:00:00Z")).await;
    // e: March last year; f: in the previous period (29 Jan – 28 Feb)
    service(9005, ms("2025-03-10T03:59:00Z"), ms("2025-03-10T04:00:00Z")).await;
    service(9006, ms("2026-02-10T03:59:00Z"), ms("2026-02-10T04:00:00Z")).await;
    let report = keping_store::stats::rebuild(db, false).await.unwrap();
    assert!(report.rewritten);
    check_rollups(&app).await;

    let root = app.root_id().await;
    let march = stats(
        &app,
        &format!("org_id={root}&from=2026-03-01&to=2026-03-31&compare=previous"),
    )
    .await;
    let t = &march["total"];
    assert_eq!(t["services"], 2, "{t}");
    assert_eq!(t["rated"], 1);
    assert_eq!(t["counts"], json!({"very_satisfied": 1, "neutral": 1}));
    assert_eq!(t["positive"], 1);
    assert_eq!(t["neutral"], 1);
    close(&t["satisfaction_rate"], 0.5);
    close(&t["rating_rate"], 0.5);
    close(&t["avg_handle_seconds"], 75.0);
    let prev = &march["compare"]["previous"];
    assert_eq!(
        (prev["from"].as_str(), prev["to"].as_str()),
        (Some("2026-01-29"), Some("2026-02-28"))
    );
    assert_eq!(prev["total"]["services"], 2);
    assert_eq!(prev["total"]["rated"], 1);
    let ly = &march["compare"]["last_year"];
    assert_eq!(
        (ly["from"].as_str(), ly["to"].as_str()),
        (Some("2025-03-01"), Some("2025-03-31"))
    );
    assert_eq!(ly["total"]["services"], 1);
    assert_eq!(ly["total"]["satisfaction_rate"], Value::Null);
    assert_eq!(ly["total"]["rating_rate"], json!(0.0));

    // the last day of February: only a, whose 59.999 s count
    let feb28 = stats(
        &app,
        &format!("org_id={root}&from=2026-02-28&to=2026-02-28"),
    )
    .await;
    assert_eq!(feb28["total"]["services"], 1);
    close(&feb28["total"]["avg_handle_seconds"], 59.999);
    close(&feb28["total"]["satisfaction_rate"], 1.0);

    // by day across midnight
    let days = stats(
        &app,
        &format!("org_id={root}&from=2026-02-28&to=2026-03-01&group_by=day"),
    )
    .await;
    let rows: Vec<(Value, Value)> = days["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].clone(), r["services"].clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (json!("2026-02-28"), json!(1)),
            (json!("2026-03-01"), json!(1))
        ]
    );

    // by month over partial months: month rows for March, day rows at the edges
    let months = stats(
        &app,
        &format!("org_id={root}&from=2026-02-15&to=2026-04-10&group_by=month"),
    )
    .await;
    let rows: Vec<(Value, Value)> = months["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].clone(), r["services"].clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (json!("2026-02"), json!(1)),
            (json!("2026-03"), json!(2)),
            (json!("2026-04"), json!(1))
        ]
    );
    assert_eq!(months["total"]["services"], 4);

    // by hour: b ended in hour 0 of 1 March, c in hour 23 of 31 March
    let hours = stats(
        &app,
        &format!("org_id={root}&from=2026-03-01&to=2026-03-31&group_by=hour"),
    )
    .await;
    let rows: Vec<(Value, Value)> = hours["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["services"] != 0)
        .map(|r| (r["key"].clone(), r["services"].clone()))
        .collect();
    assert_eq!(rows, vec![(json!(0), json!(1)), (json!(23), json!(1))]);
}

async fn fair_ranking(app: TestApp) {
    let c = counter(&app, "R").await;
    let role = app.role("柜员R2", &[], "self").await;
    let (big, _) = app.person("bigclerk", c.outlet, role).await;
    let db = &app.running.state.db;
    let at = ms("2026-05-06T02:00:00Z");
    let bulk = |staff: i64, n: i64, key: &'static str, polarity: &'static str| {
        let db = db.clone();
        let (w, o) = (c.window, c.outlet);
        async move {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
                 INSERT INTO ratings (press_id, window_id, org_id, staff_id, key, label, polarity, rated_at) \
                 SELECT 0, $2, $3, $4, $5, $5, $6, $7 + i FROM n",
            )
            .bind(n).bind(w).bind(o).bind(staff).bind(key).bind(polarity).bind(at)
            .execute(&db.pool).await.unwrap();
        }
    };
    // 3 out of 3 satisfied against 2,900 out of 3,000
    bulk(c.staff_id, 3, "satisfied", "positive").await;
    bulk(big, 2900, "satisfied", "positive").await;
    bulk(big, 100, "dissatisfied", "negative").await;
    keping_store::stats::rebuild(db, false).await.unwrap();
    check_rollups(&app).await;
    let root = app.root_id().await;
    let body = stats(
        &app,
        &format!("org_id={root}&from=2026-05-01&to=2026-05-31&group_by=staff"),
    )
    .await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Wilson lower bounds (z = 1.96), by hand: 2900/3000 → 0.9596; 3/3 → 0.4385
    assert_eq!(rows[0]["key"], big);
    assert_eq!(rows[0]["rank"], 1);
    close(&rows[0]["satisfaction_rate"], 2900.0 / 3000.0);
    close(&rows[0]["satisfaction_lower_bound"], 0.9596);
    assert_eq!(rows[1]["key"], c.staff_id);
    assert_eq!(rows[1]["rank"], 2);
    close(&rows[1]["satisfaction_rate"], 1.0);
    close(&rows[1]["satisfaction_lower_bound"], 0.4385);
    assert_eq!(body["total"]["ratings"], 3003);
}

/// A random mix of services, presses and duplicates through the device API: the roll-ups kept
/// on the way equal the ones rebuilt from raw rows, and the answer equals counts of raw rows.
async fn rollups_match_raw_rows(app: TestApp) {
    let a = counter(&app, "X").await;
    let b = counter(&app, "Y").await;
    sign_in(&app, &a, "CX").await;
    let mut seed: u64 = 0x5eed_1234 ^ u64::from(app.backend == crate::Backend::Postgres);
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let keys = ["very_satisfied", "satisfied", "neutral", "dissatisfied"];
    let mut open: [Option<i64>; 2] = [None, None];
    for i in 0..60 {
        let which = next(2) as usize;
        let c = if which == 0 { &a } else { &b };
        match next(4) {
            0 if open[which].is_none() => open[which] = Some(start(&app, c).await),
            1 => {
                if let Some(s) = open[which].take() {
                    end(&app, c, s).await;
                }
            }
            _ => {
                let key = keys[next(4) as usize];
                let (status, body) = press(&app, c, key, &format!("r{i}")).await;
                assert!(status.is_success(), "{body}");
            }
        }
    }
    check_rollups(&app).await;
    let db = &app.running.state.db;
    let count = |q: &'static str| async move {
        let (n,): (i64,) = sqlx::query_as(q).fetch_one(&db.pool).await.unwrap();
        n
    };
    let services = count("SELECT COUNT(*) FROM services WHERE ended_at IS NOT NULL").await;
    let rated = count("SELECT COUNT(*) FROM ratings WHERE service_id IS NOT NULL").await;
    let ratings = count("SELECT COUNT(*) FROM ratings").await;
    let positive = count("SELECT COUNT(*) FROM ratings WHERE polarity = 'positive'").await;
    let removed = count("SELECT COUNT(*) FROM presses WHERE counted = 0").await;
    let today = shanghai_today();
    let root = app.root_id().await;
    let t = stats(&app, &format!("org_id={root}&from={today}&to={today}")).await["total"].clone();
    assert_eq!(t["services"], services);
    assert_eq!(t["rated"], rated);
    assert_eq!(t["ratings"], ratings);
    assert_eq!(t["positive"], positive);
    let got: i64 = t["removed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(got, removed);

    // Folding the pending additions into the roll-ups changes no figure and leaves none pending;
    // the check compares the folded cells alone with the raw rows.
    let pending = count("SELECT COUNT(*) FROM stats_pending").await;
    keping_store::stats::fold_all(db).await.unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM stats_pending").await, 0);
    let folded = count("SELECT COUNT(*) FROM stats_rollup").await;
    assert!(pending == 0 || folded > 0);
    let after =
        stats(&app, &format!("org_id={root}&from={today}&to={today}")).await["total"].clone();
    assert_eq!(after, t);
    check_rollups(&app).await;

    // A rebuild goes window by window; raw rows of window a now name b's outlet (as after a
    // window moved), so b's outlet cells draw on both windows and both must be rebuilt together:
    // parts of one window rewrite them; then neither one part over everything nor parts of one
    // window find anything to change.
    for table in ["services", "ratings"] {
        sqlx::query(&format!(
            "UPDATE {table} SET org_id = $1 WHERE window_id = $2 AND id % 2 = 0"
        ))
        .bind(b.outlet)
        .bind(a.window)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let one_by_one = keping_store::stats::rebuild_in_parts(db, false, 1)
        .await
        .unwrap();
    assert!(one_by_one.differences > 0 && one_by_one.rewritten);
    let whole = keping_store::stats::rebuild_in_parts(db, true, 1000)
        .await
        .unwrap();
    assert_eq!(whole.differences, 0, "{:?}", whole.examples);
    let checked = keping_store::stats::rebuild_in_parts(db, true, 1)
        .await
        .unwrap();
    assert_eq!(checked.differences, 0, "{:?}", checked.examples);
    let t = stats(&app, &format!("org_id={root}&from={today}&to={today}")).await["total"].clone();
    assert_eq!(t["services"], services);
    assert_eq!(t["ratings"], ratings);
}

/// Prompt coverage, p90 handling time, on-duty hours, efficiency and busyness from raw rows at
/// chosen moments (Monday 4 May 2026, Asia/Shanghai), computed by hand.
async fn added_figures(app: TestApp) {
    let c = counter(&app, "F").await;
    let db = &app.running.state.db;
    let service = |id: i64, started: &str, ended: &str| {
        let db = db.clone();
        let c = (c.window, c.outlet, c.staff_id);
        let (started, ended) = (ms(started), ms(ended));
        async move {
            sqlx::query("INSERT INTO services (id, window_id, org_id, staff_id, started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id).bind(c.0).bind(c.1).bind(c.2).bind(started).bind(ended)
                .execute(&db.pool).await.unwrap();
        }
    };
    let duty = |started: &str, ended: &str| {
        let db = db.clone();
        let c = (c.window, c.staff_id);
        let (started, ended) = (ms(started), ms(ended));
        async move {
            sqlx::query("INSERT INTO duties (window_id, staff_id, started_at, ended_at, end_reason) VALUES ($1, $2, $3, $4, 'signed_out')")
                .bind(c.0).bind(c.1).bind(started).bind(ended)
                .execute(&db.pool).await.unwrap();
        }
    };
    // on duty 09:30–11:30 and 14:00–15:00 local: 3 hours
    duty("2026-05-04T09:30:00+08:00", "2026-05-04T11:30:00+08:00").await;
    duty("2026-05-04T14:00:00+08:00", "2026-05-04T15:00:00+08:00").await;
    // a: 20 s, its prompt cut short by b's Start 1 s later (not offered)
    service(
        9101,
        "2026-05-04T10:00:00+08:00",
        "2026-05-04T10:00:20+08:00",
    )
    .await;
    // b: 60 s, next Start 3 min 39 s later; c: 120 s; d: 600 s, no next Start
    service(
        9102,
        "2026-05-04T10:00:21+08:00",
        "2026-05-04T10:01:21+08:00",
    )
    .await;
    service(
        9103,
        "2026-05-04T10:05:00+08:00",
        "2026-05-04T10:07:00+08:00",
    )
    .await;
    service(
        9104,
        "2026-05-04T10:30:00+08:00",
        "2026-05-04T10:40:00+08:00",
    )
    .await;
    // a duty still open counts nothing yet
    sqlx::query("INSERT INTO duties (window_id, staff_id, started_at) VALUES ($1, $2, $3)")
        .bind(c.window)
        .bind(c.staff_id)
        .bind(ms("2026-05-04T16:00:00+08:00"))
        .execute(&db.pool)
        .await
        .unwrap();
    let report = keping_store::stats::rebuild(db, false).await.unwrap();
    assert!(report.rewritten);
    check_rollups(&app).await;

    let q = format!("org_id={}&from=2026-05-04&to=2026-05-04", c.outlet);
    let t = stats(&app, &format!("{q}&group_by=none")).await["total"].clone();
    assert_eq!(t["services"], 4, "{t}");
    assert_eq!(t["prompts_offered"], 3);
    close(&t["prompt_coverage"], 0.75);
    // handling times 20, 60, 120, 600 s: the 4th of 4 (nearest rank of 90 %) is in the 420–600 s bucket
    close(&t["avg_handle_seconds"], 200.0);
    close(&t["p90_handle_seconds"], 600.0);
    close(&t["on_duty_hours"], 3.0);
    close(&t["services_per_hour"], 4.0 / 3.0);
    // 800 s served in 10,800 s open
    close(&t["busyness"], 800.0 / 10_800.0);

    // by hour: the duty is cut at the hour edges
    let body = stats(&app, &format!("{q}&group_by=hour")).await;
    let hour = |h: i64| {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == h)
            .cloned()
            .unwrap_or_else(|| panic!("no hour {h}: {body}"))
    };
    close(&hour(9)["on_duty_hours"], 0.5);
    assert_eq!(hour(9)["busyness"], json!(0.0));
    assert_eq!(hour(9)["prompt_coverage"], Value::Null);
    close(&hour(10)["on_duty_hours"], 1.0);
    close(&hour(10)["services_per_hour"], 4.0);
    close(&hour(10)["busyness"], 800.0 / 3600.0);
    close(&hour(11)["on_duty_hours"], 0.5);
    close(&hour(14)["on_duty_hours"], 1.0);
    assert!(body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["key"] != 16));

    // by staff: all of it is his
    let body = stats(&app, &format!("{q}&group_by=staff")).await;
    let row = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == c.staff_id)
        .cloned()
        .unwrap();
    close(&row["on_duty_hours"], 3.0);
    close(&row["prompt_coverage"], 0.75);
    // a day without anything: nulls, not zeros divided by zero
    let t = stats(
        &app,
        &format!("org_id={}&from=2026-05-05&to=2026-05-05", c.outlet),
    )
    .await["total"]
        .clone();
    assert_eq!(t["services"], 0);
    assert_eq!(t["prompt_coverage"], Value::Null);
    assert_eq!(t["p90_handle_seconds"], Value::Null);
    assert_eq!(t["services_per_hour"], Value::Null);
    assert_eq!(t["busyness"], Value::Null);
    close(&t["on_duty_hours"], 0.0);
}

/// Through the device API: a Start right after an End takes the prompt back; signing out adds
/// the duty; the roll-ups kept on the way equal the rebuilt ones.
async fn live_prompts_and_duty(app: TestApp) {
    let c = counter(&app, "L").await;
    sign_in(&app, &c, "CL").await;
    let s1 = start(&app, &c).await;
    end(&app, &c, s1).await;
    // the next customer at once: s1's prompt was cut short
    let s2 = start(&app, &c).await;
    end(&app, &c, s2).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/device/sign-out",
            Some(&c.terminal),
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    check_rollups(&app).await;
    let today = shanghai_today();
    let t = stats(
        &app,
        &format!("org_id={}&from={today}&to={today}", c.outlet),
    )
    .await["total"]
        .clone();
    assert_eq!(t["services"], 2, "{t}");
    assert_eq!(t["prompts_offered"], 1);
    close(&t["prompt_coverage"], 0.5);
    assert!(t["on_duty_hours"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["busyness"].as_f64().is_some(), "{t}");
}

async fn page(client: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let resp = client
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// The statistics pages: the table with drill-down links, the ranking explained, the export,
/// the ratings behind a cell (scope, negative details by permission), a clerk's own page.
async fn stats_pages(app: TestApp) {
    let root = app.root_id().await;
    let c = counter(&app, "P").await;
    let db = &app.running.state.db;
    // 2 May 2026 (Shanghai): two services at window W1 by 王芳, one rated dissatisfied with a
    // reason and a phone number, one very satisfied
    for (id, start, end) in [
        (
            9201,
            "2026-05-02T10:00:00+08:00",
            "2026-05-02T10:01:00+08:00",
        ),
        (
            9202,
            "2026-05-02T11:00:00+08:00",
            "2026-05-02T11:03:00+08:00",
        ),
    ] {
        sqlx::query("INSERT INTO services (id, window_id, org_id, staff_id, started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id as i64).bind(c.window).bind(c.outlet).bind(c.staff_id).bind(ms(start)).bind(ms(end))
            .execute(&db.pool).await.unwrap();
    }
    sqlx::query("INSERT INTO ratings (press_id, service_id, window_id, org_id, staff_id, key, label, polarity, negative_reason, phone, rated_at) VALUES (0, 9201, $1, $2, $3, 'dissatisfied', '不满意', 'negative', '服务效率', '13812345678', $4)")
        .bind(c.window).bind(c.outlet).bind(c.staff_id).bind(ms("2026-05-02T10:01:05+08:00"))
        .execute(&db.pool).await.unwrap();
    sqlx::query("INSERT INTO ratings (press_id, service_id, window_id, org_id, staff_id, key, label, polarity, rated_at) VALUES (0, 9202, $1, $2, $3, 'very_satisfied', '非常满意', 'positive', $4)")
        .bind(c.window).bind(c.outlet).bind(c.staff_id).bind(ms("2026-05-02T11:03:05+08:00"))
        .execute(&db.pool).await.unwrap();
    keping_store::stats::rebuild(db, false).await.unwrap();

    let admin = app
        .page_client(&app.url, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let range = "period=custom&from=2026-05-01&to=2026-05-31";
    let (status, html) = page(&admin, &app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/stats\""), "nav entry");
    let (status, html) = page(
        &admin,
        &app,
        &format!("/stats?org_id={root}&{range}&group_by=outlet"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("P网点"));
    // the outlet row drills down to its windows
    assert!(
        html.contains(&format!("org_id={}", c.outlet)) && html.contains("group_by=window"),
        "{html}"
    );
    assert!(html.contains("Wilson"), "the ranking's method in words");
    assert!(html.contains("id=\"stats-export\""));
    assert!(html.contains("id=\"chart-heat\""));
    // satisfaction 1 of 2 = 50.0%, rating rate 2 of 2 = 100.0%
    assert!(html.contains("50.0%") && html.contains("100.0%"), "{html}");
    // outlet → windows → staff → ratings
    let (_, html) = page(
        &admin,
        &app,
        &format!("/stats?org_id={}&{range}&group_by=window", c.outlet),
    )
    .await;
    assert!(html.contains(&format!("window_id={}", c.window)), "{html}");
    let (_, html) = page(
        &admin,
        &app,
        &format!(
            "/stats?org_id={}&{range}&group_by=staff&window_id={}",
            c.outlet, c.window
        ),
    )
    .await;
    assert!(html.contains("王芳"));
    assert!(
        html.contains("/stats/ratings?") && html.contains(&format!("staff_id={}", c.staff_id)),
        "{html}"
    );
    let ratings = format!(
        "/stats/ratings?org_id={}&window_id={}&staff_id={}&from=2026-05-01&to=2026-05-31",
        c.outlet, c.window, c.staff_id
    );
    let (status, html) = page(&admin, &app, &ratings).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("服务效率") && html.contains("非常满意"),
        "{html}"
    );
    let (_, html) = page(&admin, &app, &format!("{ratings}&polarity=positive")).await;
    assert!(html.contains("非常满意") && !html.contains("服务效率"));
    let (status, _) = page(&admin, &app, &format!("{ratings}&polarity=planet")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // bad filters: the message on the page; an unknown org: 404
    let (status, html) = page(
        &admin,
        &app,
        &format!("/stats?org_id={root}&period=custom&from=2026-05-31&to=2026-05-01"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"stats-error\""), "{html}");
    let (status, html) = page(
        &admin,
        &app,
        &format!("/stats?org_id={root}&period=custom&from=May&to=2026-05-01"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"stats-error\""), "{html}");
    let (status, _) = page(&admin, &app, "/stats?org_id=999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // an empty period says so
    let (_, html) = page(
        &admin,
        &app,
        &format!("/stats?org_id={root}&period=custom&from=2020-01-01&to=2020-01-31"),
    )
    .await;
    assert!(html.contains("id=\"stats-empty\""));

    // the export from the page
    let resp = admin
        .get(format!(
            "{}/stats/export?org_id={root}&{range}&group_by=outlet",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap().to_vec();
    use calamine::{Data, Reader};
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range("统计").unwrap();
    let cell = |r: u32, c: u32| sheet.get_value((r, c)).cloned().unwrap_or(Data::Empty);
    assert_eq!(cell(6, 1), Data::String("P网点".into()));
    assert_eq!(cell(6, 2), Data::Float(2.0));
    assert_eq!(
        cell(5, 12),
        Data::String("提示覆盖率 prompt_coverage".into())
    );

    // another branch's manager: his own outlet only; P's ratings answer 404; no negative details
    let b = app.org("B网点", "B", root).await;
    let role = app
        .role("网点经理", &["stats.view"], "org_and_children")
        .await;
    app.person("managerb", b, role).await;
    let manager = app.page_client(&app.url, "managerb", "person-pass-1").await;
    let (status, html) = page(&manager, &app, "/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("B网点") && !html.contains("P网点"));
    assert!(!html.contains("id=\"stats-export\""), "no stats.export");
    let (status, _) = page(&manager, &app, &format!("/stats?org_id={}", c.outlet)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(&manager, &app, &ratings).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = page(&manager, &app, &format!("/stats/export?org_id={b}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // a head-office viewer without negative.view sees the ratings, not the reason or phone
    let viewer_role = app.role("统计查看", &["stats.view"], "all").await;
    app.person("viewer", root, viewer_role).await;
    let viewer = app.page_client(&app.url, "viewer", "person-pass-1").await;
    let (status, html) = page(&viewer, &app, &ratings).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("不满意") && !html.contains("服务效率") && !html.contains("1381"));

    // a clerk's own page: only his figures
    let clerk_role = app.role("柜员(统计)", &["stats.view"], "self").await;
    let (me, _) = app.person("clerkme", c.outlet, clerk_role).await;
    sqlx::query("INSERT INTO services (id, window_id, org_id, staff_id, started_at, ended_at) VALUES (9203, $1, $2, $3, $4, $5)")
        .bind(c.window).bind(c.outlet).bind(me).bind(ms("2026-05-03T10:00:00+08:00")).bind(ms("2026-05-03T10:02:00+08:00"))
        .execute(&db.pool).await.unwrap();
    keping_store::stats::rebuild(db, false).await.unwrap();
    let clerk = app.page_client(&app.url, "clerkme", "person-pass-1").await;
    let (status, html) = page(&clerk, &app, &format!("/stats/me?{range}&group_by=day")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("2026-05-03") && !html.contains("2026-05-02"),
        "{html}"
    );
    assert!(!html.contains("王芳"));
    let (status, html) = page(
        &clerk,
        &app,
        "/stats/me/ratings?from=2026-05-01&to=2026-05-31",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"ratings-empty\""), "not 王芳's ratings");
    // without stats.view: no menu entry, and the page is refused
    let none_role = app.role("无统计", &["org.view"], "self").await;
    app.person("nostats", c.outlet, none_role).await;
    let nostats = app.page_client(&app.url, "nostats", "person-pass-1").await;
    let (_, html) = page(&nostats, &app, "/").await;
    assert!(!html.contains("href=\"/stats\""));
    let (status, _) = page(&nostats, &app, "/stats/me").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The ratings behind a cell to xlsx: every row of the filtered list (not just the page shown),
/// times in the outlet's zone, the period's edges at Shanghai midnight, the filters in the header,
/// scope applied, stats.export required, and the export in the audit log.
async fn ratings_export(app: TestApp) {
    let root = app.root_id().await;
    let c = counter(&app, "X").await;
    let db = &app.running.state.db;
    // 30 April 23:59:59 falls before the period; 1 May 00:00:00 and 31 May 23:59:59 inside it
    for (key, label, polarity, reason, phone, at) in [
        (
            "satisfied",
            "满意",
            "positive",
            None,
            None,
            "2026-04-30T23:59:59+08:00",
        ),
        (
            "satisfied",
            "满意",
            "positive",
            None,
            None,
            "2026-05-01T00:00:00+08:00",
        ),
        (
            "dissatisfied",
            "不满意",
            "negative",
            Some("服务效率"),
            Some("13812345678"),
            "2026-05-02T10:01:05+08:00",
        ),
        (
            "very_satisfied",
            "非常满意",
            "positive",
            None,
            None,
            "2026-05-31T23:59:59+08:00",
        ),
    ] {
        sqlx::query("INSERT INTO ratings (press_id, window_id, org_id, staff_id, key, label, polarity, negative_reason, phone, rated_at) VALUES (0, $1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(c.window).bind(c.outlet).bind(c.staff_id).bind(key).bind(label).bind(polarity).bind(reason).bind(phone).bind(ms(at))
            .execute(&db.pool).await.unwrap();
    }
    let admin = app
        .page_client(&app.url, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let list = format!(
        "org_id={}&window_id={}&from=2026-05-01&to=2026-05-31",
        c.outlet, c.window
    );
    let (status, html) = page(&admin, &app, &format!("/stats/ratings?{list}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!(
            "/stats/ratings/export?{}",
            list.replace('&', "&#38;")
        )),
        "the button carries the filters: {html}"
    );
    let export = |client: reqwest::Client, query: String| {
        let url = format!("{}/stats/ratings/export?{query}", app.url);
        async move {
            let resp = client.get(url).send().await.unwrap();
            let status = resp.status();
            (status, resp.bytes().await.unwrap().to_vec())
        }
    };
    use calamine::{Data, Reader};
    let read = |bytes: Vec<u8>| {
        let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        book.worksheet_range("评价 ratings").unwrap()
    };
    let (status, bytes) = export(admin.clone(), list.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let sheet = read(bytes);
    let cell = |r: u32, col: u32| sheet.get_value((r, col)).cloned().unwrap_or(Data::Empty);
    assert_eq!(cell(0, 1), Data::String(format!("X网点 (#{})", c.outlet)));
    assert_eq!(cell(1, 1), Data::String(format!("1号窗口 (#{})", c.window)));
    assert_eq!(cell(4, 1), Data::String("2026-05-01 – 2026-05-31".into()));
    assert_eq!(cell(5, 1), Data::String("Asia/Shanghai".into()));
    assert_eq!(cell(7, 2), Data::String("时间 rated_at".into()));
    // three rows, newest first, then nothing
    // a date-time cell: days since 1899-12-30, shown as local time
    let time = |r: u32| match cell(r, 2) {
        Data::DateTime(d) => {
            let base = chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap();
            let t =
                base + chrono::Duration::milliseconds((d.as_f64() * 86_400_000.0).round() as i64);
            Some(t.format("%Y-%m-%d %H:%M:%S").to_string())
        }
        _ => None,
    };
    assert_eq!(time(8).as_deref(), Some("2026-05-31 23:59:59"));
    assert_eq!(time(9).as_deref(), Some("2026-05-02 10:01:05"));
    assert_eq!(time(10).as_deref(), Some("2026-05-01 00:00:00"));
    assert_eq!(cell(11, 0), Data::Empty);
    assert!(matches!(cell(8, 0), Data::Float(_)), "ids are numbers");
    assert_eq!(cell(8, 3), Data::String("X网点".into()));
    assert_eq!(cell(8, 5), Data::String("王芳".into()));
    assert_eq!(cell(8, 6), Data::String("非常满意".into()));
    assert_eq!(cell(9, 8), Data::String("negative".into()));
    assert_eq!(cell(9, 9), Data::String("服务效率".into()));
    assert_eq!(cell(9, 10), Data::String("13812345678".into()));

    // the polarity filter, and a bad one refused
    let (_, bytes) = export(admin.clone(), format!("{list}&polarity=positive")).await;
    let sheet = read(bytes);
    let rows = (8..20)
        .take_while(|r| sheet.get_value((*r, 0)).is_some_and(|v| *v != Data::Empty))
        .count();
    assert_eq!(rows, 2);
    assert_eq!(
        sheet.get_value((3, 1)),
        Some(&Data::String("positive".into()))
    );
    let (status, _) = export(admin.clone(), format!("{list}&polarity=planet")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // another branch's manager: 404 for this outlet, and nothing of it without an org
    let b = app.org("Y网点", "Y", root).await;
    let role = app
        .role(
            "网点经理",
            &["stats.view", "stats.export"],
            "org_and_children",
        )
        .await;
    app.person("managery", b, role).await;
    let other = app.page_client(&app.url, "managery", "person-pass-1").await;
    let (status, _) = export(other.clone(), list.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, bytes) = export(other, "from=2026-05-01&to=2026-05-31".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read(bytes).get_value((8, 0)), None);
    // without stats.export: refused, and no button
    let viewer = app
        .role("查看统计", &["stats.view"], "org_and_children")
        .await;
    app.person("viewerx", c.outlet, viewer).await;
    let viewer = app.page_client(&app.url, "viewerx", "person-pass-1").await;
    let (_, html) = page(&viewer, &app, &format!("/stats/ratings?{list}")).await;
    assert!(!html.contains("/stats/ratings/export"), "{html}");
    let (status, _) = export(viewer, list.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // the same through the API, the period as moments
    let api = |query: &str| {
        app.client
            .get(format!("{}/api/v1/ratings/export?{query}", app.url))
            .bearer_auth(&app.admin_token)
            .send()
    };
    let resp = api(&format!(
        "org_id={}&from=2026-04-30T16:00:00Z&to=2026-05-31T16:00:00Z",
        c.outlet
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let sheet = read(resp.bytes().await.unwrap().to_vec());
    let rows = (8..20)
        .take_while(|r| sheet.get_value((*r, 0)).is_some_and(|v| *v != Data::Empty))
        .count();
    assert_eq!(rows, 3);
    let resp = api("polarity=planet").await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let (_, audit) = app
        .get(
            "/api/v1/audit?action=stats.ratings_export",
            &app.admin_token,
        )
        .await;
    let audit = audit.to_string();
    assert!(
        audit.contains("3 individual ratings exported: 机构 org"),
        "{audit}"
    );
}
