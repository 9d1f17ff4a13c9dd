//! The live monitor: a change at a window reaches a watching browser through SSE within a second,
//! on PostgreSQL also from another keping instance sharing the database.

use crate::api_evaluation::{counter, end, press, start};
use crate::harness::ADMIN_PASSWORD;
use crate::{both, Backend, TestApp};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

both!(monitor_page_and_events);

/// Reads the SSE stream until an event named `name` whose data contains `needle` arrives.
async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    name: &str,
    needle: &str,
    buffer: &mut String,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // events are separated by a blank line
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.contains(&format!("event: {name}\n")) && event.contains(needle) {
                return event;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no event {name} with {needle}: {other:?}; buffer {buffer}"),
        }
    }
}

async fn monitor_page_and_events(app: TestApp) {
    let c = counter(&app, "A").await;
    app.call(
        Method::POST,
        "/api/v1/device/sign-in",
        Some(&c.terminal),
        Some(json!({"employee_no": "CA"})),
    )
    .await;

    // the page lists the window with who is on duty
    let browser = app.page_client(&app.url, "admin", ADMIN_PASSWORD).await;
    let page = browser
        .get(format!("{}/monitor", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("1号窗口")
            && html.contains("王芳")
            && html.contains(&format!("sse-swap=\"window-{}\"", c.window)),
        "{html}"
    );

    // on PostgreSQL the browser watches a second instance; on SQLite the same one
    let second = if app.backend == Backend::Postgres {
        Some(app.another_instance().await)
    } else {
        None
    };
    let watch_url = second.as_ref().map_or(app.url.clone(), |r| r.url());
    let watcher = app.page_client(&watch_url, "admin", ADMIN_PASSWORD).await;
    let resp = watcher
        .get(format!("{watch_url}/monitor/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let mut buffer = String::new();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let name = format!("window-{}", c.window);
    let t = Instant::now();
    let s = start(&app, &c).await;
    next_event(&mut stream, &name, "data-state=\"serving\"", &mut buffer).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the change took {:?}",
        t.elapsed()
    );
    end(&app, &c, s).await;
    next_event(
        &mut stream,
        &name,
        "data-state=\"awaiting_rating\"",
        &mut buffer,
    )
    .await;
    let t = Instant::now();
    press(&app, &c, "very_satisfied", "live-1").await;
    let event = next_event(&mut stream, &name, "非常满意", &mut buffer).await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the rating took {:?}",
        t.elapsed()
    );
    assert!(event.contains("data-state=\"idle\""), "{event}");
    // today's figures: one service, rated positive
    for figure in ["services", "positive"] {
        assert!(
            event.contains(&format!("data-figure=\"{figure}\">1<")),
            "{event}"
        );
    }
    assert!(event.contains("data-figure=\"negative\">0<"), "{event}");

    // someone without monitor.view gets no stream; another branch's window sends him nothing
    let other = counter(&app, "B").await;
    let role = app
        .role(
            "A网点监控",
            &["monitor.view", "org.view"],
            "org_and_children",
        )
        .await;
    app.person("watcher_a", c.outlet, role).await;
    let narrow = app
        .page_client(&watch_url, "watcher_a", "person-pass-1")
        .await;
    let mut narrow_stream = narrow
        .get(format!("{watch_url}/monitor/events"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut narrow_buffer = String::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    start(&app, &other).await;
    start(&app, &c).await.to_string();
    let seen = next_event(&mut narrow_stream, &name, "serving", &mut narrow_buffer).await;
    assert!(!seen.contains("B网点"));
    assert!(
        !narrow_buffer.contains(&format!("window-{}", other.window)),
        "{narrow_buffer}"
    );
    if let Some(mut s) = second {
        s.stop().await;
    }
}
