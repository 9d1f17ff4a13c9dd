//! What a terminal sees of its window (device state, staff photos), what QR terminals may do, and
//! presses through the QR page: late ratings, one counted rating per service, limits per visitor.

use crate::api_evaluation::{counter, end, press, start, Counter};
use crate::api_people::PNG;
use crate::harness::assert_error;
use crate::{both, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both!(
    state_follows_the_service_flow,
    staff_photos_only_for_staff_on_duty_here,
    qr_terminals_only_rate,
    qr_rates_the_latest_unrated_service,
    qr_presses_are_limited_per_visitor
);

/// Registers another terminal of `kind` for the window and answers its token.
pub async fn terminal(app: &TestApp, window: i64, kind: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/terminals",
            &app.admin_token,
            json!({"window_id": window, "kind": kind}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn state(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.get("/api/v1/device/state", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub async fn sign_in(app: &TestApp, token: &str, employee_no: &str) -> Value {
    let (status, body) = app
        .post(
            "/api/v1/device/sign-in",
            token,
            json!({"employee_no": employee_no}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn exec(app: &TestApp, sql: &str, id: i64) {
    keping_store::Sql::new(sql)
        .arg(id)
        .execute(&app.running.state.db.pool)
        .await
        .unwrap();
}

async fn ratings(app: &TestApp, window: i64) -> Vec<Value> {
    app.all(
        &format!("/api/v1/ratings?window_id={window}"),
        &app.admin_token,
    )
    .await
}

async fn state_follows_the_service_flow(app: TestApp) {
    let c = counter(&app, "A").await;
    // the clerk runs the service on his keypad; the kiosk beside it shows the customer
    let kiosk = terminal(&app, c.window, "kiosk").await;
    let idle = state(&app, &kiosk).await;
    assert_eq!(idle["window"], json!({"id": c.window, "name": "1号窗口"}));
    assert_eq!(idle["org_name"], "A网点");
    assert_eq!(idle["business_type"], Value::Null);
    assert_eq!(idle["staff"], Value::Null);
    assert_eq!(idle["service_id"], Value::Null);
    assert_eq!(idle["prompt_open"], false);
    assert_eq!(
        idle["options"][0],
        json!({"key": "very_satisfied", "label": "非常满意", "label_en": "Very satisfied", "polarity": "positive"})
    );
    assert_eq!(idle["options"].as_array().unwrap().len(), 4);
    assert_eq!(idle["options"][3]["polarity"], "negative");
    assert_eq!(
        idle["negative_reasons"],
        json!(["服务礼仪", "服务效率", "业务知识"])
    );
    // asking for the state is the kiosk's heartbeat
    let (seen,): (Option<i64>,) =
        keping_store::Sql::new("SELECT last_seen_at FROM terminals WHERE window_id = ")
            .arg(c.window)
            .push(" AND kind = 'kiosk'")
            .fetch_one(&app.running.state.db.pool)
            .await
            .unwrap();
    assert!(seen.is_some());

    let signed = sign_in(&app, &c.terminal, "CA").await;
    assert_eq!(signed["staff"]["has_photo"], false);
    let on_duty = state(&app, &kiosk).await;
    assert_eq!(
        on_duty["staff"],
        json!({"id": c.staff_id, "name": "王芳", "employee_no": "CA", "has_photo": false})
    );

    let s = start(&app, &c).await;
    let serving = state(&app, &kiosk).await;
    assert_eq!(serving["service_id"], s);
    assert_eq!(serving["prompt_open"], false);

    end(&app, &c, s).await;
    let prompting = state(&app, &kiosk).await;
    assert_eq!(prompting["service_id"], Value::Null);
    assert_eq!(prompting["prompt_open"], true);

    // the kiosk's own press rates the prompt, which then no longer asks
    let (status, p) = app
        .call(
            Method::POST,
            "/api/v1/device/presses",
            Some(&kiosk),
            Some(json!({"key": "satisfied", "idempotency_key": "k-1", "pressed_at": chrono::Utc::now().to_rfc3339()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["counted"], true);
    assert_eq!(state(&app, &kiosk).await["prompt_open"], false);

    // a prompt past the time limit no longer asks either
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    assert_eq!(state(&app, &kiosk).await["prompt_open"], true);
    exec(
        &app,
        "UPDATE services SET ended_at = ended_at - 60000 WHERE id = ",
        s,
    )
    .await;
    assert_eq!(state(&app, &kiosk).await["prompt_open"], false);

    let (status, _) = app
        .call(Method::POST, "/api/v1/device/sign-out", Some(&kiosk), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state(&app, &kiosk).await["staff"], Value::Null);
    assert_error(
        &app.call(Method::GET, "/api/v1/device/state", None, None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    // the endpoints are in the OpenAPI document
    let (_, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert!(doc["paths"]["/api/v1/device/state"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/device/staff/{id}/photo"]["get"].is_object());
}

async fn photo(app: &TestApp, token: &str, staff_id: i64) -> reqwest::Response {
    app.client
        .get(format!("{}/api/v1/device/staff/{staff_id}/photo", app.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn staff_photos_only_for_staff_on_duty_here(app: TestApp) {
    let a = counter(&app, "A").await;
    let b = counter(&app, "B").await;
    for id in [a.staff_id, b.staff_id] {
        let resp = app
            .client
            .put(format!("{}/api/v1/users/{id}/photo", app.url))
            .bearer_auth(&app.admin_token)
            .header("content-type", "image/png")
            .body(PNG.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }
    // not on duty yet
    assert_eq!(
        photo(&app, &a.terminal, a.staff_id).await.status(),
        StatusCode::NOT_FOUND
    );
    sign_in(&app, &a.terminal, "CA").await;
    assert_eq!(state(&app, &a.terminal).await["staff"]["has_photo"], true);
    let got = photo(&app, &a.terminal, a.staff_id).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().as_ref(), PNG);
    // staff of another window, photo or not, are no business of this terminal
    sign_in(&app, &b.terminal, "CB").await;
    let other = photo(&app, &a.terminal, b.staff_id).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        photo(&app, &a.terminal, 999_999).await.status(),
        StatusCode::NOT_FOUND
    );
    // just signed out: the card drawn a moment ago still gets its photo; hours later it does not
    app.call(
        Method::POST,
        "/api/v1/device/sign-out",
        Some(&a.terminal),
        None,
    )
    .await;
    assert_eq!(
        photo(&app, &a.terminal, a.staff_id).await.status(),
        StatusCode::OK
    );
    exec(
        &app,
        "UPDATE duties SET started_at = started_at - 7200000, ended_at = ended_at - 7200000 WHERE staff_id = ",
        a.staff_id,
    )
    .await;
    assert_eq!(
        photo(&app, &a.terminal, a.staff_id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        photo(&app, "kpd_nope", b.staff_id).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn qr_terminals_only_rate(app: TestApp) {
    let c = counter(&app, "A").await;
    let qr = terminal(&app, c.window, "qr").await;
    let s = start(&app, &c).await;
    let refused = [
        (
            Method::POST,
            "/api/v1/device/services".to_string(),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/device/services/{s}/end"),
            json!({}),
        ),
        (
            Method::POST,
            "/api/v1/device/sign-in".to_string(),
            json!({"employee_no": "CA"}),
        ),
        (
            Method::POST,
            "/api/v1/device/sign-out".to_string(),
            json!({}),
        ),
        (
            Method::POST,
            "/api/v1/device/presses".to_string(),
            json!({"key": "satisfied", "idempotency_key": "qr-api-1", "pressed_at": chrono::Utc::now().to_rfc3339()}),
        ),
    ];
    for (method, path, body) in refused {
        assert_error(
            &app.call(method, &path, Some(&qr), Some(body)).await,
            StatusCode::FORBIDDEN,
            "forbidden_for_qr",
            None,
        );
    }
    // nothing happened: the service still runs, nobody signed in
    let seen = state(&app, &qr).await;
    assert_eq!(seen["service_id"], s);
    assert_eq!(seen["staff"], Value::Null);
    // only QR terminals have a QR page
    let kiosk = terminal(&app, c.window, "kiosk").await;
    for token in [kiosk.as_str(), "kpd_nope"] {
        let resp = app
            .client
            .get(format!("{}/r/{token}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(resp.text().await.unwrap().contains("此二维码已失效"));
    }
}

/// Opens the QR page as a phone does and answers the page's nonce.
async fn visit(app: &TestApp, qr: &str) -> String {
    let resp = app
        .client
        .get(format!("{}/r/{qr}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    let (_, rest) = html
        .split_once(r#"name="nonce" value=""#)
        .expect("the page carries a nonce");
    rest.split('"').next().unwrap().to_string()
}

/// Presses a key on the QR page; answers the status and the page's outcome code.
async fn qr_press(app: &TestApp, qr: &str, key: &str, nonce: &str) -> (StatusCode, String) {
    let resp = app
        .client
        .post(format!("{}/r/{qr}", app.url))
        .form(&[("key", key), ("nonce", nonce)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let html = resp.text().await.unwrap();
    let outcome = html
        .split_once(r#"data-outcome=""#)
        .map_or("", |(_, rest)| rest.split('"').next().unwrap())
        .to_string();
    (status, outcome)
}

async fn qr_rates_the_latest_unrated_service(app: TestApp) {
    let c = counter(&app, "A").await;
    sign_in(&app, &c.terminal, "CA").await;
    let qr = terminal(&app, c.window, "qr").await;

    // nothing to rate yet, said politely
    let resp = app
        .client
        .post(format!("{}/r/{qr}", app.url))
        .form(&[("key", "satisfied"), ("nonce", "early")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("感谢您的关注，当前没有可评价的服务"));

    // a service whose prompt timed out: the keypad can no longer rate it…
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    exec(
        &app,
        "UPDATE services SET ended_at = ended_at - 60000 WHERE id = ",
        s,
    )
    .await;
    let (_, late) = press(&app, &c, "satisfied", "kp-late").await;
    assert_eq!(late["reason"], "no_prompt");
    // …but the customer who scans the code on his way out can
    let page = app
        .client
        .get(format!("{}/r/{qr}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for text in ["1号窗口", "王芳", "CA", "非常满意", "不满意"] {
        assert!(page.contains(text), "{text} missing from the QR page");
    }
    let nonce = visit(&app, &qr).await;
    assert_eq!(
        qr_press(&app, &qr, "satisfied", &nonce).await,
        (StatusCode::OK, "thanks".into())
    );
    let rated = ratings(&app, c.window).await;
    assert_eq!(rated.len(), 1, "{rated:?}");
    assert_eq!(rated[0]["service_id"], s);
    assert_eq!(rated[0]["staff_id"], c.staff_id);
    assert_eq!(rated[0]["key"], "satisfied");

    // the same visit again (a resent form) and a new visit: kept, not counted
    assert_eq!(
        qr_press(&app, &qr, "satisfied", &nonce).await.1,
        "already_rated"
    );
    let again = visit(&app, &qr).await;
    assert_eq!(
        qr_press(&app, &qr, "dissatisfied", &again).await.1,
        "already_rated"
    );
    assert_eq!(ratings(&app, c.window).await.len(), 1);
    let (kept,): (i64,) = keping_store::Sql::new(
        "SELECT COUNT(*) FROM presses WHERE counted = 0 AND reason = 'already_rated' AND window_id = ",
    )
    .arg(c.window)
    .fetch_one(&app.running.state.db.pool)
    .await
    .unwrap();
    assert_eq!(kept, 1);

    // every service ended more than 30 minutes ago: nothing to rate
    let old = start(&app, &c).await;
    end(&app, &c, old).await;
    exec(
        &app,
        "UPDATE services SET started_at = started_at - 1900000, ended_at = ended_at - 1900000 WHERE window_id = ",
        c.window,
    )
    .await;
    let nonce = visit(&app, &qr).await;
    assert_eq!(
        qr_press(&app, &qr, "satisfied", &nonce).await.1,
        "nothing_to_rate"
    );

    // with a prompt open, the QR press rates it like a keypad would, and the keypad is then too late
    let open = start(&app, &c).await;
    end(&app, &c, open).await;
    let nonce = visit(&app, &qr).await;
    assert_eq!(
        qr_press(&app, &qr, "very_satisfied", &nonce).await.1,
        "thanks"
    );
    let (_, after) = press(&app, &c, "dissatisfied", "kp-after").await;
    assert_eq!(after["reason"], "already_rated");
    let rated = ratings(&app, c.window).await;
    assert_eq!(rated.len(), 2);
    assert_eq!(rated[0]["service_id"], open);

    // an unknown key (options changed since the page was drawn) starts the visit over
    let nonce = visit(&app, &qr).await;
    let resp = app
        .client
        .post(format!("{}/r/{qr}", app.url))
        .form(&[("key", "thumbs_up"), ("nonce", nonce.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(ratings(&app, c.window).await.len(), 2);
}

async fn qr_presses_are_limited_per_visitor(app: TestApp) {
    let c: Counter = counter(&app, "A").await;
    let qr = terminal(&app, c.window, "qr").await;
    for i in 0..10 {
        let (status, outcome) = qr_press(&app, &qr, "satisfied", &format!("n-{i}")).await;
        assert_eq!(status, StatusCode::OK, "press {i}");
        assert_eq!(outcome, "nothing_to_rate");
    }
    let resp = app
        .client
        .post(format!("{}/r/{qr}", app.url))
        .form(&[("key", "satisfied"), ("nonce", "n-10")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("操作太频繁，请稍后再试"));
    // the refused press was not even recorded
    let (n,): (i64,) = keping_store::Sql::new("SELECT COUNT(*) FROM presses WHERE window_id = ")
        .arg(c.window)
        .fetch_one(&app.running.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 10);
    // the page itself still opens
    visit(&app, &qr).await;
}
