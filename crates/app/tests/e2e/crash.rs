//! A keping process killed with SIGKILL during a burst of presses: after a restart every press that
//! got a 2xx answer is there, none twice.

use crate::api_evaluation::counter;
use crate::{both, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

both!(presses_acknowledged_before_a_kill_survive_it);

/// The real binary as a child process, serving the test's database on a port of its own.
fn spawn_keping(database_url: &str) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_keping"))
        .arg("serve")
        .env("KEPING_DATABASE_URL", database_url)
        .env("KEPING_BIND", format!("127.0.0.1:{port}"))
        .env("KEPING_ADMIN_PASSWORD", crate::harness::ADMIN_PASSWORD)
        .env("KEPING_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the keping binary starts");
    (child, format!("http://127.0.0.1:{port}"))
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("keping at {base} did not come up");
}

async fn presses_acknowledged_before_a_kill_survive_it(app: TestApp) {
    let c = counter(&app, "A").await;
    let mut settings = app
        .get(
            &format!("/api/v1/orgs/{}/evaluation-settings", c.outlet),
            &app.admin_token,
        )
        .await
        .1;
    settings["bare_presses_count"] = json!(true);
    settings["press_interval_seconds"] = json!(0);
    app.call(
        Method::PUT,
        &format!("/api/v1/orgs/{}/evaluation-settings", c.outlet),
        Some(&app.admin_token),
        Some(settings),
    )
    .await;
    // more terminals, so the burst is not held back by one terminal's rate limit
    let mut tokens = vec![c.terminal.clone()];
    for _ in 0..3 {
        let (_, t) = app
            .post(
                "/api/v1/terminals",
                &app.admin_token,
                json!({"window_id": c.window, "kind": "keypad"}),
            )
            .await;
        tokens.push(t["token"].as_str().unwrap().to_string());
    }
    let url = app.config.database_url.clone().unwrap();
    let (mut child, base) = spawn_keping(&url);
    wait_healthy(&base).await;

    // acknowledged: (terminal token, body, answer)
    let acked: Arc<Mutex<Vec<(String, Value, Value)>>> = Arc::default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut burst = Vec::new();
    for (w, token) in tokens.iter().enumerate() {
        let (client, base, token, acked) =
            (client.clone(), base.clone(), token.clone(), acked.clone());
        burst.push(tokio::spawn(async move {
            for i in 0..400 {
                let body = json!({"key": "satisfied", "idempotency_key": format!("crash-{w}-{i}"), "pressed_at": chrono::Utc::now().to_rfc3339()});
                match client.post(format!("{base}/api/v1/device/presses")).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let answer: Value = r.json().await.unwrap_or(Value::Null);
                        if answer.is_object() {
                            acked.lock().unwrap().push((token.clone(), body, answer));
                        }
                    }
                    Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => tokio::time::sleep(Duration::from_millis(50)).await,
                    Ok(_) => {}
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // let the burst run, then kill the process without warning
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for b in burst {
        b.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 40,
        "the burst was acknowledged only {} times before the kill",
        acked.len()
    );

    // after a restart: each acknowledged press is stored once and a replay returns the same answer
    let (mut child, base) = spawn_keping(&url);
    wait_healthy(&base).await;
    for (token, body, answer) in &acked {
        let key = body["idempotency_key"].as_str().unwrap();
        let (n,): (i64,) =
            keping_store::Sql::new("SELECT COUNT(*) FROM presses WHERE idempotency_key = ")
                .arg(key)
                .fetch_one(&app.running.state.db.pool)
                .await
                .unwrap();
        assert_eq!(n, 1, "{key} stored {n} times");
        let replay = client
            .post(format!("{base}/api/v1/device/presses"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), StatusCode::OK, "{key}");
        assert_eq!(&replay.json::<Value>().await.unwrap(), answer, "{key}");
    }
    // and no press appears twice at all
    let (dupes,): (i64,) = keping_store::Sql::new("SELECT COUNT(*) FROM (SELECT terminal_id, idempotency_key FROM presses GROUP BY terminal_id, idempotency_key HAVING COUNT(*) > 1) d").fetch_one(&app.running.state.db.pool).await.unwrap();
    assert_eq!(dupes, 0);
    let (ratings,): (i64,) = keping_store::Sql::new(
        "SELECT COUNT(*) FROM ratings r JOIN presses p ON p.id = r.press_id",
    )
    .fetch_one(&app.running.state.db.pool)
    .await
    .unwrap();
    let (presses,): (i64,) =
        keping_store::Sql::new("SELECT COUNT(*) FROM presses WHERE counted = 1")
            .fetch_one(&app.running.state.db.pool)
            .await
            .unwrap();
    assert_eq!(
        ratings, presses,
        "every counted press has exactly one rating"
    );
    // the roll-ups, folded and pending, count exactly the stored rows: the kill may have cut a
    // batch or a fold short, and either went entirely or not at all
    let check = keping_store::stats::rebuild(&app.running.state.db, true)
        .await
        .unwrap();
    assert_eq!(check.differences, 0, "{:?}", check.examples);
    assert!(check.cells > 0);
    child.kill().unwrap();
    child.wait().unwrap();
}
