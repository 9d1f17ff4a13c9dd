use keping_app::config::Config;
use keping_app::{prepare, start, Running};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use tokio::sync::OnceCell;

pub const ADMIN_PASSWORD: &str = "admin-pass-123";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub running: Running,
    pub backend: Backend,
    dir: Option<PathBuf>,
    pub config: Config,
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops the databases earlier runs left behind, once per test binary. Names carry their creation
/// time (see `unique`), so databases of test runs still going on beside this one are left alone.
async fn sweep_pg(admin_url: &str) {
    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            use sqlx::{Connection, Row};
            let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await else {
                return;
            };
            let hour_ago = chrono::Utc::now().timestamp_micros() - 3_600_000_000;
            let rows =
                sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'keping_t_%'")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_default();
            for r in rows {
                let name: String = r.get(0);
                let created = name.split('_').nth(3).and_then(|t| t.parse::<i64>().ok());
                if created.is_some_and(|t| t < hour_ago) {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            }
        })
        .await;
}

impl TestApp {
    /// A fresh server with its own database and a signed-in administrator; None when the backend is not configured.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let (database_url, dir) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("keping-test-{}", unique()));
                std::fs::create_dir_all(&dir).unwrap();
                (
                    format!("sqlite://{}", dir.join("keping.db").display()),
                    Some(dir),
                )
            }
            Backend::Postgres => {
                let admin_url = std::env::var("KEPING_TEST_PG_URL")
                    .ok()
                    .filter(|u| !u.is_empty())?;
                sweep_pg(&admin_url).await;
                use sqlx::Connection;
                let name = format!("keping_t_{}", unique());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("KEPING_TEST_PG_URL must reach PostgreSQL");
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b)
                    .to_string();
                (format!("{base}/{name}"), None)
            }
        };
        let config = Config {
            database_url: Some(database_url),
            bind: "127.0.0.1:0".into(),
            admin_password: Some(ADMIN_PASSWORD.into()),
            data_dir: dir.clone().unwrap_or_default(),
            log: "warn".into(),
            smtp_url: None,
            smtp_from: None,
            public_url: Some("https://kp.example.cn".into()),
        };
        let (state, _) = prepare(&config).await.expect("keping prepares");
        let running = start(state, &config).await.expect("keping starts");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let url = running.url();
        let mut app = TestApp {
            url,
            client,
            admin_token: String::new(),
            running,
            backend,
            dir,
            config,
        };
        app.admin_token = app.login("admin", ADMIN_PASSWORD).await;
        Some(app)
    }

    /// Stops the server and its workers and starts them again on the same database and port, as
    /// after a restart of the process. Sessions survive (they live in the database).
    pub async fn restart(&mut self) {
        let bind = self.running.addr.to_string();
        self.running.stop().await;
        let (state, _) = prepare(&self.config).await.expect("keping prepares");
        self.running = start(
            state,
            &Config {
                bind,
                ..self.config.clone()
            },
        )
        .await
        .expect("keping restarts on its port");
    }

    /// A second keping instance on the same database (as behind a load balancer).
    pub async fn another_instance(&self) -> Running {
        let (state, _) = prepare(&self.config).await.expect("keping prepares");
        start(
            state,
            &Config {
                bind: "127.0.0.1:0".into(),
                ..self.config.clone()
            },
        )
        .await
        .expect("a second instance starts")
    }

    /// A browser-like client signed in through the login page (session cookie) at `base`.
    pub async fn page_client(&self, base: &str, username: &str, password: &str) -> reqwest::Client {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client
            .post(format!("{base}/login"))
            .form(&[
                ("username", username),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "page login of {username} failed"
        );
        client
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login of {username} failed: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// One JSON request; answers the status and the parsed body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// The root org's id (the head office made on first start).
    pub async fn root_id(&self) -> i64 {
        let (_, body) = self.get("/api/v1/orgs?limit=1", &self.admin_token).await;
        body["items"][0]["id"].as_i64().unwrap()
    }

    /// Creates an org as admin and answers its id.
    pub async fn org(&self, name: &str, code: &str, parent_id: i64) -> i64 {
        let (status, body) = self
            .post(
                "/api/v1/orgs",
                &self.admin_token,
                json!({"name": name, "code": code, "parent_id": parent_id}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Creates a role as admin and answers its id.
    pub async fn role(&self, name: &str, permissions: &[&str], data_level: &str) -> i64 {
        let (status, body) = self
            .post(
                "/api/v1/roles",
                &self.admin_token,
                json!({"name": name, "permissions": permissions, "data_level": data_level}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Creates a person holding `role_id` at `org_id` and answers (id, token).
    pub async fn person(&self, username: &str, org_id: i64, role_id: i64) -> (i64, String) {
        let (status, body) = self
            .post(
                "/api/v1/users",
                &self.admin_token,
                json!({"username": username, "password": "person-pass-1", "name": username, "employee_no": format!("E-{username}"), "org_id": org_id, "roles": [{"role_id": role_id, "org_id": org_id}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_i64().unwrap(),
            self.login(username, "person-pass-1").await,
        )
    }

    /// Every item of a list, following `next_cursor`.
    pub async fn all(&self, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}cursor={c}"),
                None => path.to_string(),
            };
            let (status, body) = self.get(&url, token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            items.extend(body["items"].as_array().unwrap().iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Asserts the API's error body: status, code and (when given) field.
pub fn assert_error(
    got: &(StatusCode, Value),
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(got.0, status, "unexpected status; body {}", got.1);
    assert_eq!(
        got.1["error"]["code"], code,
        "unexpected code; body {}",
        got.1
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message: {}",
        got.1
    );
    if let Some(f) = field {
        assert_eq!(
            got.1["error"]["field"], f,
            "unexpected field; body {}",
            got.1
        );
    }
}

/// A page's HTML, fetched with a signed-in page client.
pub async fn html(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}
