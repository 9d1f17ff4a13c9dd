//! Notices through the outbox beside negative alerts: the deliveries list and its "retry now",
//! and scheduled reports, each period sent once per schedule, across restarts.

use crate::api_evaluation::{counter, end, press, start};
use crate::harness::assert_error;
use crate::outbox::{negative, receiver, wait_until};
use crate::{both, TestApp};
use base64::Engine;
use keping_domain::now_millis;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

both!(
    deliveries_are_listed_filtered_and_retried,
    scheduled_report_goes_out_once_per_period,
    report_schedules_are_checked,
    monthly_grading_sends_downgrade_and_churn_warnings
);

const DAY_MS: i64 = 86_400_000;

/// Today's date in Shanghai (the default org time zone), `YYYY-MM-DD`.
fn shanghai_date(at_ms: i64) -> String {
    use chrono::TimeZone;
    chrono_tz::Asia::Shanghai
        .timestamp_millis_opt(at_ms)
        .unwrap()
        .date_naive()
        .to_string()
}

async fn force_failed(app: &TestApp, id: i64) {
    // as after twelve failed attempts
    sqlx::query("UPDATE outbox SET status = 'failed', attempts = 12, last_error = 'receiver down' WHERE id = $1")
        .bind(id)
        .execute(&app.running.state.db.pool)
        .await
        .unwrap();
}

async fn deliveries_are_listed_filtered_and_retried(app: TestApp) {
    let c = counter(&app, "A").await;
    let (url, rx) = receiver(0).await;
    let root = app.root_id().await;
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/alert-settings"),
            Some(&app.admin_token),
            Some(json!({"channels": [{"kind": "wecom", "url": url}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    negative(&app, &c, "neg-1").await;
    negative(&app, &c, "neg-2").await;
    wait_until("two deliveries", 10, || rx.seen.lock().unwrap().len() >= 2).await;
    wait_until("both recorded", 10, || true).await;
    let mut items = Vec::new();
    for _ in 0..100 {
        items = app
            .all("/api/v1/deliveries?status=delivered", &app.admin_token)
            .await;
        if items.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(items.len(), 2);
    // newest first
    let (newer, older) = (
        items[0]["id"].as_i64().unwrap(),
        items[1]["id"].as_i64().unwrap(),
    );
    assert!(newer > older);
    force_failed(&app, older).await;

    let failed = app
        .all("/api/v1/deliveries?status=failed", &app.admin_token)
        .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], older);
    assert_eq!(failed[0]["last_error"], "receiver down");
    assert_eq!(failed[0]["topic"], "negative_rating");
    assert_eq!(
        app.all("/api/v1/deliveries?kind=negative_rating", &app.admin_token)
            .await
            .len(),
        2
    );
    assert!(app
        .all("/api/v1/deliveries?kind=report", &app.admin_token)
        .await
        .is_empty());

    // only failed ones can be retried; unknown ids are not found
    let retry = |id: i64, token: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/deliveries/{id}/retry"),
                Some(&token),
                None,
            )
            .await
        }
    };
    assert_error(
        &retry(newer, app.admin_token.clone()).await,
        StatusCode::CONFLICT,
        "not_failed",
        Some("status"),
    );
    assert_error(
        &retry(999_999, app.admin_token.clone()).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    // another branch's manager sees none of it and cannot retry it
    let branch = app.org("分行", "B1", root).await;
    let role = app
        .role(
            "分行管理",
            &["settings.manage", "stats.view", "stats.export"],
            "org_and_children",
        )
        .await;
    let (_, other) = app.person("branchboss", branch, role).await;
    assert!(app.all("/api/v1/deliveries", &other).await.is_empty());
    assert_error(
        &retry(older, other.clone()).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (status, _) = retry(older, app.admin_token.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_until("the retried send", 10, || {
        rx.seen.lock().unwrap().len() >= 3
    })
    .await;
    let mut retried = Value::Null;
    for _ in 0..100 {
        let all = app.all("/api/v1/deliveries", &app.admin_token).await;
        retried = all.into_iter().find(|d| d["id"] == older).unwrap();
        if retried["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(retried["status"], "delivered");
    assert_eq!(retried["attempts"], 13, "twelve before, one more now");
    assert_eq!(retried["last_error"], Value::Null);

    // the page: table, filters, the retry button only on failed ones, empty state
    force_failed(&app, newer).await;
    let web = app
        .page_client(&app.url, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let page = |q: &'static str| {
        let web = web.clone();
        let url = format!("{}/deliveries{q}", app.url);
        async move { web.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let html = page("").await;
    assert!(html.contains("id=\"deliveries-table\""), "{html}");
    assert!(html.contains("发送记录"));
    assert!(html.contains("不满意评价提醒"));
    assert_eq!(html.matches("/retry\"").count(), 1, "one failed delivery");
    assert!(html.contains(&format!("action=\"/deliveries/{newer}/retry\"")));
    assert!(html.contains("data-confirm="));
    let html = page("?status=failed").await;
    assert_eq!(html.matches("data-status=\"failed\"").count(), 1);
    assert_eq!(html.matches("data-status=\"delivered\"").count(), 0);
    let html = page("?kind=report").await;
    assert!(html.contains("id=\"deliveries-empty\""), "{html}");
    let resp = web
        .post(format!("{}/deliveries/{newer}/retry", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    wait_until("the page's retry", 10, || {
        rx.seen.lock().unwrap().len() >= 4
    })
    .await;
    // the retry is in the audit log
    let (_, audit) = app
        .get("/api/v1/audit?entity=delivery", &app.admin_token)
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(2), "{audit}");
}

async fn scheduled_report_goes_out_once_per_period(mut app: TestApp) {
    let c = counter(&app, "A").await;
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    let (status, p) = press(&app, &c, "satisfied", "pos-1").await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    negative(&app, &c, "neg-1").await;
    let root = app.root_id().await;
    let (url, rx) = receiver(1).await;
    let now = now_millis();
    let (status, schedule) = app
        .post(
            "/api/v1/report-schedules",
            &app.admin_token,
            json!({"org_id": root, "frequency": "daily", "channels": [{"kind": "webhook", "url": url}, {"kind": "email", "to": "boss@bank.cn"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    // periods closed before the schedule existed are not sent after the fact
    let yesterday = shanghai_date(now - DAY_MS);
    let today = shanghai_date(now);
    assert_eq!(schedule["last_period"], yesterday.as_str());
    assert_eq!(schedule["enabled"], true);
    let db = app.running.state.db.clone();
    let base = "https://kp.example.cn";
    assert!(keping_store::reports::run_due(&db, now, base)
        .await
        .unwrap()
        .is_empty());

    // a day later today has closed: one report, to both channels, once
    let sent = keping_store::reports::run_due(&db, now + DAY_MS, base)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].period, today);
    assert_eq!(sent[0].deliveries, 2);
    assert!(keping_store::reports::run_due(&db, now + DAY_MS, base)
        .await
        .unwrap()
        .is_empty());
    app.restart().await;
    let db = app.running.state.db.clone();
    assert!(keping_store::reports::run_due(&db, now + DAY_MS, base)
        .await
        .unwrap()
        .is_empty());
    // an earlier moment (a clock set back) does not send an older period again
    assert!(keping_store::reports::run_due(&db, now, base)
        .await
        .unwrap()
        .is_empty());

    // the webhook: the first try fails, the retry delivers
    wait_until("the report and its retry", 15, || {
        rx.seen.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let body = &seen[1].1;
    assert_eq!(body["event"], "report");
    assert_eq!(body["subject"], format!("总部 日报 {today}"));
    let text = body["text"].as_str().unwrap();
    for part in [
        format!("总部 日报（{today}）"),
        "客流量 2，参评 2，参评率 100.0%".to_string(),
        "评价 2 次：满意 1，一般 0，不满意 1；满意率 50.0%".to_string(),
        "不满意最多的网点：A网点 1 次".to_string(),
    ] {
        assert!(text.contains(&part), "{part} missing from {text}");
    }
    assert_eq!(
        body["link"],
        format!(
            "https://kp.example.cn/stats?org_id={root}&period=custom&from={today}&to={today}&group_by=outlet"
        )
    );
    assert_eq!(
        body["attachment"],
        format!("keping-report-{root}-{today}.xlsx")
    );

    // e-mail carries the workbook; without an SMTP server it waits with a clear error
    let reports = app
        .all("/api/v1/deliveries?kind=report", &app.admin_token)
        .await;
    assert_eq!(reports.len(), 2);
    let mut email = Value::Null;
    for _ in 0..100 {
        email = app
            .all("/api/v1/deliveries?kind=report", &app.admin_token)
            .await
            .into_iter()
            .find(|d| d["channel"] == "email")
            .unwrap();
        if !email["last_error"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(email["last_error"]
        .as_str()
        .unwrap()
        .contains("no SMTP server"));
    let (payload,): (String,) = sqlx::query_as("SELECT payload FROM outbox WHERE id = $1")
        .bind(email["id"].as_i64().unwrap())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let notice: Value = serde_json::from_str(&payload).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(notice["attachment"]["base64"].as_str().unwrap())
        .unwrap();
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let text: Vec<String> = sheet.rows().flatten().map(|c| c.to_string()).collect();
    assert!(text.iter().any(|c| c == "A网点"), "{text:?}");

    let (_, s) = app
        .get(
            &format!("/api/v1/report-schedules/{}", schedule["id"]),
            &app.admin_token,
        )
        .await;
    assert_eq!(s["last_period"], today.as_str());
}

async fn report_schedules_are_checked(app: TestApp) {
    let root = app.root_id().await;
    let post = |body: Value| app.post("/api/v1/report-schedules", &app.admin_token, body);
    let hook =
        json!({"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=x"});
    assert_error(
        &post(json!({"org_id": root, "frequency": "hourly", "channels": [hook]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_frequency",
        Some("frequency"),
    );
    assert_error(
        &post(json!({"org_id": root, "frequency": "daily", "channels": []})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("channels"),
    );
    assert_error(
        &post(json!({"org_id": root, "frequency": "daily", "channels": [{"kind": "email", "to": "nobody"}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_email",
        Some("channels[0].to"),
    );
    assert_error(
        &post(json!({"org_id": 999_999, "frequency": "daily", "channels": [hook]})).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (status, _) =
        post(json!({"org_id": "one", "frequency": "daily", "channels": [hook]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = post(json!({"frequency": "daily", "channels": [hook]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, at_root) =
        post(json!({"org_id": root, "frequency": "monthly", "channels": [hook]})).await;
    assert_eq!(status, StatusCode::CREATED, "{at_root}");
    let id = at_root["id"].as_i64().unwrap();
    let month = &shanghai_date(now_millis())[..7];
    assert!(at_root["last_period"].as_str().unwrap() < month);

    // a branch manager: his own branch only; the head office's schedule is not found
    let branch = app.org("分行", "B1", root).await;
    let other_branch = app.org("二分行", "B2", root).await;
    let role = app
        .role(
            "分行管理",
            &["settings.manage", "stats.view", "stats.export"],
            "org_and_children",
        )
        .await;
    let (_, boss) = app.person("branchboss", branch, role).await;
    let (status, mine) = app
        .post(
            "/api/v1/report-schedules",
            &boss,
            json!({"org_id": branch, "frequency": "weekly", "channels": [hook]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    assert!(mine["last_period"].as_str().unwrap().contains("-W"));
    assert_error(
        &app.post(
            "/api/v1/report-schedules",
            &boss,
            json!({"org_id": other_branch, "frequency": "weekly", "channels": [hook]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (_, list) = app.get("/api/v1/report-schedules", &boss).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, list) = app.get("/api/v1/report-schedules", &app.admin_token).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    for (method, body) in [
        (Method::GET, None),
        (
            Method::PUT,
            Some(json!({"org_id": root, "frequency": "daily", "channels": [hook]})),
        ),
        (Method::DELETE, None),
    ] {
        assert_error(
            &app.call(
                method,
                &format!("/api/v1/report-schedules/{id}"),
                Some(&boss),
                body,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        );
    }
    // without the rights at all
    let viewer = app.role("查看", &["org.view"], "all").await;
    let (_, t) = app.person("viewer", root, viewer).await;
    assert_error(
        &app.get("/api/v1/report-schedules", &t).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );

    // a new frequency starts from the period last closed under it; the org stays
    let (status, changed) = app
        .call(
            Method::PUT,
            &format!("/api/v1/report-schedules/{id}"),
            Some(&app.admin_token),
            Some(
                json!({"org_id": root, "frequency": "daily", "channels": [hook], "enabled": false}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["frequency"], "daily");
    assert_eq!(changed["enabled"], false);
    assert_eq!(
        changed["last_period"],
        shanghai_date(now_millis() - DAY_MS).as_str()
    );
    assert_error(
        &app.call(
            Method::PUT,
            &format!("/api/v1/report-schedules/{id}"),
            Some(&app.admin_token),
            Some(json!({"org_id": branch, "frequency": "daily", "channels": [hook]})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "immutable",
        Some("org_id"),
    );
    // a paused schedule sends nothing
    assert!(keping_store::reports::run_due(
        &app.running.state.db,
        now_millis() + 2 * DAY_MS,
        "https://kp.example.cn"
    )
    .await
    .unwrap()
    .iter()
    .all(|s| s.schedule_id != id));

    // the page: the list, adding through the form, a bad address explained, delete
    let web = app
        .page_client(&app.url, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let html = crate::harness::html(&web, format!("{}/report-schedules", app.url)).await;
    assert!(html.contains("id=\"schedules-table\""), "{html}");
    assert!(html.contains("月报") || html.contains("日报"));
    let resp = web
        .post(format!("{}/report-schedules", app.url))
        .form(&[
            ("org_id", root.to_string()),
            ("frequency", "weekly".into()),
            ("channel", "email".into()),
            ("target", "not-an-address".into()),
        ])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"schedule-error\""), "{html}");
    assert!(
        html.contains("not-an-address"),
        "the form keeps what was typed"
    );
    let resp = web
        .post(format!("{}/report-schedules", app.url))
        .form(&[
            ("org_id", root.to_string()),
            ("frequency", "weekly".into()),
            ("channel", "email".into()),
            ("target", "boss@bank.cn".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, list) = app.get("/api/v1/report-schedules", &app.admin_token).await;
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["channels"][0]["to"] == "boss@bank.cn" && s["frequency"] == "weekly"));
    let resp = web
        .post(format!("{}/report-schedules/{id}/delete", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, _) = app
        .get(&format!("/api/v1/report-schedules/{id}"), &app.admin_token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn monthly_grading_sends_downgrade_and_churn_warnings(mut app: TestApp) {
    let admin = app.admin_token.clone();
    let root = app.root_id().await;
    let (status, m) = app
        .post(
            "/api/v1/scoring-models",
            &admin,
            json!({"name": "测试模型", "scale": 10,
                "criteria": [
                    {"code": "volume", "name": "交易额", "weight": 50, "input": "manual", "normalize": {"kind": "none"}},
                    {"code": "returns", "name": "退货率", "weight": 50, "input": "metric:return_rate",
                     "normalize": {"kind": "linear", "from": 5, "to": 1}}],
                "grades": [{"min": 8, "grade": "A"}, {"min": 6, "grade": "B"}, {"min": 0, "grade": "C"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let model = m["id"].as_i64().unwrap();
    // the second customer's owner rep has an e-mail address: he hears of his own customer
    let role = app.role("客户经理", &["customer.view"], "self").await;
    let (status, rep) = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "rep1", "password": "person-pass-1", "name": "李经理", "email": "li@example.cn",
                "org_id": root, "roles": [{"role_id": role, "org_id": root}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rep}");
    let mut ids = Vec::new();
    for (name, owner) in [("稳定客户", Value::Null), ("降级客户", rep["id"].clone())] {
        let (status, c) = app
            .post(
                "/api/v1/customers",
                &admin,
                json!({"name": name, "owner_id": owner}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        ids.push(c["id"].as_i64().unwrap());
    }
    let now = now_millis();
    // the month that closes a month from now is this one; the one before it, last month
    let this_month = shanghai_date(now)[..7].to_string();
    let last_month = keping_domain::reports::last_closed(
        keping_domain::reports::Frequency::Monthly,
        "Asia/Shanghai",
        now,
    )
    .key;
    let put = |c: i64, p: &str, v: Value| {
        let app = &app;
        let admin = admin.clone();
        let path = format!("/api/v1/customers/{c}/scoring-inputs/{p}");
        async move {
            let (status, body) = app
                .call(Method::PUT, &path, Some(&admin), Some(json!({"values": v})))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    // last month both are A (10 points); this month the second drops to C (2 points), and the
    // first has not ordered for 120 days, sells less and has more complaints
    put(
        ids[0],
        &last_month,
        json!({"volume": 10, "return_rate": 1, "complaints": 1}),
    )
    .await;
    put(ids[1], &last_month, json!({"volume": 10, "return_rate": 1})).await;
    put(ids[0], &this_month, json!({"volume": 10, "return_rate": 1, "complaints": 3, "days_since_last_order": 120, "sales_growth": -20})).await;
    put(ids[1], &this_month, json!({"volume": 4, "return_rate": 5})).await;
    let (status, first) = app
        .post(
            "/api/v1/scoring-runs",
            &admin,
            json!({"model_id": model, "period": last_month, "org_id": root}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    let (url, rx) = receiver(0).await;
    let post = |body: Value| app.post("/api/v1/grading-schedules", &admin, body);
    assert_error(
        &post(json!({"org_id": root, "model_id": 999_999, "channels": [{"kind": "webhook", "url": url}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_found",
        Some("model_id"),
    );
    assert_error(
        &post(json!({"org_id": root, "model_id": model, "channels": []})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("channels"),
    );
    assert_error(
        &post(json!({"org_id": root, "model_id": model, "idle_days": 0, "channels": [{"kind": "webhook", "url": url}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
        Some("idle_days"),
    );
    assert_error(
        &post(json!({"org_id": 999_999, "model_id": model, "channels": [{"kind": "webhook", "url": url}]})).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (status, schedule) =
        post(json!({"org_id": root, "model_id": model, "idle_days": 90, "channels": [{"kind": "webhook", "url": url}]})).await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    assert_eq!(schedule["last_period"], last_month.as_str());

    let db = app.running.state.db.clone();
    let base = "https://kp.example.cn";
    assert!(keping_store::grading_notices::run_due(&db, now, base)
        .await
        .unwrap()
        .is_empty());
    // a month on, this month has closed: one run, one warning
    let later = now + 32 * DAY_MS;
    let ran = keping_store::grading_notices::run_due(&db, later, base)
        .await
        .unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].period, this_month);
    // the org's webhook and the rep's e-mail
    assert_eq!(
        (ran[0].downgraded, ran[0].churn, ran[0].deliveries),
        (1, 1, 2)
    );
    let (to, payload): (String, String) = sqlx::query_as(
        "SELECT target, payload FROM outbox WHERE topic = 'grading_warning' AND channel = 'email'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(to.contains("li@example.cn"), "{to}");
    let mail: Value = serde_json::from_str(&payload).unwrap();
    let mail_text = mail["text"].as_str().unwrap();
    assert!(mail_text.contains("降级客户：A → C"), "{mail_text}");
    assert!(!mail_text.contains("稳定客户"), "{mail_text}");
    app.restart().await;
    let db = app.running.state.db.clone();
    assert!(keping_store::grading_notices::run_due(&db, later, base)
        .await
        .unwrap()
        .is_empty());
    let (_, runs) = app.get("/api/v1/scoring-runs", &admin).await;
    let scheduled: Vec<&Value> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "schedule")
        .collect();
    assert_eq!(scheduled.len(), 1, "{runs}");
    assert_eq!(scheduled[0]["period"], this_month.as_str());
    assert_eq!(scheduled[0]["previous_run_id"], first["id"]);

    wait_until("the warning", 10, || !rx.seen.lock().unwrap().is_empty()).await;
    let body = rx.seen.lock().unwrap()[0].1.clone();
    assert_eq!(body["event"], "grading_warning");
    assert_eq!(body["subject"], format!("{this_month} 客户降级与流失预警"));
    let text = body["text"].as_str().unwrap();
    for part in [
        "共 2 位客户".to_string(),
        "降级 1 位：".to_string(),
        "降级客户：A → C（10.0 → 2.0）".to_string(),
        "流失预警 1 位：".to_string(),
        "稳定客户：120 天未订货，销售环比下降 20%，投诉增加（1 → 3）".to_string(),
    ] {
        assert!(text.contains(&part), "{part} missing from {text}");
    }
    assert_eq!(
        body["link"],
        format!("https://kp.example.cn/grading/runs/{}", scheduled[0]["id"])
    );

    // listed (API and page), then stopped
    let (status, list) = app.get("/api/v1/grading-schedules", &admin).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["model_name"], "测试模型");
    assert_eq!(list[0]["channels"][0]["url"], url.as_str());
    assert_eq!(list[0]["last_run_id"], scheduled[0]["id"]);
    let client = app
        .page_client(&app.url, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let page = crate::harness::html(&client, format!("{}/grading/schedules", app.url)).await;
    assert!(
        page.contains("测试模型") && page.contains(&this_month),
        "{page}"
    );
    let id = list[0]["id"].as_i64().unwrap();
    let gone = format!("/api/v1/grading-schedules/{id}");
    let (status, _) = app.call(Method::DELETE, &gone, Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.call(Method::DELETE, &gone, Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/api/v1/grading-schedules", &admin).await;
    assert_eq!(list, json!([]));
    let page = crate::harness::html(&client, format!("{}/grading/schedules", app.url)).await;
    assert!(page.contains("id=\"schedules-empty\""), "{page}");
}
