//! The service-evaluation flow through the device API: sign-in, Start, End, presses, suppression,
//! idempotent replays, the clock policy, settings, and scope.

use crate::harness::assert_error;
use crate::{both, TestApp};
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both!(
    full_flow,
    services_conflict_and_unknown,
    prompts_time_out_and_new_prompts_accept,
    bare_presses_and_the_interval,
    clock_policy,
    options_change_without_rewriting_history,
    terminals_and_windows_obey_scope,
    closed_windows_take_no_sign_in_or_service
);

/// An outlet with a window, a keypad for it and a clerk with 工号 "C001".
pub struct Counter {
    pub outlet: i64,
    pub window: i64,
    pub terminal: String,
    pub staff_id: i64,
}

pub async fn counter(app: &TestApp, code: &str) -> Counter {
    let root = app.root_id().await;
    let outlet = app.org(&format!("{code}网点"), code, root).await;
    let (status, window) = app
        .post(
            "/api/v1/windows",
            &app.admin_token,
            json!({"org_id": outlet, "name": "1号窗口", "code": "W1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{window}");
    let window = window["id"].as_i64().unwrap();
    let (status, terminal) = app
        .post(
            "/api/v1/terminals",
            &app.admin_token,
            json!({"window_id": window, "kind": "keypad"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{terminal}");
    assert_eq!(terminal["id"], terminal["terminal"]["id"]);
    let token = terminal["token"].as_str().unwrap().to_string();
    let role = app.role(&format!("柜员{code}"), &[], "self").await;
    let (status, staff) = app
        .post("/api/v1/users", &app.admin_token, json!({"username": format!("clerk{code}").to_lowercase(), "password": "clerk-pass-1", "name": "王芳", "employee_no": format!("C{code}"), "org_id": outlet, "roles": [{"role_id": role, "org_id": outlet}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{staff}");
    Counter {
        outlet,
        window,
        terminal: token,
        staff_id: staff["id"].as_i64().unwrap(),
    }
}

pub async fn press(app: &TestApp, c: &Counter, key: &str, idem: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/device/presses",
        Some(&c.terminal),
        Some(json!({"key": key, "idempotency_key": idem, "pressed_at": Utc::now().to_rfc3339()})),
    )
    .await
}

pub async fn start(app: &TestApp, c: &Counter) -> i64 {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/device/services",
            Some(&c.terminal),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["service_id"].as_i64().unwrap()
}

pub async fn end(app: &TestApp, c: &Counter, service: i64) {
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/device/services/{service}/end"),
            Some(&c.terminal),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn ratings(app: &TestApp, query: &str) -> Vec<Value> {
    app.all(&format!("/api/v1/ratings?{query}"), &app.admin_token)
        .await
}

async fn full_flow(app: TestApp) {
    let c = counter(&app, "A").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/device/sign-in",
            Some(&c.terminal),
            Some(json!({"employee_no": "CA"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["staff"]["id"], c.staff_id);
    assert_eq!(body["staff"]["name"], "王芳");
    assert_eq!(body["staff"]["employee_no"], "CA");

    let service = start(&app, &c).await;
    end(&app, &c, service).await;
    let first_body = json!({"key": "very_satisfied", "idempotency_key": "p-1", "pressed_at": Utc::now().to_rfc3339()});
    let (status, first) = app
        .call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&c.terminal),
            Some(first_body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["counted"], true);
    assert_eq!(first["reason"], Value::Null);
    let rating_id = first["rating_id"].as_i64().unwrap();
    assert!(first["press_id"].as_i64().is_some());

    // a second press for the same prompt is kept, not counted
    let (status, second) = press(&app, &c, "dissatisfied", "p-2").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["counted"], false);
    assert_eq!(second["reason"], "already_rated");
    assert_eq!(second["rating_id"], Value::Null);

    // the same idempotency key again: 200, the first answer, nothing added
    let body = json!({"key": "very_satisfied", "idempotency_key": "p-replay", "pressed_at": "2026-01-01T00:00:00Z"});
    let (s1, a1) = app
        .call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&c.terminal),
            Some(body.clone()),
        )
        .await;
    let (s2, a2) = app
        .call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&c.terminal),
            Some(body),
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(a1, a2);
    let (s3, a3) = app
        .call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&c.terminal),
            Some(first_body),
        )
        .await;
    assert_eq!(s3, StatusCode::OK);
    assert_eq!(a3, first);
    // … but a different body under a used key is a conflict
    assert_error(
        &press(&app, &c, "satisfied", "p-1").await,
        StatusCode::CONFLICT,
        "idempotency_conflict",
        Some("idempotency_key"),
    );

    // the rating carries the service's staff and the option's label
    let all = ratings(&app, &format!("window_id={}", c.window)).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["id"], rating_id);
    assert_eq!(all[0]["service_id"], service);
    assert_eq!(all[0]["staff_id"], c.staff_id);
    assert_eq!(all[0]["label"], "非常满意");
    assert_eq!(all[0]["polarity"], "positive");

    // a negative rating with a phone number: details for those allowed, masked without phone.view
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    let (status, neg) = app.call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "dissatisfied", "idempotency_key": "n-1", "pressed_at": Utc::now().to_rfc3339(), "phone": "13800135678", "negative_reason": "服务效率"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{neg}");
    assert_eq!(neg["counted"], true);
    let negatives = ratings(&app, "polarity=negative").await;
    assert_eq!(negatives[0]["phone"], "13800135678");
    assert_eq!(negatives[0]["negative_reason"], "服务效率");
    let viewer = app
        .role("统计员", &["stats.view", "negative.view"], "all")
        .await;
    let (_, vt) = app.person("viewer", c.outlet, viewer).await;
    let (_, masked) = app.get("/api/v1/ratings?polarity=negative", &vt).await;
    assert_eq!(masked["items"][0]["phone"], "138****5678");
    let plain = app.role("普通统计", &["stats.view"], "all").await;
    let (_, pt) = app.person("plain", c.outlet, plain).await;
    let (_, hidden) = app.get("/api/v1/ratings?polarity=negative", &pt).await;
    assert_eq!(hidden["items"][0]["phone"], Value::Null);
    assert_eq!(hidden["items"][0]["negative_reason"], Value::Null);

    // sign-out; 401 for unknown and revoked terminal tokens
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/device/sign-out",
            Some(&c.terminal),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/services",
            Some("kpd_nope"),
            Some(json!({})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/services",
            Some(&app.admin_token),
            Some(json!({})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );

    // bad input
    assert_error(
        &press(&app, &c, "thumbs_up", "bad-1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_key",
        Some("key"),
    );
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&c.terminal),
            Some(
                json!({"key": "satisfied", "idempotency_key": "bad-2", "pressed_at": "yesterday"}),
            ),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_time",
        Some("pressed_at"),
    );
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&c.terminal),
            Some(json!({"key": "satisfied", "pressed_at": Utc::now().to_rfc3339()})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        Some("idempotency_key"),
    );
    assert_error(&app.call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "dissatisfied", "idempotency_key": "bad-3", "pressed_at": Utc::now().to_rfc3339(), "phone": "call me"}))).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone", Some("phone"));
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/sign-in",
            Some(&c.terminal),
            Some(json!({"employee_no": "NOBODY"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown_staff",
        Some("employee_no"),
    );
    // none of the refused presses was counted
    assert_eq!(
        ratings(&app, &format!("window_id={}", c.window))
            .await
            .len(),
        2
    );
}

async fn services_conflict_and_unknown(app: TestApp) {
    let c = counter(&app, "A").await;
    let other = counter(&app, "B").await;
    let s = start(&app, &c).await;
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/services",
            Some(&c.terminal),
            Some(json!({})),
        )
        .await,
        StatusCode::CONFLICT,
        "service_in_progress",
        None,
    );
    // another window's service is not found from here
    let theirs = start(&app, &other).await;
    assert_error(
        &app.call(
            Method::POST,
            &format!("/api/v1/device/services/{theirs}/end"),
            Some(&c.terminal),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/services/999999/end",
            Some(&c.terminal),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    end(&app, &c, s).await;
    assert_error(
        &app.call(
            Method::POST,
            &format!("/api/v1/device/services/{s}/end"),
            Some(&c.terminal),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "service_ended",
        None,
    );
    // a terminal hammering the API is slowed with 429, and the flood creates nothing; the
    // requests go at once, so that a slow machine cannot spread them below the limit
    let statuses: Vec<StatusCode> = futures_util::future::join_all((0..200).map(|_| {
        app.call(
            Method::POST,
            "/api/v1/device/services",
            Some(&other.terminal),
            Some(json!({})),
        )
    }))
    .await
    .into_iter()
    .map(|(status, _)| status)
    .collect();
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::CONFLICT || *s == StatusCode::TOO_MANY_REQUESTS));
    let (n,): (i64,) = keping_store::Sql::new("SELECT COUNT(*) FROM services WHERE window_id = ")
        .arg(other.window)
        .fetch_one(&app.running.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // a duty session left open for more than 12 hours ends by itself
    app.call(
        Method::POST,
        "/api/v1/device/sign-in",
        Some(&c.terminal),
        Some(json!({"employee_no": "CA"})),
    )
    .await;
    keping_store::Sql::new(
        "UPDATE duties SET started_at = started_at - 13 * 3600000 WHERE ended_at IS NULL",
    )
    .execute(&app.running.state.db.pool)
    .await
    .unwrap();
    assert_eq!(
        keping_store::evaluation::end_stale_duties(&app.running.state.db)
            .await
            .unwrap(),
        1
    );
    let (reason,): (String,) =
        keping_store::Sql::new("SELECT end_reason FROM duties WHERE staff_id = ")
            .arg(c.staff_id)
            .fetch_one(&app.running.state.db.pool)
            .await
            .unwrap();
    assert_eq!(reason, "stale");
    // staff of another outlet cannot sign in here
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/sign-in",
            Some(&c.terminal),
            Some(json!({"employee_no": "CB"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown_staff",
        Some("employee_no"),
    );
}

async fn prompts_time_out_and_new_prompts_accept(app: TestApp) {
    let c = counter(&app, "A").await;
    // a new prompt accepts its first press however soon it follows the last one
    for i in 0..3 {
        let s = start(&app, &c).await;
        end(&app, &c, s).await;
        let (_, p) = press(&app, &c, "satisfied", &format!("fast-{i}")).await;
        assert_eq!(p["counted"], true, "prompt {i}: {p}");
    }
    // a prompt left past the time limit closes unrated: move its End back in time
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    keping_store::Sql::new("UPDATE services SET ended_at = ended_at - 60000 WHERE id = ")
        .arg(s)
        .execute(&app.running.state.db.pool)
        .await
        .unwrap();
    let (_, late) = press(&app, &c, "satisfied", "late").await;
    assert_eq!(late["counted"], false);
    assert_eq!(late["reason"], "no_prompt");
    // the next Start closes an open prompt unrated
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    let s2 = start(&app, &c).await;
    let (_, during) = press(&app, &c, "satisfied", "during-next").await;
    assert_eq!(during["reason"], "no_prompt");
    end(&app, &c, s2).await;
    assert_eq!(
        ratings(&app, &format!("window_id={}", c.window))
            .await
            .len(),
        3
    );
}

async fn bare_presses_and_the_interval(app: TestApp) {
    let c = counter(&app, "A").await;
    let (_, p) = press(&app, &c, "satisfied", "bare-0").await;
    assert_eq!(p["reason"], "no_prompt");
    let mut settings = app
        .get(
            &format!("/api/v1/orgs/{}/evaluation-settings", c.outlet),
            &app.admin_token,
        )
        .await
        .1;
    settings["bare_presses_count"] = json!(true);
    settings["press_interval_seconds"] = json!(10);
    let (status, saved) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{}/evaluation-settings", c.outlet),
            Some(&app.admin_token),
            Some(settings),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (_, first) = press(&app, &c, "satisfied", "bare-1").await;
    assert_eq!(first["counted"], true);
    let (_, second) = press(&app, &c, "very_satisfied", "bare-2").await;
    assert_eq!(second["counted"], false);
    assert_eq!(second["reason"], "duplicate_interval");
    // a bare press 15 s earlier (uploaded late) is outside the interval and counts
    let earlier = (Utc::now() - Duration::seconds(15)).to_rfc3339();
    let (_, old) = app
        .call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&c.terminal),
            Some(json!({"key": "neutral", "idempotency_key": "bare-3", "pressed_at": earlier})),
        )
        .await;
    assert_eq!(old["counted"], true, "{old}");
    // a prompt still takes its first press even right after a bare one
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    let (_, prompted) = press(&app, &c, "satisfied", "bare-4").await;
    assert_eq!(prompted["counted"], true);
    let rated = ratings(&app, &format!("window_id={}", c.window)).await;
    assert_eq!(rated.len(), 3);
    assert_eq!(
        rated.iter().filter(|r| r["service_id"].is_null()).count(),
        2
    );
}

async fn clock_policy(app: TestApp) {
    let c = counter(&app, "A").await;
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    // a terminal whose clock is 10 minutes behind: pressed_at alone would fall before End,
    // its sent_at corrects it and the press rates the open prompt
    let skew = Duration::minutes(10);
    let now = Utc::now();
    let (_, p) = app
        .call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "satisfied", "idempotency_key": "skew-1", "pressed_at": (now - skew).to_rfc3339(), "sent_at": (now - skew).to_rfc3339()})))
        .await;
    assert_eq!(p["counted"], true, "{p}");
    // a press from the future counts at the moment it arrived
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    let (_, f) = app.call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "satisfied", "idempotency_key": "future-1", "pressed_at": (Utc::now() + Duration::days(2)).to_rfc3339()}))).await;
    assert_eq!(f["counted"], true, "{f}");
    let newest = &ratings(&app, &format!("window_id={}", c.window)).await[0];
    let rated_at =
        chrono::DateTime::parse_from_rfc3339(newest["rated_at"].as_str().unwrap()).unwrap();
    assert!(
        (rated_at.with_timezone(&Utc) - Utc::now())
            .num_seconds()
            .abs()
            < 30,
        "{rated_at}"
    );
    // a press older than the maximum age is kept, not counted
    let (_, old) = app.call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "satisfied", "idempotency_key": "old-1", "pressed_at": (Utc::now() - Duration::days(8)).to_rfc3339()}))).await;
    assert_eq!(old["counted"], false);
    assert_eq!(old["reason"], "too_old");
}

async fn options_change_without_rewriting_history(app: TestApp) {
    let c = counter(&app, "A").await;
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    press(&app, &c, "dissatisfied", "h-1").await;
    // the bank's own options: 满意 / 不满意-服务礼仪 / 不满意-服务效率 / 不满意-业务知识
    let settings = json!({"press_interval_seconds": 10, "rating_timeout_seconds": 30, "options": [
        {"key": "satisfied", "label": "满意", "label_en": "Satisfied", "polarity": "positive"},
        {"key": "etiquette", "label": "不满意-服务礼仪", "polarity": "negative"},
        {"key": "efficiency", "label": "不满意-服务效率", "polarity": "negative"},
        {"key": "knowledge", "label": "不满意-业务知识", "polarity": "negative"}]});
    let root = app.root_id().await;
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/evaluation-settings"),
            Some(&app.admin_token),
            Some(settings),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // inherited by the outlet
    let (_, inherited) = app
        .get(
            &format!("/api/v1/orgs/{}/evaluation-settings", c.outlet),
            &app.admin_token,
        )
        .await;
    assert_eq!(inherited["options"][1]["label"], "不满意-服务礼仪");
    // the old key is gone now; the past rating keeps its label and polarity
    assert_error(
        &press(&app, &c, "dissatisfied", "h-2").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_key",
        Some("key"),
    );
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    let (_, p) = press(&app, &c, "efficiency", "h-3").await;
    assert_eq!(p["counted"], true);
    let all = ratings(&app, &format!("window_id={}", c.window)).await;
    assert_eq!(all[0]["label"], "不满意-服务效率");
    assert_eq!(all[1]["label"], "不满意");
    assert_eq!(all[1]["key"], "dissatisfied");

    // invalid settings name the field and change nothing
    let bad = json!({"press_interval_seconds": 10, "rating_timeout_seconds": 30, "options": [{"key": "a", "label": "甲", "polarity": "positive"}, {"key": "a", "label": "乙", "polarity": "negative"}]});
    assert_error(
        &app.call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/evaluation-settings"),
            Some(&app.admin_token),
            Some(bad),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "duplicate",
        Some("options[1].key"),
    );
    let bad = json!({"press_interval_seconds": 10, "rating_timeout_seconds": 30, "options": [{"key": "a", "label": "甲", "polarity": "great"}, {"key": "b", "label": "乙", "polarity": "negative"}]});
    assert_error(
        &app.call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/evaluation-settings"),
            Some(&app.admin_token),
            Some(bad),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_choice",
        Some("options[0].polarity"),
    );
    let (_, still) = app
        .get(
            &format!("/api/v1/orgs/{root}/evaluation-settings"),
            &app.admin_token,
        )
        .await;
    assert_eq!(still["options"].as_array().unwrap().len(), 4);

    // the outlet gets its own settings, then drops them and inherits the root's again
    let own = json!({"press_interval_seconds": 20, "rating_timeout_seconds": 60, "options": [
        {"key": "good", "label": "好", "polarity": "positive"},
        {"key": "bad", "label": "差", "polarity": "negative"}]});
    let settings_url = format!("/api/v1/orgs/{}/evaluation-settings", c.outlet);
    let (status, _) = app
        .call(
            Method::PUT,
            &settings_url,
            Some(&app.admin_token),
            Some(own),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mine) = app.get(&settings_url, &app.admin_token).await;
    assert_eq!(mine["press_interval_seconds"], 20);
    let (status, back) = app
        .call(Method::DELETE, &settings_url, Some(&app.admin_token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["press_interval_seconds"], 10);
    assert_eq!(back["options"][1]["label"], "不满意-服务礼仪");
    let (_, audit) = app
        .get("/api/v1/audit?entity=evaluation_settings", &app.admin_token)
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "inherit" && e["entity_id"] == c.outlet),
        "{audit}"
    );
    // the root drops its own too: the built-in defaults are in force everywhere
    let (status, defaults) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/orgs/{root}/evaluation-settings"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(defaults["options"][0]["label"], "非常满意");
    // an unknown org answers 404
    assert_error(
        &app.call(
            Method::DELETE,
            "/api/v1/orgs/999999/evaluation-settings",
            Some(&app.admin_token),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

async fn terminals_and_windows_obey_scope(app: TestApp) {
    let a = counter(&app, "A").await;
    let b = counter(&app, "B").await;
    let manager = app
        .role(
            "网点负责人",
            &[
                "window.manage",
                "terminal.manage",
                "monitor.view",
                "stats.view",
                "settings.manage",
                "org.view",
            ],
            "org_and_children",
        )
        .await;
    let (_, ta) = app.person("manager_a", a.outlet, manager).await;
    let (status, list) = app.get("/api/v1/windows", &ta).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![a.window]);
    assert_error(
        &app.get(&format!("/api/v1/windows/{}", b.window), &ta).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.patch(
            &format!("/api/v1/windows/{}", b.window),
            &ta,
            json!({"name": "被改了"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.post(
            "/api/v1/terminals",
            &ta,
            json!({"window_id": b.window, "kind": "kiosk"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_window",
        Some("window_id"),
    );
    assert_error(
        &app.post(
            "/api/v1/windows",
            &ta,
            json!({"org_id": b.outlet, "name": "渗透", "code": "X"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_org",
        Some("org_id"),
    );
    assert_error(&app.call(Method::PUT, &format!("/api/v1/orgs/{}/evaluation-settings", b.outlet), Some(&ta), Some(json!({"press_interval_seconds": 1, "rating_timeout_seconds": 30, "options": [{"key": "a", "label": "甲", "polarity": "positive"}, {"key": "b", "label": "乙", "polarity": "negative"}]}))).await, StatusCode::NOT_FOUND, "not_found", None);
    assert_error(
        &app.get(&format!("/api/v1/ratings?org_id={}", b.outlet), &ta)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    // within his outlet: a second window, a kiosk, closing a window; codes unique per outlet
    let (status, w2) = app
        .post(
            "/api/v1/windows",
            &ta,
            json!({"org_id": a.outlet, "name": "2号窗口", "code": "W2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w2}");
    assert_error(
        &app.post(
            "/api/v1/windows",
            &ta,
            json!({"org_id": a.outlet, "name": "重复", "code": "W2"}),
        )
        .await,
        StatusCode::CONFLICT,
        "duplicate",
        Some("code"),
    );
    assert_error(
        &app.post(
            "/api/v1/terminals",
            &ta,
            json!({"window_id": a.window, "kind": "toaster"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_choice",
        Some("kind"),
    );
    let (status, closed) = app
        .patch(
            &format!("/api/v1/windows/{}", w2["id"]),
            &ta,
            json!({"is_open": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(closed["is_open"], false);
    // B's ratings are not in A's list
    let s = start(&app, &b).await;
    end(&app, &b, s).await;
    press(&app, &b, "satisfied", "b-1").await;
    let (_, seen) = app.get("/api/v1/ratings", &ta).await;
    assert!(seen["items"].as_array().unwrap().is_empty(), "{seen}");
}

async fn closed_windows_take_no_sign_in_or_service(app: TestApp) {
    let c = counter(&app, "A").await;
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    let (status, _) = app
        .patch(
            &format!("/api/v1/windows/{}", c.window),
            &app.admin_token,
            json!({"is_open": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/sign-in",
            Some(&c.terminal),
            Some(json!({"employee_no": "CA"})),
        )
        .await,
        StatusCode::CONFLICT,
        "window_closed",
        Some("window"),
    );
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/device/services",
            Some(&c.terminal),
            Some(json!({})),
        )
        .await,
        StatusCode::CONFLICT,
        "window_closed",
        Some("window"),
    );
    // the prompt opened before closing is still rated
    let (status, body) = press(&app, &c, "satisfied", "closed-1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["counted"], true, "{body}");
    let (status, _) = app
        .patch(
            &format!("/api/v1/windows/{}", c.window),
            &app.admin_token,
            json!({"is_open": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    start(&app, &c).await;
}
