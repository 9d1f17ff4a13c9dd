//! Negative alerts through the outbox to a local receiver on 127.0.0.1: exactly one successful
//! delivery per channel, also when the receiver fails the first tries and keping restarts between.

use crate::api_evaluation::{counter, end, start};
use crate::harness::assert_error;
use crate::{both, TestApp};
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

both!(
    negative_alert_is_delivered_once_despite_failures,
    delivery_survives_a_restart,
    alert_settings_are_checked,
    alerts_of_one_batch_count_the_day_in_order
);

/// An HTTP receiver that fails the first `failures` requests with 500.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub(crate) seen: Arc<Mutex<Vec<(Instant, Value)>>>,
    failures: usize,
}

async fn receive(State(r): State<Receiver>, body: String) -> (AxumStatus, String) {
    let mut seen = r.seen.lock().unwrap();
    seen.push((
        Instant::now(),
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ));
    if seen.len() <= r.failures {
        (AxumStatus::INTERNAL_SERVER_ERROR, "try again".into())
    } else {
        (AxumStatus::OK, r#"{"errcode":0,"errmsg":"ok"}"#.into())
    }
}

pub(crate) async fn receiver(failures: usize) -> (String, Receiver) {
    let r = Receiver {
        seen: Default::default(),
        failures,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

pub(crate) async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn negative(
    app: &TestApp,
    c: &crate::api_evaluation::Counter,
    idem: &str,
) -> Instant {
    let s = start(app, c).await;
    end(app, c, s).await;
    let at = Instant::now();
    let (status, p) = app.call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "dissatisfied", "idempotency_key": idem, "pressed_at": chrono::Utc::now().to_rfc3339(), "phone": "13800135678"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["counted"], true);
    at
}

async fn negative_alert_is_delivered_once_despite_failures(app: TestApp) {
    let c = counter(&app, "A").await;
    let (url, rx) = receiver(2).await;
    let root = app.root_id().await;
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/alert-settings"),
            Some(&app.admin_token),
            Some(json!({"channels": [{"kind": "dingtalk", "url": url}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // a positive rating alerts nobody
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    crate::api_evaluation::press(&app, &c, "satisfied", "pos-1").await;
    app.call(
        Method::POST,
        "/api/v1/device/sign-in",
        Some(&c.terminal),
        Some(json!({"employee_no": "CA"})),
    )
    .await;

    let pressed = negative(&app, &c, "neg-1").await;
    wait_until("the first attempt", 5, || {
        !rx.seen.lock().unwrap().is_empty()
    })
    .await;
    let first = rx.seen.lock().unwrap()[0].0;
    assert!(
        first - pressed < Duration::from_secs(1),
        "the alert left after {:?}",
        first - pressed
    );
    wait_until("the third attempt", 15, || {
        rx.seen.lock().unwrap().len() >= 3
    })
    .await;
    // no fourth request once one succeeded
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let text = seen[2].1["text"]["content"].as_str().unwrap().to_string();
    assert_eq!(seen[2].1["msgtype"], "text");
    for part in [
        "A网点",
        "1号窗口",
        "王芳（工号 CA）",
        "不满意",
        "今日不满意 1 次，占今日评价 50.0%（共 2 次）",
        "138****5678",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    let (_, deliveries) = app.get("/api/v1/deliveries", &app.admin_token).await;
    let items = deliveries["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "delivered");
    assert_eq!(items[0]["attempts"], 3);
    assert_eq!(items[0]["channel"], "dingtalk");
}

async fn delivery_survives_a_restart(mut app: TestApp) {
    let c = counter(&app, "A").await;
    let (url, rx) = receiver(1).await;
    let root = app.root_id().await;
    app.call(
        Method::PUT,
        &format!("/api/v1/orgs/{root}/alert-settings"),
        Some(&app.admin_token),
        Some(json!({"channels": [{"kind": "webhook", "url": url}]})),
    )
    .await;
    negative(&app, &c, "neg-1").await;
    wait_until("the first, failing attempt", 5, || {
        !rx.seen.lock().unwrap().is_empty()
    })
    .await;
    app.restart().await;
    wait_until("the retry after the restart", 15, || {
        rx.seen.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].1["event"], "negative_rating");
    assert_eq!(seen[1].1["alert"]["window"], "1号窗口");
    assert_eq!(seen[0].1, seen[1].1, "the retry sends the same alert");
    let (_, deliveries) = app
        .get("/api/v1/deliveries?status=delivered", &app.admin_token)
        .await;
    assert_eq!(deliveries["items"].as_array().unwrap().len(), 1);
}

async fn alert_settings_are_checked(app: TestApp) {
    let root = app.root_id().await;
    let path = format!("/api/v1/orgs/{root}/alert-settings");
    let put = |body: Value| app.call(Method::PUT, &path, Some(&app.admin_token), Some(body));
    assert_error(
        &put(json!({"channels": [{"kind": "pigeon"}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_channel",
        Some("channels[0]"),
    );
    assert_error(
        &put(json!({"channels": [{"kind": "webhook", "url": "ftp://x"}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_url",
        Some("channels[0].url"),
    );
    assert_error(
        &put(json!({"channels": [{"kind": "email", "to": "nobody"}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_email",
        Some("channels[0].to"),
    );
    let sms = json!({"kind": "sms", "url": "https://sms.example.cn/send", "phone": "13800000000", "body": "{\"to\":\"{phone}\",\"msg\":\"{text}\"}"});
    let (status, saved) = put(json!({"channels": [sms, {"kind": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/x"}]})).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    // inherited below
    let child = app.org("分行", "B1", root).await;
    let (_, inherited) = app
        .get(
            &format!("/api/v1/orgs/{child}/alert-settings"),
            &app.admin_token,
        )
        .await;
    assert_eq!(inherited["channels"].as_array().unwrap().len(), 2);
    // without the permission
    let viewer = app.role("查看", &["org.view"], "all").await;
    let (_, t) = app.person("viewer", root, viewer).await;
    assert_error(
        &app.get(&format!("/api/v1/orgs/{root}/alert-settings"), &t)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_error(
        &app.get("/api/v1/deliveries", &t).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
}

/// Presses arriving together are written in one batch: each negative's alert counts the outlet's
/// day up to itself, and a later alert counts what the batch wrote.
async fn alerts_of_one_batch_count_the_day_in_order(app: TestApp) {
    let c = counter(&app, "A").await;
    let root = app.root_id().await;
    // a plain keypad: every bare press counts
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/evaluation-settings"),
            Some(&app.admin_token),
            Some(json!({"press_interval_seconds": 0, "rating_timeout_seconds": 30, "bare_presses_count": true,
                "options": [{"key": "satisfied", "label": "满意", "polarity": "positive"},
                            {"key": "dissatisfied", "label": "不满意", "polarity": "negative"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/alert-settings"),
            Some(&app.admin_token),
            Some(json!({"channels": [{"kind": "webhook", "url": "http://127.0.0.1:9/hook"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = |n: usize| {
        if n.is_multiple_of(2) {
            "dissatisfied"
        } else {
            "satisfied"
        }
    };
    let keys: Vec<String> = (0..6).map(|n| format!("batch-{n}")).collect();
    let answers = futures_util::future::join_all(
        keys.iter()
            .enumerate()
            .map(|(n, idem)| crate::api_evaluation::press(&app, &c, key(n), idem)),
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        assert_eq!(body["counted"], true, "{body}");
    }
    crate::api_evaluation::press(&app, &c, "dissatisfied", "after").await;
    let payloads: Vec<(i64, Value)> =
        keping_store::Sql::new("SELECT id, payload FROM outbox ORDER BY id")
            .fetch_all::<(i64, String), _>(&app.running.state.db.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, p)| (id, serde_json::from_str(&p).unwrap()))
            .collect();
    let mut negatives: Vec<i64> = payloads
        .iter()
        .map(|(_, p)| p["today_negative"].as_i64().unwrap())
        .collect();
    assert_eq!(payloads.len(), 4, "{payloads:?}");
    let last = &payloads[3].1;
    assert_eq!(last["today_negative"], 4, "{last}");
    assert_eq!(last["today_total"], 7, "{last}");
    negatives.sort_unstable();
    assert_eq!(negatives, vec![1, 2, 3, 4]);
    for (_, p) in &payloads {
        let (n, total) = (
            p["today_negative"].as_i64().unwrap(),
            p["today_total"].as_i64().unwrap(),
        );
        assert!(n <= total && total <= n + 3, "{p}");
    }
}
