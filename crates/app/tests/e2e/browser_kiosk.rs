//! The customer's pages in a real browser: the kiosk on a tablet (online, offline, the reasons
//! screen on a phone) and the QR page with the manager's printable card. Screenshots go to
//! target/screenshots/.

use crate::api_device_state::{sign_in, terminal};
use crate::api_evaluation::{counter, end, start, Counter};
use crate::browser::{enabled, Browser};
use crate::{Backend, TestApp};
use serde_json::Value;
use std::time::Duration;

/// Waits until the window has `n` counted ratings and answers them, newest first.
async fn ratings_reach(app: &TestApp, window: i64, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let all = app
            .all(
                &format!("/api/v1/ratings?window_id={window}"),
                &app.admin_token,
            )
            .await;
        if all.len() >= n {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("window {window} never reached {n} ratings");
}

async fn rating_count(app: &TestApp, window: i64) -> usize {
    app.all(
        &format!("/api/v1/ratings?window_id={window}"),
        &app.admin_token,
    )
    .await
    .len()
}

/// A clerk on duty at a window with a keypad, and a kiosk for the customer; the browser shows it.
async fn kiosk_at_counter(width: u32, height: u32) -> (TestApp, Counter, String, Browser) {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let c = counter(&app, "A").await;
    let kiosk = terminal(&app, c.window, "kiosk").await;
    sign_in(&app, &c.terminal, "CA").await;
    let browser = Browser::start(width, height).await;
    browser.set_viewport(width, height).await;
    browser
        .client
        .goto(&format!("{}/kiosk#{kiosk}", app.url))
        .await
        .unwrap();
    browser
        .wait_until("document.getElementById('k-staff-name').textContent === '王芳'")
        .await;
    (app, c, kiosk, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_rates_a_service() {
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let (app, c, kiosk, browser) = kiosk_at_counter(1280, 800).await;
    // the token moved from the address into the tablet's storage
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), None, "{url}");
    let stored = browser
        .client
        .execute("return localStorage.getItem('keping.kiosk.token');", vec![])
        .await
        .unwrap();
    assert_eq!(stored, Value::String(kiosk));
    assert_eq!(browser.text("#k-employee-no").await, "CA");
    assert_eq!(browser.text("#k-window").await, "1号窗口");
    assert!(browser.text("#k-greeting").await.contains("欢迎光临"));

    // End opens the prompt; the page notices within a poll and asks
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    browser
        .wait_until("document.body.classList.contains('prompting')")
        .await;
    assert_eq!(
        browser.text("#k-prompt").await,
        "您好，请对我的服务进行评价"
    );
    browser.shot("kiosk.zh.png").await;

    browser.click("button[data-key='very_satisfied']").await;
    browser
        .wait_until("!document.getElementById('screen-thanks').hidden")
        .await;
    assert_eq!(browser.text("#k-thanks").await, "谢谢您的评价！");
    browser.shot("kiosk.thanks.zh.png").await;
    let rated = ratings_reach(&app, c.window, 1).await;
    assert_eq!(rated[0]["service_id"], s);
    assert_eq!(rated[0]["key"], "very_satisfied");
    assert_eq!(rated[0]["staff_id"], c.staff_id);
    browser
        .wait_until("document.getElementById('queue-count').textContent === '0'")
        .await;
    // the thank-you screen gives way to the next customer by itself
    browser
        .wait_until("!document.getElementById('screen-main').hidden")
        .await;

    // English on request, with the options' English labels
    browser
        .client
        .goto(&format!("{}/kiosk?lang=en", app.url))
        .await
        .unwrap();
    browser
        .wait_until("document.getElementById('k-staff-name').textContent === '王芳'")
        .await;
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    browser
        .wait_until("document.body.classList.contains('prompting')")
        .await;
    assert_eq!(
        browser.text("#k-prompt").await,
        "Hello, please rate my service"
    );
    assert!(browser
        .text("button[data-key='very_satisfied']")
        .await
        .contains("Very satisfied"));
    browser.shot("kiosk.en.png").await;

    // on a phone: a negative rating with a reason and a phone number
    browser.set_viewport(390, 844).await;
    browser
        .client
        .goto(&format!("{}/kiosk", app.url))
        .await
        .unwrap();
    browser
        .wait_until("document.body.classList.contains('prompting')")
        .await;
    browser.shot("kiosk.zh.phone.png").await;
    browser.click("button[data-key='dissatisfied']").await;
    browser
        .wait_until("!document.getElementById('screen-reasons').hidden")
        .await;
    browser.click("#k-reasons .kiosk-reason:nth-child(2)").await;
    browser.fill("#k-phone", "13800135678").await;
    browser.shot("kiosk.reasons.zh.phone.png").await;
    browser.click("#k-submit").await;
    browser
        .wait_until("!document.getElementById('screen-thanks').hidden")
        .await;
    browser.shot("kiosk.thanks.zh.phone.png").await;
    let rated = ratings_reach(&app, c.window, 2).await;
    assert_eq!(rated[0]["service_id"], s);
    assert_eq!(rated[0]["polarity"], "negative");
    assert_eq!(rated[0]["negative_reason"], "服务效率");
    assert_eq!(rated[0]["phone"], "13800135678");

    // a tablet without a token says how to set it up
    browser
        .client
        .execute("localStorage.clear(); location.reload();", vec![])
        .await
        .unwrap();
    browser
        .wait_until("!document.getElementById('screen-setup').hidden")
        .await;
    browser.shot("kiosk.setup.zh.phone.png").await;
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_rates_offline_then_syncs() {
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let (app, c, _, browser) = kiosk_at_counter(1280, 800).await;
    // the page's test hook: every request fails as if the network were down
    browser
        .client
        .execute("window.__kepingOffline = true;", vec![])
        .await
        .unwrap();
    browser
        .wait_until("document.getElementById('k-status').classList.contains('offline')")
        .await;
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    // the page cannot know of the prompt, but a press is taken all the same and thanked at once
    browser.click("button[data-key='satisfied']").await;
    browser
        .wait_until("!document.getElementById('screen-thanks').hidden")
        .await;
    browser
        .wait_until("document.getElementById('queue-count').textContent === '1' && !document.getElementById('k-queue').hidden")
        .await;
    browser.shot("kiosk.offline.zh.png").await;
    // longer than the retry interval: still nothing on the server
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(rating_count(&app, c.window).await, 0);
    assert_eq!(browser.text("#queue-count").await, "1");

    // back online: the queued press arrives, and counts for the prompt it was pressed in
    browser
        .client
        .execute("window.__kepingOffline = false;", vec![])
        .await
        .unwrap();
    let rated = ratings_reach(&app, c.window, 1).await;
    assert_eq!(rated[0]["service_id"], s);
    assert_eq!(rated[0]["key"], "satisfied");
    browser
        .wait_until("document.getElementById('k-queue').hidden && !document.getElementById('k-status').classList.contains('offline')")
        .await;
    // sent once: nothing more arrives later
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rating_count(&app, c.window).await, 1);
    let (presses,): (i64,) =
        keping_store::Sql::new("SELECT COUNT(*) FROM presses WHERE window_id = ")
            .arg(c.window)
            .fetch_one(&app.running.state.db.pool)
            .await
            .unwrap();
    assert_eq!(presses, 1);
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_card_and_qr_page_on_a_phone() {
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let c = counter(&app, "A").await;
    sign_in(&app, &c.terminal, "CA").await;
    let browser = Browser::start(1280, 800).await;
    browser.set_viewport(1280, 800).await;
    browser
        .login(&app, "admin", crate::harness::ADMIN_PASSWORD)
        .await;

    // the manager makes and prints the window's code
    browser
        .client
        .goto(&format!("{}/windows/{}/qr", app.url, c.window))
        .await
        .unwrap();
    browser.shot("qr.rotate.zh.png").await;
    browser.click("#qr-rotate").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_until("document.querySelector('#qr-image svg') !== null")
        .await;
    let url = browser.text("#qr-url").await;
    assert!(url.starts_with(&format!("{}/r/kpd_", app.url)), "{url}");
    browser.shot("qr.card.zh.png").await;

    // a customer scans it after the service ended
    let s = start(&app, &c).await;
    end(&app, &c, s).await;
    browser.set_viewport(390, 844).await;
    browser.client.goto(&url).await.unwrap();
    assert!(browser.text("#qr-staff").await.contains("王芳"));
    browser.shot("qr.zh.png").await;
    browser.click("button[data-key='satisfied']").await;
    assert_eq!(browser.text("#qr-outcome h1").await, "谢谢您的评价！");
    browser.shot("qr.thanks.zh.png").await;
    let rated = ratings_reach(&app, c.window, 1).await;
    assert_eq!(rated[0]["service_id"], s);

    // English on request
    browser
        .client
        .goto(&format!("{url}?lang=en"))
        .await
        .unwrap();
    assert!(browser
        .text("button[data-key='satisfied']")
        .await
        .contains("Satisfied"));
    browser.shot("qr.en.png").await;

    // a new code: the printed one stops working
    browser.set_viewport(1280, 800).await;
    browser
        .client
        .goto(&format!("{}/windows/{}/qr", app.url, c.window))
        .await
        .unwrap();
    browser.click("#qr-rotate").await;
    browser.client.accept_alert().await.unwrap();
    let newer = browser.text("#qr-url").await;
    assert_ne!(newer, url);
    let old = app.client.get(&url).send().await.unwrap();
    assert_eq!(old.status(), reqwest::StatusCode::NOT_FOUND);
    browser.client.clone().close().await.unwrap();
}
