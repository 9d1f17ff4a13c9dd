//! Roles, people, passwords and photos through the API.

use crate::harness::assert_error;
use crate::{both, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

both!(
    roles_are_ticked_permissions,
    builtin_admin_gets_new_permissions,
    people_and_their_validation,
    passwords,
    photos
);

/// A valid 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// A database from an older version, whose builtin administrator role lacks permissions added
/// since: after a restart the role holds the whole catalogue again, and the change is audited.
async fn builtin_admin_gets_new_permissions(mut app: TestApp) {
    keping_store::Sql::new(
        "UPDATE roles SET permissions = '[\"org.view\",\"customer.view\"]' WHERE builtin = 1",
    )
    .execute(&app.running.state.db.pool)
    .await
    .unwrap();
    app.restart().await;
    let t = &app.admin_token;
    let (_, catalogue) = app.get("/api/v1/permissions", t).await;
    let mut all: Vec<String> = catalogue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_string())
        .collect();
    all.sort();
    let (status, roles) = app.get("/api/v1/roles", t).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let admin = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["builtin"] == true)
        .unwrap();
    let mut held: Vec<String> = admin["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    held.sort();
    assert_eq!(held, all);
    assert!(held.contains(&"customer.pool".to_string()));
    // the administrator can use them again (customer.pool: the pool page)
    let (status, _) = app.get("/api/v1/customers?in_pool=true", t).await;
    assert_eq!(status, StatusCode::OK);
    let (_, audit) = app.get("/api/v1/audit?entity=role", t).await;
    assert!(
        audit.to_string().contains("customer.pool"),
        "the added permissions are in the audit log: {audit}"
    );
    // a second start adds nothing more
    app.restart().await;
    let (_, again) = app.get("/api/v1/audit?entity=role", &app.admin_token).await;
    assert_eq!(
        again["items"].as_array().map(Vec::len),
        audit["items"].as_array().map(Vec::len)
    );
}

async fn roles_are_ticked_permissions(app: TestApp) {
    let t = &app.admin_token;
    let (status, perms) = app.get("/api/v1/permissions", t).await;
    assert_eq!(status, StatusCode::OK);
    let items = perms["items"].as_array().unwrap();
    assert!(items
        .iter()
        .any(|p| p["code"] == "negative.view" && p["name"] == "查看不满意评价详情"));
    assert!(items
        .iter()
        .all(|p| p["code"].is_string() && p["name"].is_string()));

    let (status, role) = app.post("/api/v1/roles", t, json!({"name": "网点负责人", "permissions": ["org.view", "user.view"], "data_level": "org"})).await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    assert_eq!(role["data_level"], "org");
    assert_eq!(role["permissions"], json!(["org.view", "user.view"]));
    let id = role["id"].as_i64().unwrap();

    assert_error(
        &app.post(
            "/api/v1/roles",
            t,
            json!({"name": "网点负责人", "permissions": [], "data_level": "org"}),
        )
        .await,
        StatusCode::CONFLICT,
        "duplicate",
        Some("name"),
    );
    assert_error(
        &app.post(
            "/api/v1/roles",
            t,
            json!({"name": "坏", "permissions": ["fly"], "data_level": "org"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_permission",
        Some("permissions"),
    );
    assert_error(
        &app.post(
            "/api/v1/roles",
            t,
            json!({"name": "坏", "permissions": [], "data_level": "galaxy"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_choice",
        Some("data_level"),
    );
    assert_error(
        &app.post(
            "/api/v1/roles",
            t,
            json!({"name": "坏", "permissions": "org.view", "data_level": "org"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        Some("permissions"),
    );

    let (status, updated) = app.call(Method::PUT, &format!("/api/v1/roles/{id}"), Some(t), Some(json!({"name": "网点主任", "permissions": ["org.view"], "data_level": "org_and_children"}))).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "网点主任");

    // the built-in administrator role can be neither changed nor deleted; a held role cannot be deleted
    let (_, roles) = app.get("/api/v1/roles", t).await;
    let builtin = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["builtin"] == true)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_error(
        &app.call(
            Method::DELETE,
            &format!("/api/v1/roles/{builtin}"),
            Some(t),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "builtin_role",
        None,
    );
    let root = app.root_id().await;
    app.person("holder", root, id).await;
    assert_error(
        &app.call(
            Method::DELETE,
            &format!("/api/v1/roles/{id}"),
            Some(t),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "role_in_use",
        None,
    );
    let spare = app.role("临时", &[], "self").await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/roles/{spare}"),
            Some(t),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &app.get(&format!("/api/v1/roles/{spare}"), t).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
}

async fn people_and_their_validation(app: TestApp) {
    let t = &app.admin_token;
    let root = app.root_id().await;
    let outlet = app.org("朝阳支行", "CY", root).await;
    let clerk = app.role("柜员", &["org.view"], "self").await;
    let body = |username: &str, employee_no: &str| {
        json!({"username": username, "password": "clerk-pass-1", "name": "王芳", "employee_no": employee_no, "org_id": outlet,
               "position": "柜员", "phone": "010-6500 1234", "email": "wangfang@example.cn", "roles": [{"role_id": clerk, "org_id": outlet}]})
    };
    let (status, user) = app.post("/api/v1/users", t, body("wangfang", "1001")).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["employee_no"], "1001");
    assert_eq!(user["org_id"], outlet);
    assert_eq!(user["roles"][0]["role_name"], "柜员");
    let text = user.to_string();
    assert!(
        !text.contains("password") && !text.contains("argon2"),
        "an answer carries no password or hash: {text}"
    );

    assert_error(
        &app.post("/api/v1/users", t, body("WangFang", "1002")).await,
        StatusCode::CONFLICT,
        "duplicate",
        Some("username"),
    );
    assert_error(
        &app.post("/api/v1/users", t, body("lina", "1001")).await,
        StatusCode::CONFLICT,
        "duplicate",
        Some("employee_no"),
    );
    let mut weak = body("lina", "1002");
    weak["password"] = json!("123");
    assert_error(
        &app.post("/api/v1/users", t, weak).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_short",
        Some("password"),
    );
    let mut bad_mail = body("lina", "1002");
    bad_mail["email"] = json!("not-an-address");
    assert_error(
        &app.post("/api/v1/users", t, bad_mail).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_email",
        Some("email"),
    );
    let mut bad_phone = body("lina", "1002");
    bad_phone["phone"] = json!("call me");
    assert_error(
        &app.post("/api/v1/users", t, bad_phone).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_phone",
        Some("phone"),
    );
    let mut bad_role = body("lina", "1002");
    bad_role["roles"] = json!([{"role_id": 98765, "org_id": outlet}]);
    assert_error(
        &app.post("/api/v1/users", t, bad_role).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_role",
        Some("roles"),
    );
    let mut bad_org = body("lina", "1002");
    bad_org["org_id"] = json!(98765);
    assert_error(
        &app.post("/api/v1/users", t, bad_org).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_org",
        Some("org_id"),
    );
    // none of the refused requests left a person behind
    let people = app.all("/api/v1/users", t).await;
    assert_eq!(people.len(), 2, "admin and wangfang only: {people:?}");

    // update: move, change roles, clear a field with null
    let id = user["id"].as_i64().unwrap();
    let other = app.org("海淀支行", "HD", root).await;
    let (status, moved) = app
        .patch(
            &format!("/api/v1/users/{id}"),
            t,
            json!({"org_id": other, "email": null, "roles": [{"role_id": clerk, "org_id": other}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["org_id"], other);
    assert_eq!(moved["email"], serde_json::Value::Null);
    assert_eq!(moved["roles"][0]["org_id"], other);
    assert_error(
        &app.patch(&format!("/api/v1/users/{id}"), t, json!({"manager_id": id}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cycle",
        Some("manager_id"),
    );
    assert_error(
        &app.patch("/api/v1/users/99999", t, json!({"name": "谁"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // search by name, employee no. and org subtree
    let (_, found) = app.get("/api/v1/users?q=1001", t).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (_, found) = app.get(&format!("/api/v1/users?org_id={outlet}"), t).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 0);
    let (_, found) = app.get(&format!("/api/v1/users?org_id={other}"), t).await;
    assert_eq!(found["items"][0]["name"], "王芳");
}

async fn passwords(app: TestApp) {
    let root = app.root_id().await;
    let role = app.role("柜员", &["org.view"], "self").await;
    let (_, token) = app.person("zhangwei", root, role).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    assert_error(
        &app.post(
            "/api/v1/me/password",
            &token,
            change("wrong-one-1", "new-pass-123"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_password",
        Some("current_password"),
    );
    assert_error(
        &app.post(
            "/api/v1/me/password",
            &token,
            change("person-pass-1", "short"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_short",
        Some("new_password"),
    );
    let (status, _) = app
        .post(
            "/api/v1/me/password",
            &token,
            change("person-pass-1", "new-pass-123"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // other sessions end; the new password works and the old one does not
    assert_error(
        &app.get("/api/v1/me", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    app.login("zhangwei", "new-pass-123").await;
    let old = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "zhangwei", "password": "person-pass-1"})),
        )
        .await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "invalid_credentials", None);
}

async fn photos(app: TestApp) {
    let root = app.root_id().await;
    let role = app.role("柜员", &["org.view"], "self").await;
    let (id, _) = app.person("liuyang", root, role).await;
    let url = format!("{}/api/v1/users/{id}/photo", app.url);
    let put = |bytes: Vec<u8>, ctype: &'static str| {
        app.client
            .put(url.clone())
            .bearer_auth(&app.admin_token)
            .header("content-type", ctype)
            .body(bytes)
            .send()
    };

    let resp = put(
        b"GIF89a but not really an image at all".to_vec(),
        "image/gif",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = put(b"plain text".to_vec(), "image/png").await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_an_image");
    let mut huge = PNG.to_vec();
    huge.resize(3 * 1024 * 1024, 0);
    // answered before the body is read, so the server closes that connection: a client of its own
    let resp = reqwest::Client::new()
        .put(url.clone())
        .bearer_auth(&app.admin_token)
        .header("content-type", "image/png")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "photo_too_large");
    let (_, user) = app
        .get(&format!("/api/v1/users/{id}"), &app.admin_token)
        .await;
    assert_eq!(user["has_photo"], false);

    // a 1.5 MiB photo is within the 2 MiB a photo may have (above the 1 MiB for JSON bodies)
    let mut large = PNG.to_vec();
    large.resize(1536 * 1024, 0);
    let resp = put(large, "image/png").await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = put(PNG.to_vec(), "image/png").await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let got = app
        .client
        .get(url.clone())
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().as_ref(), PNG);
    let (_, user) = app
        .get(&format!("/api/v1/users/{id}"), &app.admin_token)
        .await;
    assert_eq!(user["has_photo"], true);
}
