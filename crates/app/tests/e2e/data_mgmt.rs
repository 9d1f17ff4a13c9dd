//! Data management: cleanup of raw evaluation data (scope, confirmation, counts, audit), the
//! retention setting and its worker, backups through the API, the pages and the real binary,
//! and what corrupted backups answer.

use crate::api_evaluation::{end, start};
use crate::harness::{assert_error, ADMIN_PASSWORD};
use crate::{both, Backend, TestApp};
use chrono::Utc;
use keping_store::Sql;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

both!(
    data_cleanup_scope_confirmation_counts_and_audit,
    data_retention_worker,
    data_backup_download_verify_and_restore,
    data_corrupted_backups_are_refused
);

const DAY_MS: i64 = 86_400_000;

/// An outlet under `parent` with a window, a keypad and a clerk.
struct Outlet {
    id: i64,
    terminal: String,
    employee_no: String,
}

async fn outlet(app: &TestApp, code: &str, parent: i64) -> Outlet {
    let id = app.org(&format!("{code}网点"), code, parent).await;
    let (status, window) = app
        .post(
            "/api/v1/windows",
            &app.admin_token,
            json!({"org_id": id, "name": "1号窗口", "code": "W1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{window}");
    let (status, terminal) = app
        .post(
            "/api/v1/terminals",
            &app.admin_token,
            json!({"window_id": window["id"], "kind": "keypad"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{terminal}");
    let role = app.role(&format!("柜员{code}"), &[], "self").await;
    let employee_no = format!("E{code}");
    let (status, staff) = app
        .post("/api/v1/users", &app.admin_token, json!({"username": format!("clerk{code}").to_lowercase(), "password": "clerk-pass-1", "name": "王芳", "employee_no": employee_no, "org_id": id, "roles": [{"role_id": role, "org_id": id}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{staff}");
    Outlet {
        id,
        terminal: terminal["token"].as_str().unwrap().to_string(),
        employee_no,
    }
}

async fn device(app: &TestApp, o: &Outlet, path: &str, body: Value) -> Value {
    let (status, body) = app
        .call(Method::POST, path, Some(&o.terminal), Some(body))
        .await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// One rated service: Start, End, a press with `key`.
async fn rated_service(app: &TestApp, o: &Outlet, key: &str, idem: &str) -> Value {
    let c = crate::api_evaluation::Counter {
        outlet: o.id,
        window: 0,
        terminal: o.terminal.clone(),
        staff_id: 0,
    };
    let s = start(app, &c).await;
    end(app, &c, s).await;
    device(
        app,
        o,
        "/api/v1/device/presses",
        json!({"key": key, "idempotency_key": idem, "pressed_at": Utc::now().to_rfc3339()}),
    )
    .await
}

/// A working day at an outlet: a duty session, three rated services (one satisfied, two
/// dissatisfied — one follow-up closed, one left open) and a second press that does not count.
/// Answers the open follow-up's rating id.
async fn working_day(app: &TestApp, o: &Outlet) -> i64 {
    device(
        app,
        o,
        "/api/v1/device/sign-in",
        json!({"employee_no": o.employee_no}),
    )
    .await;
    rated_service(app, o, "very_satisfied", &format!("{}-1", o.id)).await;
    let extra = device(
        app,
        o,
        "/api/v1/device/presses",
        json!({"key": "satisfied", "idempotency_key": format!("{}-1b", o.id), "pressed_at": Utc::now().to_rfc3339()}),
    )
    .await;
    assert_eq!(extra["counted"], false);
    let closed = rated_service(app, o, "dissatisfied", &format!("{}-2", o.id)).await;
    let open = rated_service(app, o, "dissatisfied", &format!("{}-3", o.id)).await;
    let follow_ups = app
        .all(
            &format!("/api/v1/follow-ups?org_id={}", o.id),
            &app.admin_token,
        )
        .await;
    let to_close = follow_ups
        .iter()
        .find(|f| f["rating_id"] == closed["rating_id"])
        .unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/follow-ups/{}/close", to_close["id"]),
            &app.admin_token,
            json!({"note": "已回访"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    device(app, o, "/api/v1/device/sign-out", json!({})).await;
    open["rating_id"].as_i64().unwrap()
}

/// Moves every raw evaluation row of an outlet `days` into the past.
async fn age(app: &TestApp, outlet: i64, days: i64) {
    let db = &app.running.state.db;
    let ms = days * DAY_MS;
    let windows = "(SELECT id FROM windows WHERE org_id = $2)";
    for sql in [
        "UPDATE ratings SET rated_at = rated_at - $1 WHERE org_id = $2".to_string(),
        format!("UPDATE presses SET received_at = received_at - $1, pressed_at = pressed_at - $1 WHERE window_id IN {windows}"),
        "UPDATE services SET started_at = started_at - $1, ended_at = ended_at - $1 WHERE org_id = $2".to_string(),
        format!("UPDATE duties SET started_at = started_at - $1, ended_at = ended_at - $1 WHERE window_id IN {windows}"),
        "UPDATE follow_ups SET created_at = created_at - $1 WHERE org_id = $2".to_string(),
    ] {
        sqlx::query(&sql)
            .bind(ms)
            .bind(outlet)
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

/// Rows of an outlet: [ratings, follow_ups, presses, services, duties].
async fn rows(app: &TestApp, outlet: i64) -> [i64; 5] {
    let db = &app.running.state.db;
    let windows = "(SELECT id FROM windows WHERE org_id = $1)";
    let mut out = [0; 5];
    for (i, sql) in [
        "SELECT COUNT(*) FROM ratings WHERE org_id = $1".to_string(),
        "SELECT COUNT(*) FROM follow_ups WHERE org_id = $1".to_string(),
        format!("SELECT COUNT(*) FROM presses WHERE window_id IN {windows}"),
        "SELECT COUNT(*) FROM services WHERE org_id = $1".to_string(),
        format!("SELECT COUNT(*) FROM duties WHERE window_id IN {windows}"),
    ]
    .iter()
    .enumerate()
    {
        let (n,): (i64,) = sqlx::query_as(sql)
            .bind(outlet)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        out[i] = n;
    }
    out
}

async fn wait_done(app: &TestApp, token: &str, run: i64) -> Value {
    for _ in 0..200 {
        let (status, body) = app
            .get(&format!("/api/v1/data/cleanups/{run}"), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["status"] != "running" {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cleanup {run} did not finish");
}

async fn data_cleanup_scope_confirmation_counts_and_audit(app: TestApp) {
    let root = app.root_id().await;
    let bj = app.org("北京分行", "BJ", root).await;
    let sh = app.org("上海分行", "SH", root).await;
    let bj1 = outlet(&app, "BJ1", bj).await;
    let sh1 = outlet(&app, "SH1", sh).await;
    let kept_rating = working_day(&app, &bj1).await;
    working_day(&app, &sh1).await;
    age(&app, bj1.id, 400).await;
    age(&app, sh1.id, 400).await;
    // today's work at BJ1, with the clerk still on duty: none of it is old enough to go
    device(
        &app,
        &bj1,
        "/api/v1/device/sign-in",
        json!({"employee_no": bj1.employee_no}),
    )
    .await;
    rated_service(&app, &bj1, "satisfied", "today-1").await;
    assert_eq!(rows(&app, bj1.id).await, [4, 2, 5, 4, 2]);
    let sh_before = rows(&app, sh1.id).await;
    assert_eq!(sh_before, [3, 2, 4, 3, 1]);

    let manager_role = app
        .role(
            "分行数据管理员",
            &["data.cleanup", "org.view"],
            "org_and_children",
        )
        .await;
    let (_, manager) = app.person("bjdata", bj, manager_role).await;
    let viewer_role = app.role("查看者", &["org.view"], "org_and_children").await;
    let (_, viewer) = app.person("viewer", bj, viewer_role).await;

    // another branch's org is not there for him: 404, and nothing is written
    assert_error(
        &app.get(
            &format!("/api/v1/data/cleanup-preview?org_id={sh}&older_than=year"),
            &manager,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    for body in [
        json!({"org_id": sh, "older_than": "all", "confirm": true}),
        json!({"org_id": sh1.id, "older_than": "all", "confirm": true}),
        json!({"org_id": sh, "older_than": "all"}),
    ] {
        assert_error(
            &app.post("/api/v1/data/cleanups", &manager, body).await,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        );
    }
    assert_eq!(rows(&app, sh1.id).await, sh_before);
    // without the permission at all
    assert_error(
        &app.post(
            "/api/v1/data/cleanups",
            &viewer,
            json!({"org_id": bj, "older_than": "year", "confirm": true}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_error(
        &app.post(
            "/api/v1/data/cleanups",
            &manager,
            json!({"org_id": bj, "older_than": "week", "confirm": true}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_choice",
        Some("older_than"),
    );

    // the dry run: the open follow-up keeps its rating, press and service; today stays
    let (status, preview) = app
        .get(
            &format!("/api/v1/data/cleanup-preview?org_id={bj}&older_than=year"),
            &manager,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["counts"],
        json!({"ratings": 2, "follow_ups": 1, "presses": 3, "services": 2, "duties": 1, "rollups": 0})
    );
    assert_eq!(preview["kept_open_follow_ups"], 1);
    assert_eq!(preview["keep_rollups"], true);
    assert_eq!(preview["org_name"], "北京分行");
    // one month ago at midnight in Asia/Shanghai
    let cutoff = chrono::DateTime::parse_from_rfc3339(preview["cutoff_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Shanghai);
    assert_eq!(cutoff.format("%H:%M:%S").to_string(), "00:00:00");

    // no confirmation, no cleanup: the answer says what would go
    let refused = app
        .post(
            "/api/v1/data/cleanups",
            &manager,
            json!({"org_id": bj, "older_than": "year"}),
        )
        .await;
    assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "confirmation_required",
        Some("confirm"),
    );
    assert!(refused.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2 ratings"));
    assert_eq!(rows(&app, bj1.id).await, [4, 2, 5, 4, 2]);

    let (status, run) = app
        .post(
            "/api/v1/data/cleanups",
            &manager,
            json!({"org_id": bj, "older_than": "year", "confirm": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    assert_eq!(run["source"], "manual");
    assert_eq!(run["username"], "bjdata");
    let run = wait_done(&app, &manager, run["id"].as_i64().unwrap()).await;
    assert_eq!(run["status"], "done", "{run}");
    assert_eq!(run["counts"], preview["counts"]);
    assert!(run["finished_at"].is_string());
    assert_eq!(rows(&app, bj1.id).await, [2, 1, 2, 2, 1]);
    assert_eq!(rows(&app, sh1.id).await, sh_before);
    // what stayed: the rating whose follow-up is open, and today's
    let left = app
        .all(&format!("/api/v1/ratings?org_id={bj}"), &app.admin_token)
        .await;
    let mut ids: Vec<i64> = left.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert!(ids.contains(&kept_rating), "{left:?}");
    // the live flow goes on: the clerk still on duty serves the next customer
    let next = rated_service(&app, &bj1, "satisfied", "today-2").await;
    assert_eq!(next["counted"], true);

    // the audit log has the run with its counts, in BJ's part of the tree
    let entries = app
        .all("/api/v1/audit?action=cleanup", &app.admin_token)
        .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["entity"], "evaluation_data");
    assert_eq!(e["entity_id"], bj);
    assert_eq!(e["username"], "bjdata");
    let summary = e["summary"].as_str().unwrap();
    assert!(
        summary.contains("2 ratings") && summary.contains("1 follow-ups"),
        "{summary}"
    );
    let changes: Value = serde_json::from_str(e["changes"].as_str().unwrap()).unwrap();
    assert_eq!(changes["ratings"], json!([2, 0]));
    assert_eq!(changes["duties"], json!([1, 0]));

    // the runs list obeys scope too: the manager sees his run, another branch's manager does not
    let sh_role = app
        .role("沪数据管理员", &["data.cleanup"], "org_and_children")
        .await;
    let (_, sh_manager) = app.person("shdata", sh, sh_role).await;
    assert_eq!(app.all("/api/v1/data/cleanups", &manager).await.len(), 1);
    assert!(app
        .all("/api/v1/data/cleanups", &sh_manager)
        .await
        .is_empty());
    assert_error(
        &app.get(&format!("/api/v1/data/cleanups/{}", run["id"]), &sh_manager)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // the page: preview with counts, then the confirmed cleanup of everything at SH1
    let web = app.page_client(&app.url, "shdata", "person-pass-1").await;
    let html = crate::harness::html(
        &web,
        format!("{}/data?org_id={}&older_than=all", app.url, sh1.id),
    )
    .await;
    assert!(html.contains("id=\"confirm-step\""), "{html}");
    assert!(html.contains("data-count=\"ratings\">2<"), "{html}");
    assert!(
        html.contains("name=\"keep_rollups\" value=\"false\""),
        "an unticked box drops roll-ups"
    );
    let html = web
        .get(format!(
            "{}/data?org_id={}&older_than=all&keep_rollups=true",
            app.url, sh1.id
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"keep_rollups\" value=\"true\""));
    let resp = web
        .post(format!("{}/data/cleanups", app.url))
        .form(&[
            ("org_id", sh1.id.to_string()),
            ("older_than", "all".into()),
            ("keep_rollups", "true".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unconfirmed"
    );
    assert_eq!(rows(&app, sh1.id).await, sh_before);
    let resp = web
        .post(format!("{}/data/cleanups", app.url))
        .form(&[
            ("org_id", sh1.id.to_string()),
            ("older_than", "all".into()),
            ("keep_rollups", "true".into()),
            ("confirm", "on".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let run_id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
    let run = wait_done(&app, &sh_manager, run_id).await;
    assert_eq!(run["counts"]["ratings"], 2);
    let html = crate::harness::html(&web, format!("{}{location}", app.url)).await;
    assert!(html.contains("data-status=\"done\""), "{html}");
    assert_eq!(rows(&app, sh1.id).await, [1, 1, 1, 1, 0]);
    // BJ's manager's page cannot reach SH's run
    let bj_web = app.page_client(&app.url, "bjdata", "person-pass-1").await;
    let resp = bj_web
        .get(format!("{}{location}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

async fn data_retention_worker(app: TestApp) {
    let root = app.root_id().await;
    let bj = app.org("北京分行", "BJ", root).await;
    let sh = app.org("上海分行", "SH", root).await;
    let bj1 = outlet(&app, "BJ1", bj).await;
    let sh1 = outlet(&app, "SH1", sh).await;
    working_day(&app, &bj1).await;
    working_day(&app, &sh1).await;
    age(&app, bj1.id, 400).await;
    age(&app, sh1.id, 400).await;
    let db = &app.running.state.db;

    // off by default: the worker removes nothing
    assert!(keping_store::data::apply_retention(db)
        .await
        .unwrap()
        .is_empty());
    let (status, r) = app
        .get(
            &format!("/api/v1/orgs/{}/data-retention", bj1.id),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["keep_months"], Value::Null);
    assert_eq!(r["from_org_id"], Value::Null);

    let put = |org: i64, body: Value| {
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                &format!("/api/v1/orgs/{org}/data-retention"),
                Some(&app.admin_token),
                Some(body),
            )
            .await
        }
    };
    assert_error(
        &put(root, json!({"keep_months": 0})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
        Some("keep_months"),
    );
    // head office keeps a year; Shanghai keeps everything (its own setting overrides)
    let (status, body) = put(root, json!({"keep_months": 12})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(sh, json!({"keep_months": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["own"], true);
    let (_, r) = app
        .get(
            &format!("/api/v1/orgs/{}/data-retention", bj1.id),
            &app.admin_token,
        )
        .await;
    assert_eq!(r["keep_months"], 12);
    assert_eq!(r["own"], false);
    assert_eq!(r["from_org_id"], root);
    // a branch manager cannot set another branch's retention
    let role = app
        .role("分行数据管理员", &["data.cleanup"], "org_and_children")
        .await;
    let (_, manager) = app.person("bjdata", bj, role).await;
    assert_error(
        &app.call(
            Method::PUT,
            &format!("/api/v1/orgs/{sh}/data-retention"),
            Some(&manager),
            Some(json!({"keep_months": 1})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // a few thousand old bare ratings more, so that the run takes several chunks
    let bulk = 2 * keping_store::data::CHUNK + 500;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO ratings (press_id, window_id, org_id, key, label, polarity, rated_at) \
         SELECT 0, (SELECT id FROM windows WHERE org_id = $2), $2, 'satisfied', '满意', 'positive', $3 - i FROM n",
    )
    .bind(bulk)
    .bind(bj1.id)
    .bind(Utc::now().timestamp_millis() - 500 * DAY_MS)
    .execute(&db.pool)
    .await
    .unwrap();
    let sh_before = rows(&app, sh1.id).await;
    let runs = keping_store::data::apply_retention(db).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].org_id, root);
    assert_eq!(runs[0].source, "retention");
    assert_eq!(runs[0].status, "done");
    assert_eq!(runs[0].older_than, "12m");
    assert_eq!(runs[0].counts.ratings, 2 + bulk);
    assert_eq!(rows(&app, bj1.id).await, [1, 1, 1, 1, 0]);
    assert_eq!(rows(&app, sh1.id).await, sh_before);
    // once a day: a second round finds nothing to do
    assert!(keping_store::data::apply_retention(db)
        .await
        .unwrap()
        .is_empty());
    let entries = app
        .all("/api/v1/audit?action=cleanup", &app.admin_token)
        .await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["username"], "system");
    assert!(entries[0]["summary"]
        .as_str()
        .unwrap()
        .starts_with("retention cleanup"));

    // Shanghai inherits again: its old data goes in the next round, under its own run
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/orgs/{sh}/data-retention"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["keep_months"], 12);
    assert_eq!(body["own"], false);
    // the exceptions changed, so the root's retention runs again the same day
    let runs = keping_store::data::apply_retention(db).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].org_id, root);
    assert_eq!(runs[0].counts.ratings, 2);
    assert_eq!(rows(&app, sh1.id).await, [1, 1, 1, 1, 0]);
}

// ---------------------------------------------------------------- backups

/// The real binary with `args`; answers (success, stdout, stderr).
async fn keping(args: &[&str], database_url: Option<&str>) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keping"));
    cmd.args(args)
        .env("KEPING_LOG", "warn")
        .env_remove("KEPING_DATABASE_URL");
    if let Some(url) = database_url {
        cmd.env("KEPING_DATABASE_URL", url);
    }
    let out = cmd.output().await.expect("the keping binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Some data worth backing up, including a photo (a blob) and an outlet moved under a branch made
/// after it (a parent with a larger id).
async fn some_data(app: &TestApp) {
    let root = app.root_id().await;
    let bj1 = outlet(app, "BJ1", root).await;
    working_day(app, &bj1).await;
    let bj = app.org("北京分行", "BJ", root).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/orgs/{}/move", bj1.id),
            &app.admin_token,
            json!({"parent_id": bj}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let role = app.role("柜员", &["org.view"], "self").await;
    let (id, _) = app.person("liuyang", root, role).await;
    let resp = app
        .client
        .put(format!("{}/api/v1/users/{id}/photo", app.url))
        .bearer_auth(&app.admin_token)
        .header("content-type", "image/png")
        .body(crate::api_people::PNG.to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

async fn download(app: &TestApp, token: &str, to: &Path) -> reqwest::Response {
    let resp = app
        .client
        .get(format!("{}/api/v1/data/backup", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if resp.status() == StatusCode::OK {
        let name = resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with("attachment; filename=\"keping-"), "{name}");
        let bytes = resp.bytes().await.unwrap();
        std::fs::write(to, &bytes).unwrap();
        // a stand-in answer for the caller, which only looks at the status
        return app
            .client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap();
    }
    resp
}

fn pg_server() -> Option<String> {
    std::env::var("KEPING_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

async fn data_backup_download_verify_and_restore(app: TestApp) {
    some_data(&app).await;
    let root = app.root_id().await;
    let dir = scratch_dir();
    let url = app.config.database_url.clone().unwrap();

    // only data.backup held with the data level all may download the whole database
    let branch_role = app
        .role("分行备份", &["data.backup"], "org_and_children")
        .await;
    let (_, branch) = app.person("branchbackup", root, branch_role).await;
    let plain_role = app.role("普通", &["org.view"], "all").await;
    let (_, plain) = app.person("plain", root, plain_role).await;
    let backup_role = app.role("备份员", &["data.backup"], "all").await;
    let (_, backer) = app.person("backer", root, backup_role).await;
    for token in [&branch, &plain] {
        let resp = download(&app, token, &dir.path().join("x")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }
    assert!(!dir.path().join("x").exists());
    let downloaded = dir.path().join("download.bak");
    let resp = download(&app, &backer, &downloaded).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let head = std::fs::read(&downloaded).unwrap();
    match app.backend {
        Backend::Sqlite => assert!(head.starts_with(b"SQLite format 3\0")),
        Backend::Postgres => assert!(head.starts_with(&[0x1f, 0x8b])),
    }
    let entries = app
        .all("/api/v1/audit?action=backup", &app.admin_token)
        .await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["username"], "backer");

    // the page's download follows the same rule
    let web = app.page_client(&app.url, "backer", "person-pass-1").await;
    let resp = web
        .get(format!("{}/data/backup", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let html = crate::harness::html(&web, format!("{}/data", app.url)).await;
    assert!(html.contains("id=\"backup-download\""));
    let web = app
        .page_client(&app.url, "branchbackup", "person-pass-1")
        .await;
    let resp = web
        .get(format!("{}/data/backup", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // keping backup verify on the download: restored into a scratch database and checked
    let (ok, out, err) = keping(&["backup", "verify", s(&downloaded)], None).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("verified") && out.contains("checksum"),
        "{out}"
    );
    assert!(out.contains("ratings"), "{out}");

    // keping backup FILE beside the running server, in both formats, and a round trip through
    // restore; roll-up additions folded first, so that the writer's next fold changes no count
    keping_store::stats::fold_all(&app.running.state.db)
        .await
        .unwrap();
    let live = keping_store::backup::table_counts(&app.running.state.db)
        .await
        .unwrap();
    let made = dir.path().join("cli.bak");
    let (ok, out, err) = keping(&["backup", s(&made)], Some(&url)).await;
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = keping(&["backup", s(&made)], Some(&url)).await;
    assert!(!ok && err.contains("exists already"), "{out}\n{err}");
    let (ok, out, err) = keping(&["backup", "verify", s(&made)], None).await;
    assert!(ok, "{out}\n{err}");
    let export = dir.path().join("cli.keping.gz");
    let (ok, out, err) = keping(&["backup", "--format", "export", s(&export)], Some(&url)).await;
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = keping(&["backup", "verify", s(&export)], None).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("scratch SQLite"), "{out}");
    if let Some(server) = pg_server() {
        let (ok, out, err) = keping(
            &["backup", "verify", "--postgres", &server, s(&export)],
            None,
        )
        .await;
        assert!(ok, "{out}\n{err}");
        assert!(out.contains("scratch PostgreSQL"), "{out}");
    }
    // an export restores into an empty database of either kind: here a new SQLite file
    let target = format!("sqlite://{}", dir.path().join("restored.db").display());
    let (ok, out, err) = keping(&["restore", s(&export)], Some(&target)).await;
    assert!(ok, "{out}\n{err}");
    let restored = keping_store::Db::connect(&target).await.unwrap();
    let counts = keping_store::backup::table_counts(&restored).await.unwrap();
    // the live database gained audit entries for the backups since it was counted
    for (table, n) in &live {
        if table != "audit_log" && table != "tokens" {
            assert_eq!(counts.get(table), Some(n), "{table}");
        }
    }
    // the administrator can sign in to the restored database
    let (id, hash): (i64, String) =
        Sql::new("SELECT id, password_hash FROM users WHERE username = 'admin'")
            .fetch_one(&restored.pool)
            .await
            .unwrap();
    assert!(id > 0 && keping_domain::auth::verify_password(&hash, ADMIN_PASSWORD));
    let photo: (Option<Vec<u8>>,) = Sql::new("SELECT photo FROM users WHERE username = 'liuyang'")
        .fetch_one(&restored.pool)
        .await
        .unwrap();
    assert_eq!(photo.0.as_deref(), Some(crate::api_people::PNG));
    restored.pool.close().await;
    // restoring again into the now full database is refused
    let (ok, _, err) = keping(&["restore", s(&export)], Some(&target)).await;
    assert!(!ok && err.contains("not empty"), "{err}");
}

/// A copy of `from` with `f` applied to its bytes.
fn spoil(from: &Path, to: &Path, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(from).unwrap();
    f(&mut bytes);
    std::fs::write(to, bytes).unwrap();
    to.to_path_buf()
}

async fn data_corrupted_backups_are_refused(app: TestApp) {
    some_data(&app).await;
    let dir = scratch_dir();
    let url = app.config.database_url.clone().unwrap();
    let good = dir.path().join("good.bak");
    let (ok, out, err) = keping(&["backup", s(&good)], Some(&url)).await;
    assert!(ok, "{out}\n{err}");
    let export = dir.path().join("good.keping.gz");
    let (ok, out, err) = keping(&["backup", "--format", "export", s(&export)], Some(&url)).await;
    assert!(ok, "{out}\n{err}");

    let mut cases: Vec<(PathBuf, &str)> = vec![
        (
            spoil(&good, &dir.path().join("foreign.txt"), |b| {
                *b = b"just some notes, not a backup\n".to_vec()
            }),
            "not a keping backup",
        ),
        (
            spoil(&good, &dir.path().join("empty.bak"), |b| b.clear()),
            "is empty",
        ),
        (
            spoil(&export, &dir.path().join("cut.keping.gz"), |b| {
                b.truncate(b.len() * 2 / 3)
            }),
            "truncated",
        ),
        (
            spoil(&export, &dir.path().join("other.gz"), |b| {
                use std::io::Write;
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(b"{\"hello\": \"world\"}\n").unwrap();
                *b = gz.finish().unwrap();
            }),
            "not a keping export",
        ),
        (
            // a row changed but the file well formed: only the checksum notices
            spoil(&export, &dir.path().join("edited.keping.gz"), |b| {
                use std::io::{Read, Write};
                let mut text = String::new();
                flate2::read::GzDecoder::new(&b[..])
                    .read_to_string(&mut text)
                    .unwrap();
                let text = text.replacen("北京分行", "南京分行", 1);
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(text.as_bytes()).unwrap();
                *b = gz.finish().unwrap();
            }),
            "checksum mismatch",
        ),
    ];
    if app.backend == Backend::Sqlite {
        cases.push((
            spoil(&good, &dir.path().join("cut.sqlite"), |b| {
                b.truncate(b.len() / 2)
            }),
            "damaged",
        ));
        cases.push((
            // a value inside a row changed: the pages stay sound, the content checksum does not
            spoil(&good, &dir.path().join("edited.sqlite"), |b| {
                let needle = "北京分行".as_bytes();
                let at = b
                    .windows(needle.len())
                    .position(|w| w == needle)
                    .expect("the org name is in the file");
                b[at..at + 3].copy_from_slice("南".as_bytes());
            }),
            "checksum mismatch",
        ));
    }
    for (file, expected) in &cases {
        let (ok, out, err) = keping(&["backup", "verify", s(file)], None).await;
        assert!(!ok, "{} verified: {out}", file.display());
        assert!(
            err.contains(expected),
            "{}: expected '{expected}' in: {err}",
            file.display()
        );
        // and a restore of it writes nothing
        let target_file = dir.path().join("target.db");
        let target = format!("sqlite://{}", target_file.display());
        let (ok, _, err) = keping(&["restore", s(file)], Some(&target)).await;
        assert!(!ok, "{} restored", file.display());
        assert!(!err.is_empty());
        if target_file.exists() {
            let db = keping_store::Db::open(&target).await.unwrap();
            let counts = keping_store::backup::table_counts(&db).await.unwrap();
            assert!(counts.values().all(|n| *n == 0), "{counts:?}");
            db.pool.close().await;
        }
    }
    // a restore never overwrites data: the test's own database is refused as it is
    let (ok, _, err) = keping(&["restore", s(&export)], Some(&url)).await;
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, out, err) = keping(&["backup", "verify", s(&export)], None).await;
    assert!(ok, "the good export still verifies: {out}\n{err}");
}

/// The server copies SQLite's WAL into the database file in the background (once a second),
/// rather than in the commit that crosses a threshold: a customer just created is in the database
/// file itself, read without its WAL, within a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_is_copied_into_the_database_in_the_background() {
    let app = TestApp::spawn(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let (status, created) = app
        .post(
            "/api/v1/customers",
            &app.admin_token,
            json!({"name": "检查点客户"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let url = app.config.database_url.clone().unwrap();
    let file = url.strip_prefix("sqlite://").unwrap();
    let copies = tempfile::tempdir().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut attempt = 0;
    loop {
        attempt += 1;
        // the main file alone: what the WAL holds and no checkpoint copied is not in it
        let copy = copies.path().join(format!("copy{attempt}.db"));
        std::fs::copy(file, &copy).unwrap();
        let found = match keping_store::Db::open(&format!("sqlite://{}", copy.display())).await {
            Ok(db) => {
                let n = keping_store::Sql::new(
                    "SELECT COUNT(*) FROM customers WHERE name = '检查点客户'",
                )
                .fetch_i64(&db.pool)
                .await
                // a copy taken while a checkpoint wrote a page may be torn: take another
                .unwrap_or(0);
                db.pool.close().await;
                n == 1
            }
            Err(_) => false,
        };
        if found {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the customer never reached the database file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}
