//! Browser tests in headless Chromium through chromedriver. They run when KEPING_TEST_BROWSER=1
//! (CI sets it) and save screenshots under target/screenshots/.

use crate::{Backend, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub fn enabled() -> bool {
    std::env::var("KEPING_TEST_BROWSER").is_ok_and(|v| v == "1")
}

pub fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session of the given size.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (KEPING_TEST_BROWSER=1)");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--no-first-run", "--lang=zh-CN", format!("--window-size={width},{height}")],
                "prefs": {"intl.accept_languages": "zh-CN,zh"}
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_err = None;
        for _ in 0..50 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Browser { client, driver },
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        panic!("cannot start a browser session: {last_err:?}");
    }

    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(screenshots().join(name), png).unwrap();
    }

    /// The element's text; found again if a live update replaced it meanwhile.
    pub async fn text(&self, css: &str) -> String {
        for _ in 0..20 {
            let el = self
                .client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"));
            match el.text().await {
                Ok(t) => return t,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                {
                    continue
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
        panic!("{css} kept being replaced")
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let el = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    /// Scrolls the element to the middle of the screen first, as a person would before clicking.
    pub async fn click(&self, css: &str) {
        let el = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        // instant: Bootstrap makes scrolling smooth, and a click mid-animation lands elsewhere
        self.client
            .execute(
                "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});",
                vec![serde_json::to_value(&el).unwrap()],
            )
            .await
            .unwrap();
        el.click().await.unwrap_or_else(|e| panic!("{css}: {e}"));
    }

    /// Sizes the window so that the page itself gets `width` × `height` (a tablet's or a
    /// phone's screen), whatever the browser's own frame takes.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap();
        let got = |i: usize| inner[i].as_u64().unwrap() as u32;
        self.client
            .set_window_size(width * 2 - got(0), height * 2 - got(1))
            .await
            .unwrap();
    }

    /// Waits until the JavaScript expression is true in the page, failing after 20 s.
    pub async fn wait_until(&self, expression: &str) {
        let script = format!("return Boolean({expression});");
        for _ in 0..100 {
            if self.client.execute(&script, vec![]).await.unwrap() == serde_json::Value::Bool(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("still not true after 20 s: {expression}");
    }

    pub async fn login(&self, app: &TestApp, username: &str, password: &str) {
        self.client
            .goto(&format!("{}/login", app.url))
            .await
            .unwrap();
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("#login-submit").await;
        self.text("#user-menu").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_page_creates_a_node_and_switches_language() {
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let browser = Browser::start(1366, 900).await;
    browser
        .login(&app, "admin", crate::harness::ADMIN_PASSWORD)
        .await;

    // a head office child through the form on the org page
    browser
        .client
        .goto(&format!("{}/orgs", app.url))
        .await
        .unwrap();
    browser.fill("#c-name", "北京分行").await;
    browser.fill("#c-code", "BJ").await;
    browser.click("#org-add button").await;
    let notice = browser.text("#notice").await;
    assert!(!notice.is_empty());
    assert!(browser.text(".tree").await.contains("北京分行"));
    // the tree and the API agree
    let orgs = app.all("/api/v1/orgs", &app.admin_token).await;
    assert!(
        orgs.iter()
            .any(|o| o["name"] == "北京分行" && o["code"] == "BJ"),
        "{orgs:?}"
    );
    assert!(browser.text("#sidebar").await.contains("机构设置"));
    browser.shot("orgs.zh.png").await;

    // a duplicate code is refused on the page, in Chinese, with nothing written
    browser.fill("#c-name", "重复的分行").await;
    browser.fill("#c-code", "BJ").await;
    browser.click("#org-add button").await;
    let error = browser.text("#child-error").await;
    assert!(error.contains("编码"), "{error}");
    assert_eq!(app.all("/api/v1/orgs", &app.admin_token).await.len(), 2);

    // the language switch, remembered on the account
    browser.click("#switch-lang").await;
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//a[contains(., 'Orgs')]"))
        .await
        .unwrap();
    assert!(browser.text("#sidebar").await.contains("Orgs"));
    browser.shot("orgs.en.png").await;
    browser.client.goto(&format!("{}/", app.url)).await.unwrap();
    assert!(browser.text("#sidebar").await.contains("Home"));
    let (_, me) = app.get("/api/v1/me", &app.admin_token).await;
    assert_eq!(me["user"]["locale"], "en");

    // and on a phone
    browser.client.set_window_size(390, 844).await.unwrap();
    browser
        .client
        .goto(&format!("{}/orgs", app.url))
        .await
        .unwrap();
    browser.text(".tree").await;
    browser.shot("orgs.en.phone.png").await;
    browser.client.clone().close().await.unwrap();
}

impl Browser {
    /// Waits until the element is shown (after a collapse opens, say), so it can be typed into.
    pub async fn visible(&self, css: &str) {
        for _ in 0..50 {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if el.is_displayed().await.unwrap_or(false) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never became visible");
    }

    /// The current value of a form field (what the page's script or the person put there).
    pub async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css} = {value}: {e}"));
    }

    /// Clicks a button that sends its form, and waits for the answer to replace the page (else
    /// the next look could still find the old page's elements).
    pub async fn submit(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(css).await;
        self.replaced(old, css).await;
    }

    /// Like `submit`, for a form that asks "are you sure?" first: says yes.
    pub async fn submit_confirmed(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(css).await;
        let mut asked = false;
        for _ in 0..50 {
            if self.client.accept_alert().await.is_ok() {
                asked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(asked, "{css} asked for no confirmation");
        self.replaced(old, css).await;
    }

    async fn replaced(&self, old: fantoccini::elements::Element, css: &str) {
        for _ in 0..100 {
            if old.tag_name().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} did not lead to a new page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_pages_manage_windows_terminals_settings_and_follow_ups() {
    use crate::api_evaluation::{counter, end, start};
    use reqwest::{Method, StatusCode};
    use serde_json::json;

    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    // an outlet with a window whose clerk got a 不满意, and a business type for every outlet
    let c = counter(&app, "CD").await;
    app.call(
        Method::POST,
        "/api/v1/device/sign-in",
        Some(&c.terminal),
        Some(json!({"employee_no": "CCD"})),
    )
    .await;
    for (idem, reason) in [("neg-1", "服务效率"), ("neg-2", "服务礼仪")] {
        let s = start(&app, &c).await;
        end(&app, &c, s).await;
        let (status, _) = app.call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "dissatisfied", "idempotency_key": idem, "pressed_at": chrono::Utc::now().to_rfc3339(), "phone": "13800135678", "negative_reason": reason}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let root = app.root_id().await;
    let (status, _) = app
        .post(
            "/api/v1/business-types",
            &app.admin_token,
            json!({"org_id": root, "name": "个人业务", "code": "RETAIL"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let browser = Browser::start(1366, 900).await;
    browser
        .login(&app, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let go = |path: String| {
        let client = browser.client.clone();
        async move { client.goto(&path).await.unwrap() }
    };

    // 窗口管理: add a window through the form
    go(format!("{}/windows", app.url)).await;
    assert!(browser.text("#sidebar").await.contains("窗口管理"));
    browser.click("#window-new-toggle").await;
    browser.visible("#n-name").await;
    browser.select("#n-org", &c.outlet.to_string()).await;
    browser.fill("#n-name", "2号窗口").await;
    browser.fill("#n-code", "W2").await;
    browser.submit("#window-create").await;
    assert!(!browser.text("#notice").await.is_empty());
    assert!(browser.text("#window-name").await.contains("2号窗口"));
    let windows = app.all("/api/v1/windows", &app.admin_token).await;
    let window = windows.iter().find(|w| w["code"] == "W2").unwrap();
    let window_id = window["id"].as_i64().unwrap();
    assert_eq!(window["org_id"], c.outlet);

    // its business type, chosen from the head office's
    let (_, types) = app.get("/api/v1/business-types", &app.admin_token).await;
    let retail = types["items"][0]["id"].to_string();
    browser.select("#e-bt", &retail).await;
    browser.submit("#window-save").await;
    assert!(browser.text("#window-name").await.contains("2号窗口"));
    let (_, saved) = app
        .get(&format!("/api/v1/windows/{window_id}"), &app.admin_token)
        .await;
    assert_eq!(saved["business_type_name"], "个人业务");

    // a kiosk: its token and setup address are shown once, and the token works
    browser.select("#t-kind", "kiosk").await;
    browser.fill("#t-name", "大堂平板").await;
    browser.submit("#terminal-register").await;
    browser.text("#new-token").await;
    let token = browser.value("#token").await;
    assert!(token.starts_with("kpd"), "{token}");
    let setup = browser.value("#setup-url").await;
    assert_eq!(setup, format!("{}/kiosk#{token}", app.url));
    let (status, _) = app
        .call(Method::POST, "/api/v1/device/sign-out", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    browser.shot("window.zh.png").await;
    go(format!("{}/windows/{window_id}", app.url)).await;
    assert!(browser.text("#terminals-table").await.contains("大堂平板"));
    assert!(!browser.client.source().await.unwrap().contains(&token));

    go(format!("{}/business-types", app.url)).await;
    // a manager sees each name in its rename field
    assert_eq!(
        browser
            .value("#business-types-table input[name=name]")
            .await,
        "个人业务"
    );
    browser.shot("business_types.zh.png").await;
    go(format!("{}/windows", app.url)).await;
    let table = browser.text("#windows-table").await;
    assert!(
        table.contains("2号窗口") && table.contains("个人业务"),
        "{table}"
    );
    browser.shot("windows.zh.png").await;

    // 评价设置: a refused save shows the error beside the row; a good one is kept
    go(format!(
        "{}/evaluation-settings?org_id={}",
        app.url, c.outlet
    ))
    .await;
    assert!(browser.text("#settings-source").await.contains("默认"));
    let row =
        |n: usize, field: &str| format!("#options [data-option-row]:nth-child({n}) [name={field}]");
    browser.fill(&row(1, "key"), "satisfied").await;
    browser.submit("#settings-save").await;
    let error = browser
        .text("#options [data-option-row]:nth-child(2) [data-row-error]")
        .await;
    assert!(error.contains("选项代码"), "{error}");
    browser.shot("settings.error.zh.png").await;
    browser.fill(&row(1, "key"), "very_satisfied").await;
    browser.fill(&row(2, "label"), "比较满意").await;
    browser.submit("#settings-save").await;
    assert!(!browser.text("#notice").await.is_empty());
    assert!(browser
        .text("#settings-source")
        .await
        .contains("自己的设置"));
    assert_eq!(browser.value(&row(2, "label")).await, "比较满意");
    let (_, settings) = app
        .get(
            &format!("/api/v1/orgs/{}/evaluation-settings", c.outlet),
            &app.admin_token,
        )
        .await;
    assert_eq!(settings["options"][1]["label"], "比较满意");
    assert_eq!(settings["options"][0]["key"], "very_satisfied");
    browser.shot("settings.zh.png").await;

    // 待跟进: the 不满意 is waiting; handling it needs a note and a yes
    go(format!("{}/follow-ups", app.url)).await;
    let table = browser.text("#follow-ups-table").await;
    assert!(
        table.contains("不满意") && table.contains("服务效率") && table.contains("13800135678"),
        "{table}"
    );
    browser.shot("follow_ups.zh.png").await;
    let (_, items) = app.get("/api/v1/follow-ups", &app.admin_token).await;
    let item = items["items"][0]["id"].as_i64().unwrap();
    browser.click(&format!("#handle-{item}")).await;
    browser.visible(&format!("#note-{item}")).await;
    browser
        .fill(&format!("#note-{item}"), "已致电客户致歉")
        .await;
    browser.shot("follow_ups.handle.zh.png").await;
    browser
        .submit_confirmed(&format!("#close-submit-{item}"))
        .await;
    assert!(!browser.text("#notice").await.is_empty());
    assert!(!browser.text("#follow-ups-table").await.contains("服务礼仪"));
    go(format!("{}/follow-ups?status=closed", app.url)).await;
    let closed = browser.text("#follow-ups-table").await;
    assert!(
        closed.contains("已致电客户致歉") && closed.contains("服务礼仪"),
        "{closed}"
    );

    // on a phone
    browser.client.set_window_size(390, 844).await.unwrap();
    go(format!("{}/follow-ups", app.url)).await;
    browser.text("#follow-ups-table").await;
    browser.shot("follow_ups.zh.phone.png").await;
    go(format!("{}/windows", app.url)).await;
    browser.text("#windows-table").await;
    browser.shot("windows.zh.phone.png").await;
    go(format!("{}/windows/{window_id}", app.url)).await;
    browser.text("#terminals-table").await;
    browser.shot("window.zh.phone.png").await;
    go(format!(
        "{}/evaluation-settings?org_id={}",
        app.url, c.outlet
    ))
    .await;
    browser.text("#options").await;
    browser.shot("settings.zh.phone.png").await;

    // and in English
    browser.client.set_window_size(1366, 900).await.unwrap();
    go(format!("{}/windows", app.url)).await;
    browser.click("#switch-lang").await;
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//a[contains(., 'Windows')]"))
        .await
        .unwrap();
    assert!(browser
        .text("#sidebar")
        .await
        .contains("Service evaluation"));
    browser.text("#windows-table").await;
    browser.shot("windows.en.png").await;
    go(format!(
        "{}/evaluation-settings?org_id={}",
        app.url, c.outlet
    ))
    .await;
    browser.text("#options").await;
    browser.shot("settings.en.png").await;
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_monitor_changes_without_reloading() {
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let c = crate::api_evaluation::counter(&app, "A").await;
    let browser = Browser::start(1366, 900).await;
    browser
        .login(&app, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    browser
        .client
        .goto(&format!("{}/monitor", app.url))
        .await
        .unwrap();
    let card = format!("#window-{}", c.window);
    // the keypad has never been heard from: offline
    assert!(browser.text(&card).await.contains("离线"));
    // the page stays loaded while the counter works; the card follows each step
    let wait_state = |state: &'static str| {
        let css = format!("{card} [data-state=\"{state}\"]");
        let client = browser.client.clone();
        async move {
            if let Err(e) = client
                .wait()
                .at_most(Duration::from_secs(5))
                .for_element(Locator::Css(&css))
                .await
            {
                let page = client.source().await.unwrap_or_default();
                let grid = page.split("monitor-grid").nth(1).unwrap_or(&page);
                panic!(
                    "{css}: {e}; the grid shows {}",
                    grid.replace(char::is_whitespace, " ")
                        .chars()
                        .take(1500)
                        .collect::<String>()
                );
            }
        }
    };
    app.call(
        reqwest::Method::POST,
        "/api/v1/device/sign-in",
        Some(&c.terminal),
        Some(serde_json::json!({"employee_no": "CA"})),
    )
    .await;
    wait_state("idle").await;
    assert!(browser.text(&card).await.contains("王芳"));
    let s = crate::api_evaluation::start(&app, &c).await;
    wait_state("serving").await;
    browser.shot("monitor.zh.png").await;
    crate::api_evaluation::end(&app, &c, s).await;
    wait_state("awaiting_rating").await;
    let pressed = crate::api_evaluation::press(&app, &c, "very_satisfied", "m-1").await;
    assert_eq!(pressed.1["counted"], true, "{pressed:?}");
    wait_state("idle").await;
    assert!(browser.text(&card).await.contains("非常满意"));
    // the same page in English, and on a phone
    browser.click("#switch-lang").await;
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//a[contains(., 'Live monitor')]"))
        .await
        .unwrap();
    assert!(browser.text(&card).await.contains("Idle"));
    browser.shot("monitor.en.png").await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.client.refresh().await.unwrap();
    browser.text(&card).await;
    browser.shot("monitor.en.phone.png").await;
    browser.client.clone().close().await.unwrap();
}

/// The statistics page with its charts, in Chinese and in English: every chart's canvas is there
/// and has something drawn on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_draws_its_charts_in_both_languages() {
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let a = crate::api_evaluation::counter(&app, "SA").await;
    let b = crate::api_evaluation::counter(&app, "SB").await;
    let db = &app.running.state.db;
    // 6 April – 20 May 2026, Shanghai: services every working hour at two outlets, most rated
    let keys = [
        ("very_satisfied", "非常满意", "positive"),
        ("satisfied", "满意", "positive"),
        ("neutral", "一般", "neutral"),
        ("dissatisfied", "不满意", "negative"),
    ];
    let base = chrono::DateTime::parse_from_rfc3339("2026-05-01T00:00:00+08:00")
        .unwrap()
        .timestamp_millis();
    let mut id = 10_000i64;
    for day in -25..20i64 {
        for hour in 9..18i64 {
            for (n, c) in [&a, &b].iter().enumerate() {
                let count = 1 + (day + 30 + hour + n as i64 * 2) % 3;
                for k in 0..count {
                    id += 1;
                    let start = base + day * 86_400_000 + hour * 3_600_000 + k * 600_000;
                    let end = start + 60_000 + (id % 7) * 30_000;
                    sqlx::query("INSERT INTO services (id, window_id, org_id, staff_id, started_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(id).bind(c.window).bind(c.outlet).bind(c.staff_id).bind(start).bind(end)
                        .execute(&db.pool).await.unwrap();
                    if id % 5 != 0 {
                        let (key, label, polarity) = keys[(id % 4) as usize];
                        sqlx::query("INSERT INTO ratings (press_id, service_id, window_id, org_id, staff_id, key, label, polarity, rated_at) VALUES (0, $1, $2, $3, $4, $5, $6, $7, $8)")
                            .bind(id).bind(c.window).bind(c.outlet).bind(c.staff_id).bind(key).bind(label).bind(polarity).bind(end + 2_000)
                            .execute(&db.pool).await.unwrap();
                    }
                }
            }
            sqlx::query("INSERT INTO duties (window_id, staff_id, started_at, ended_at, end_reason) VALUES ($1, $2, $3, $4, 'signed_out')")
                .bind(a.window).bind(a.staff_id)
                .bind(base + day * 86_400_000 + hour * 3_600_000)
                .bind(base + day * 86_400_000 + (hour + 1) * 3_600_000)
                .execute(&db.pool).await.unwrap();
        }
    }
    keping_store::stats::rebuild(db, false).await.unwrap();
    let root = app.root_id().await;

    let browser = Browser::start(1366, 900).await;
    browser
        .login(&app, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let url = format!(
        "{}/stats?org_id={root}&period=custom&from=2026-05-01&to=2026-05-31&group_by=outlet",
        app.url
    );
    let drawn = |id: &str| {
        format!(
            "(() => {{ const c = document.querySelector('#{id} canvas'); if (!c || !c.width) return false; \
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
             for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; }})()"
        )
    };
    for (lang, name) in [("zh", "统计"), ("en", "statistics")] {
        browser.client.goto(&url).await.unwrap();
        for id in [
            "chart-trend",
            "chart-options",
            "chart-heat",
            "chart-outlets",
        ] {
            browser.wait_until(&drawn(id)).await;
        }
        let table = browser.text("#stats-table").await;
        assert!(
            table.contains("SA网点") && table.contains("SB网点"),
            "{table}"
        );
        let heading = browser.text("h1").await;
        assert!(heading.to_lowercase().contains(name), "{lang}: {heading}");
        browser
            .client
            .execute("window.scrollTo(0, 0);", vec![])
            .await
            .unwrap();
        browser.shot(&format!("stats.{lang}.png")).await;
        browser
            .client
            .execute(
                "document.getElementById('chart-heat').scrollIntoView({block: 'start', behavior: 'instant'});",
                vec![],
            )
            .await
            .unwrap();
        browser.shot(&format!("stats.{lang}.charts.png")).await;
        if lang == "zh" {
            browser.click("#switch-lang").await;
            browser
                .client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::XPath("//a[contains(., 'Evaluation statistics')]"))
                .await
                .unwrap();
        }
    }
    browser.client.clone().close().await.unwrap();
}

/// The grade card (grade, breakdown, lifecycle category, stars, history chart) in Chinese and in
/// English, the grade distribution chart of a run, and the grade column of the customer list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grade_card_and_distribution_in_both_languages() {
    use serde_json::json;
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let admin = &app.admin_token;
    let (_, models) = app.get("/api/v1/scoring-models", admin).await;
    let composite = models["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["template"] == "composite")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut ids = Vec::new();
    for (i, name) in ["重庆涪柴示例客户", "北碚经销部", "江津五金店"]
        .iter()
        .enumerate()
    {
        let (status, c) = app
            .post("/api/v1/customers", admin, json!({"name": name}))
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{c}");
        let id = c["id"].as_i64().unwrap();
        ids.push(id);
        for (period, amount) in [
            ("2027-02", 1_500_000 - i * 500_000),
            ("2027-03", 2_000_000 - i * 600_000),
        ] {
            let (status, body) = app
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/customers/{id}/scoring-inputs/{period}"),
                    Some(admin),
                    Some(json!({"values": {"sales_amount": amount, "sales_growth_yoy": 25, "collection_rate": 96, "return_rate": 2, "manager": 80, "order_batches": 6, "contribution_points": 420}})),
                )
                .await;
            assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        }
    }
    let (status, body) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/customers/{}/star-override", ids[0]),
            Some(admin),
            Some(json!({"level": 3, "until": "2027-12-31"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let mut run_id = 0;
    for period in ["2027-02", "2027-03"] {
        let (status, run) = app
            .post(
                "/api/v1/scoring-runs",
                admin,
                json!({"model_id": composite, "period": period}),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{run}");
        run_id = run["id"].as_i64().unwrap();
    }

    let browser = Browser::start(1366, 900).await;
    browser
        .login(&app, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let card = format!("{}/customers/{}/grades", app.url, ids[0]);
    browser.client.goto(&card).await.unwrap();
    // 2,000,000 over 100,000–2,100,000 is 95 → 28.5; growth 30; 96% → 60 → 12; 2% → 75 → 7.5;
    // 80 → 8: 86, at least 85 → A
    assert_eq!(browser.text("#grade-letter").await, "A");
    assert!(
        browser.text("#grade-score").await.starts_with("86"),
        "{}",
        browser.text("#grade-score").await
    );
    let standing = browser.text("#grade-standing").await;
    assert!(
        standing.contains("正常客户") && standing.contains("星级 ★★★"),
        "{standing}"
    );
    assert!(browser.text("#grade-breakdown").await.contains("回款率"));
    browser
        .wait_until("document.querySelector('#grade-history canvas')")
        .await;
    browser.shot("grade_card.zh.png").await;

    browser.click("#switch-lang").await;
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@id='grade-standing'][contains(., 'Normal')]",
        ))
        .await
        .unwrap();
    assert!(browser.text("#grade-standing").await.contains("Stars ★★★"));
    browser
        .wait_until("document.querySelector('#grade-history canvas')")
        .await;
    browser.shot("grade_card.en.png").await;

    browser
        .client
        .goto(&format!("{}/grading/runs/{run_id}", app.url))
        .await
        .unwrap();
    browser
        .wait_until("document.querySelector('#grade-distribution canvas')")
        .await;
    browser.shot("grading_run.en.png").await;

    browser
        .client
        .goto(&format!("{}/customers", app.url))
        .await
        .unwrap();
    let table = browser.text("#customers-table").await;
    assert!(table.contains("Grade"), "{table}");
    browser.shot("customers_grades.en.png").await;

    // the grading rules: seen in English, changed in Chinese, then given back to the defaults
    browser
        .client
        .goto(&format!("{}/grading/settings", app.url))
        .await
        .unwrap();
    assert!(browser.text("#settings-source").await.contains("Built-in"));
    browser.shot("grading_settings.en.png").await;
    browser.click("#switch-lang").await;
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//h1[contains(., '分级规则')]"))
        .await
        .unwrap();
    browser.fill("#star3", "900").await;
    browser.submit("#settings-save").await;
    assert!(browser.text("#notice").await.contains("分级规则已保存"));
    assert_eq!(browser.value("#star3").await, "900");
    assert!(browser
        .text("#settings-source")
        .await
        .contains("本机构自己的规则"));
    browser.shot("grading_settings.zh.png").await;
    browser.submit_confirmed("#settings-inherit").await;
    assert_eq!(browser.value("#star3").await, "1000");
    browser
        .client
        .goto(&format!("{}/grading/schedules", app.url))
        .await
        .unwrap();
    browser.visible("#schedules-empty").await;
    browser.shot("grading_schedules.zh.png").await;

    // an attachment uploaded from the customer's card
    let contract = std::env::temp_dir().join(format!("合同-{}.pdf", std::process::id()));
    std::fs::write(&contract, b"%PDF-1.4 contract").unwrap();
    browser
        .client
        .goto(&format!("{}/customers/{}", app.url, ids[0]))
        .await
        .unwrap();
    browser.visible("#attachments-empty").await;
    browser
        .client
        .find(Locator::Css("#attachment-form input[type=file]"))
        .await
        .unwrap()
        .send_keys(contract.to_str().unwrap())
        .await
        .unwrap();
    browser.submit("#attachment-upload").await;
    std::fs::remove_file(&contract).unwrap();
    assert!(browser.text("#notice").await.contains("附件已上传"));
    let listed = browser.text("#customer-attachments").await;
    assert!(
        listed.contains("合同-") && listed.contains("17 B"),
        "{listed}"
    );
    browser.click("#attachments").await;
    browser.shot("customer_attachments.zh.png").await;
    browser.client.clone().close().await.unwrap();
}

/// Through the import page: a csv with Chinese names is imported (the page follows it with a
/// progress bar), and the customer list then finds a customer by the pinyin initials of the
/// name; once in Chinese and once in English, with screenshots of each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_page_then_pinyin_search_in_both_languages() {
    if !enabled() {
        eprintln!("skipped: set KEPING_TEST_BROWSER=1 with chromium and chromedriver installed");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let browser = Browser::start(1366, 900).await;
    browser
        .login(&app, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    // (language, the customer to find, its initials, a customer they must not find, filler rows)
    let runs = [
        ("zh", "张三丰", "zsf", "李四", 0),
        ("en", "欧阳修远", "oyxy", "王五", 1500),
    ];
    for (lang, name, initials, other, filler) in runs {
        let mut csv = format!("客户名称,联系人,手机\n{name},{name},13912345{lang_no}\n{other},{other},13987654{lang_no}\n",
            lang_no = if lang == "zh" { "001" } else { "002" });
        for i in 0..filler {
            csv.push_str(&format!("批量客户{i},联系人{i},137{i:08}\n"));
        }
        let file = dir.path().join(format!("customers-{lang}.csv"));
        std::fs::write(&file, csv).unwrap();
        browser
            .client
            .goto(&format!("{}/customers/import", app.url))
            .await
            .unwrap();
        let file_input = browser.client.find(Locator::Css("#i-file")).await.unwrap();
        file_input.send_keys(file.to_str().unwrap()).await.unwrap();
        // the form offers a dry run first; this one imports
        browser.click("#i-dry").await;
        browser
            .shot(&format!("customer_import.{lang}.form.png"))
            .await;
        browser.click("#import-submit").await;
        if filler > 0 {
            // a picture of the bar while the server works (the import may also end first)
            for _ in 0..30 {
                let running = browser
                    .client
                    .execute("return !document.getElementById('import-result') && document.getElementById('import-bar').style.width !== '0%';", vec![])
                    .await
                    .unwrap();
                if running == serde_json::Value::Bool(true) {
                    browser
                        .shot(&format!("customer_import.{lang}.progress.png"))
                        .await;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // a debug build on a busy machine may take a while over the larger file
        browser
            .client
            .wait()
            .at_most(Duration::from_secs(90))
            .for_element(Locator::Css("#import-result"))
            .await
            .unwrap();
        assert_eq!(
            browser.text("#import-created").await,
            (2 + filler).to_string()
        );
        assert_eq!(browser.text("#import-rejected").await, "0");
        if filler > 0 {
            // the page followed the import while it ran
            browser
                .wait_until("performance.getEntriesByType('resource').some((e) => e.name.includes('/customers/import/progress/'))")
                .await;
        }
        browser
            .shot(&format!("customer_import.{lang}.result.png"))
            .await;

        browser
            .client
            .goto(&format!("{}/customers", app.url))
            .await
            .unwrap();
        browser.fill("#f-q", initials).await;
        browser
            .wait_until(&format!(
                "location.search.includes('q={initials}') && document.querySelector('#customers-table') && document.querySelector('#customers-table').innerText.includes('{name}')"
            ))
            .await;
        let table = browser.text("#customers-table").await;
        assert!(!table.contains(other), "{initials} found {other}: {table}");
        browser.shot(&format!("customer_search.{lang}.png")).await;
        if lang == "zh" {
            browser.click("#switch-lang").await;
            browser
                .client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::XPath("//a[contains(., 'Customers')]"))
                .await
                .unwrap();
        }
    }
    browser.client.clone().close().await.unwrap();
}
