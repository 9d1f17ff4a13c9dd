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

    pub async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
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
