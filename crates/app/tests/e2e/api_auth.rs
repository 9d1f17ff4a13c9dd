//! Health, OpenAPI, login, tokens, malformed and oversize bodies.

use crate::harness::{assert_error, ADMIN_PASSWORD};
use crate::{both, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

both!(
    health_and_openapi,
    login_and_bearer_tokens,
    malformed_bodies,
    lockout_after_repeated_failures,
    disabled_and_expired,
    changed_roles_and_places_apply_at_once
);

async fn health_and_openapi(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(
        body["database"],
        if app.backend == crate::Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert!(body["version"].as_str().is_some());

    let (status, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/orgs",
        "/api/v1/orgs/{id}",
        "/api/v1/orgs/{id}/move",
        "/api/v1/permissions",
        "/api/v1/roles",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/tokens",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
    assert!(
        paths.keys().all(|p| p.starts_with("/api/v1/")),
        "only /api/v1 paths are documented"
    );

    // metrics count the requests above
    let metrics = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    // every answer carries a request id
    let resp = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("x-request-id").is_some());
}

async fn login_and_bearer_tokens(app: TestApp) {
    // wrong pair and unknown user look the same
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "nope-nope"})),
        )
        .await;
    assert_error(
        &wrong,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        None,
    );
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ghost", "password": "nope-nope"})),
        )
        .await;
    assert_eq!(unknown, wrong);

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ADMIN", "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["username"], "admin");
    assert!(body["user"]["id"].as_i64().is_some() && body["user"]["name"].as_str().is_some());
    let token = body["token"].as_str().unwrap().to_string();

    // no token, a garbage token, a wrong scheme
    assert_error(
        &app.call(Method::GET, "/api/v1/orgs", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    assert_error(
        &app.get("/api/v1/orgs", "kps_garbage").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    let basic = app
        .client
        .get(format!("{}/api/v1/orgs", app.url))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    let (status, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "org.manage"));
    assert!(me["user"].get("password_hash").is_none());

    // a personal token works until revoked; its secret is shown once and never listed
    let (status, created) = app
        .post(
            "/api/v1/tokens",
            &token,
            json!({"name": "报表脚本", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("kpt_"));
    let (status, _) = app.get("/api/v1/orgs", &secret).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get("/api/v1/tokens", &token).await;
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("secret").is_none() && t.get("digest").is_none()));
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "报表脚本" && t["kind"] == "personal"));
    let id = created["id"].as_i64().unwrap();
    assert_error(
        &app.post(
            "/api/v1/tokens",
            &token,
            json!({"name": "x", "expires_in_days": 0}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
        Some("expires_in_days"),
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &app.get("/api/v1/orgs", &secret).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    // revoking it again, or revoking another person's token, finds nothing
    assert_error(
        &app.call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&token),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // logout ends the session
    let (status, _) = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &app.get("/api/v1/me", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );

    // the log has the logins and the failure
    let (_, audit) = app
        .get("/api/v1/audit?entity=user&limit=500", &app.admin_token)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"login") && actions.contains(&"login_failed"),
        "{actions:?}"
    );
}

async fn malformed_bodies(app: TestApp) {
    let url = format!("{}/api/v1/orgs", app.url);
    let send = |body: Vec<u8>, ctype: &'static str| {
        app.client
            .post(url.clone())
            .bearer_auth(&app.admin_token)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let resp = send(b"{\"name\": ".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_json");

    let resp = send(b"name=x".to_vec(), "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let big = format!(
        "{{\"name\": \"{}\", \"code\": \"X\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    // answered before the body is read, so the server closes that connection: a client of its own
    let resp = reqwest::Client::new()
        .post(url.clone())
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");

    // missing and wrongly typed fields name the field
    let root = app.root_id().await;
    assert_error(
        &app.post(
            "/api/v1/orgs",
            &app.admin_token,
            json!({"code": "A1", "parent_id": root}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        Some("name"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            &app.admin_token,
            json!({"name": "甲", "code": "A1", "parent_id": "one"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        Some("parent_id"),
    );
    assert_error(
        &app.get("/api/v1/orgs?limit=abc", &app.admin_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        None,
    );
    assert_error(
        &app.get("/api/v1/orgs?limit=501", &app.admin_token).await,
        StatusCode::BAD_REQUEST,
        "out_of_range",
        Some("limit"),
    );
    assert_error(
        &app.get("/api/v1/orgs?cursor=zz", &app.admin_token).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_cursor",
        Some("cursor"),
    );
    assert_error(
        &app.get("/api/v1/orgs/abc", &app.admin_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
        None,
    );
    assert_error(
        &app.get("/api/v1/nothing-here", &app.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    // nothing was written by any of these
    let orgs = app.all("/api/v1/orgs", &app.admin_token).await;
    assert_eq!(orgs.len(), 1);
}

async fn lockout_after_repeated_failures(app: TestApp) {
    let root = app.root_id().await;
    let role = app.role("柜员", &["org.view"], "self").await;
    let (_, _) = app.person("clerk", root, role).await;
    let mut last = None;
    for _ in 0..keping_domain::auth::LOCK_AFTER_FAILURES {
        last = Some(
            app.call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "clerk", "password": "wrong-pass-1"})),
            )
            .await,
        );
    }
    assert_error(
        &last.unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "account_locked",
        None,
    );
    // even the right password is refused while locked
    let right = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "clerk", "password": "person-pass-1"})),
        )
        .await;
    assert_error(
        &right,
        StatusCode::TOO_MANY_REQUESTS,
        "account_locked",
        None,
    );
    // an administrator's reset unlocks it
    let (_, users) = app.get("/api/v1/users?q=clerk", &app.admin_token).await;
    let id = users["items"][0]["id"].as_i64().unwrap();
    let (status, _) = app
        .post(
            &format!("/api/v1/users/{id}/password"),
            &app.admin_token,
            json!({"password": "fresh-pass-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.login("clerk", "fresh-pass-2").await;
}

async fn disabled_and_expired(app: TestApp) {
    let root = app.root_id().await;
    let role = app.role("柜员", &["org.view"], "self").await;
    let (id, token) = app.person("leaver", root, role).await;
    let (status, _) = app.get("/api/v1/orgs", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &app.admin_token,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], false);
    // the live session ends at once, and logging in again says why
    assert_error(
        &app.get("/api/v1/orgs", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    let again = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "leaver", "password": "person-pass-1"})),
        )
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "account_disabled", None);
    // a disabled account's wrong password still says only "wrong pair"
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "leaver", "password": "not-it-at-all"})),
        )
        .await;
    assert_error(
        &wrong,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        None,
    );

    // an expired token is refused
    let (_, created) = app
        .post(
            "/api/v1/tokens",
            &app.admin_token,
            json!({"name": "short", "expires_in_days": 1}),
        )
        .await;
    let secret = created["secret"].as_str().unwrap();
    keping_store::Sql::new("UPDATE tokens SET expires_at = 1 WHERE id = ")
        .arg(created["id"].as_i64().unwrap())
        .execute(&app.running.state.db.pool)
        .await
        .unwrap();
    assert_error(
        &app.get("/api/v1/orgs", secret).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    // one cannot disable oneself
    let (_, me) = app.get("/api/v1/me", &app.admin_token).await;
    let my_id = me["user"]["id"].as_i64().unwrap();
    assert_error(
        &app.patch(
            &format!("/api/v1/users/{my_id}"),
            &app.admin_token,
            json!({"enabled": false}),
        )
        .await,
        StatusCode::CONFLICT,
        "cannot_disable_self",
        Some("enabled"),
    );
}

/// A caller's token and scope are kept for a moment between requests; every change that narrows
/// what he may do still applies to his very next request on this instance.
async fn changed_roles_and_places_apply_at_once(app: TestApp) {
    let root = app.root_id().await;
    let branch = app.org("分行", "FH", root).await;
    let other = app.org("另一分行", "LF", root).await;
    let role = app
        .role(
            "客户经理",
            &["org.view", "customer.view"],
            "org_and_children",
        )
        .await;
    let (id, token) = app.person("mover", branch, role).await;
    let (status, body) = app.get("/api/v1/customers", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // the role loses a permission
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/roles/{role}"),
            Some(&app.admin_token),
            Some(json!({"name": "客户经理", "permissions": ["org.view"], "data_level": "org_and_children"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &app.get("/api/v1/customers", &token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );

    // his roles move to another branch: the old one is out of reach at once
    let (status, _) = app.get(&format!("/api/v1/orgs/{branch}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &app.admin_token,
            json!({"org_id": other, "roles": [{"role_id": role, "org_id": other}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.get(&format!("/api/v1/orgs/{branch}"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/v1/orgs/{other}"), &token).await;
    assert_eq!(status, StatusCode::OK);

    // the branch he is at is disabled: his grants there end with it, and he holds nothing
    let (status, body) = app
        .patch(
            &format!("/api/v1/orgs/{other}"),
            &app.admin_token,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &app.get(&format!("/api/v1/orgs/{other}"), &token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
}
