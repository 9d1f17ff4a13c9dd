//! Scope: a person sees and changes only what his roles reach; everything else is 404.

use crate::harness::assert_error;
use crate::{both, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

both!(
    branches_do_not_see_each_other,
    data_levels_narrow_the_reach,
    no_one_grants_more_than_he_holds,
    audit_log_obeys_scope
);

async fn branches_do_not_see_each_other(app: TestApp) {
    let root = app.root_id().await;
    let a = app.org("A分行", "A", root).await;
    let a1 = app.org("A1支行", "A1", a).await;
    let b = app.org("B分行", "B", root).await;
    let b1 = app.org("B1支行", "B1", b).await;
    let manager = app
        .role(
            "分行管理层",
            &["org.view", "org.manage", "user.view", "user.manage"],
            "org_and_children",
        )
        .await;
    let (_, ta) = app.person("manager_a", a, manager).await;
    let (b_person, _) = app.person("manager_b", b, manager).await;

    // the list is exactly A's subtree
    let ids: Vec<i64> = app
        .all("/api/v1/orgs", &ta)
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![a, a1]);
    // B's objects answer 404, exactly like objects that do not exist
    let missing = app.get("/api/v1/orgs/987654", &ta).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(app.get(&format!("/api/v1/orgs/{b1}"), &ta).await, missing);
    assert_eq!(app.get(&format!("/api/v1/orgs/{root}"), &ta).await, missing);
    assert_eq!(
        app.get(&format!("/api/v1/users/{b_person}"), &ta).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch(
            &format!("/api/v1/orgs/{b1}"),
            &ta,
            json!({"name": "被改了"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch(
            &format!("/api/v1/users/{b_person}"),
            &ta,
            json!({"name": "被改了"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(
            &format!("/api/v1/users/{b_person}/password"),
            &ta,
            json!({"password": "hijacked-1"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/v1/users?org_id={b}"), &ta).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/v1/orgs?under={b}"), &ta).await.0,
        StatusCode::NOT_FOUND
    );
    // nor can A's manager build under B, move into B, or place people there
    assert_error(
        &app.post(
            "/api/v1/orgs",
            &ta,
            json!({"name": "渗透", "code": "X", "parent_id": b}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_parent",
        Some("parent_id"),
    );
    assert_error(
        &app.post(
            &format!("/api/v1/orgs/{a1}/move"),
            &ta,
            json!({"parent_id": b}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_parent",
        Some("parent_id"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            &ta,
            json!({"name": "新根", "code": "R2", "parent_id": null}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("parent_id"),
    );
    let intruder = json!({"username": "spy", "password": "spy-pass-123", "name": "间谍", "org_id": b1, "roles": []});
    assert_error(
        &app.post("/api/v1/users", &ta, intruder).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_org",
        Some("org_id"),
    );
    // B's records are untouched
    let (_, b1_now) = app
        .get(&format!("/api/v1/orgs/{b1}"), &app.admin_token)
        .await;
    assert_eq!(b1_now["name"], "B1支行");
    assert_eq!(b1_now["parent_id"], b);
    // within A everything works
    let (status, _) = app
        .post(
            "/api/v1/orgs",
            &ta,
            json!({"name": "A2支行", "code": "A2", "parent_id": a}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let people: Vec<String> = app
        .all("/api/v1/users", &ta)
        .await
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(people, vec!["manager_a"]);
}

async fn data_levels_narrow_the_reach(app: TestApp) {
    let root = app.root_id().await;
    let a = app.org("A分行", "A", root).await;
    let a1 = app.org("A1支行", "A1", a).await;
    // 本部门: the node itself, not its children
    let own_org = app
        .role("本部门查看", &["org.view", "user.view"], "org")
        .await;
    let (_, t) = app.person("viewer", a, own_org).await;
    let ids: Vec<i64> = app
        .all("/api/v1/orgs", &t)
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![a]);
    assert_eq!(
        app.get(&format!("/api/v1/orgs/{a1}"), &t).await.0,
        StatusCode::NOT_FOUND
    );
    // without the permission at all: 403, and changing is refused even within reach
    assert_error(
        &app.post(
            "/api/v1/orgs",
            &t,
            json!({"name": "x", "code": "x", "parent_id": a}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    let clerk = app.role("柜员", &[], "self").await;
    let (clerk_id, tc) = app.person("clerk", a1, clerk).await;
    assert_error(
        &app.get("/api/v1/users", &tc).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_error(
        &app.get("/api/v1/audit", &tc).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    // everyone may read his own account
    let (status, me) = app.get(&format!("/api/v1/users/{clerk_id}"), &tc).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "clerk");
    // roles held at a disabled org give nothing
    app.patch(
        &format!("/api/v1/orgs/{a}"),
        &app.admin_token,
        json!({"enabled": false}),
    )
    .await;
    let (_, me) = app.get("/api/v1/me", &t).await;
    assert_eq!(me["permissions"], json!([]));
}

async fn no_one_grants_more_than_he_holds(app: TestApp) {
    let root = app.root_id().await;
    let a = app.org("A分行", "A", root).await;
    let hr = app
        .role(
            "人事",
            &["org.view", "user.view", "user.manage", "role.manage"],
            "org_and_children",
        )
        .await;
    let (_, t) = app.person("hr", a, hr).await;
    assert_error(
        &app.post(
            "/api/v1/roles",
            &t,
            json!({"name": "超级", "permissions": ["audit.view"], "data_level": "org"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_held",
        Some("permissions"),
    );
    assert_error(
        &app.post(
            "/api/v1/roles",
            &t,
            json!({"name": "全局", "permissions": ["org.view"], "data_level": "all"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_held",
        Some("data_level"),
    );
    let (_, roles) = app.get("/api/v1/roles", &t).await;
    let admin_role = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["builtin"] == true)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let grab = json!({"username": "crony", "password": "crony-pass-1", "name": "亲信", "org_id": a, "roles": [{"role_id": admin_role, "org_id": a}]});
    assert_error(
        &app.post("/api/v1/users", &t, grab).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_held",
        Some("roles"),
    );
    // a role within his own powers is fine
    let (status, _) = app
        .post(
            "/api/v1/roles",
            &t,
            json!({"name": "查看", "permissions": ["org.view"], "data_level": "org"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn audit_log_obeys_scope(app: TestApp) {
    let root = app.root_id().await;
    let a = app.org("A分行", "A", root).await;
    let b = app.org("B分行", "B", root).await;
    let auditor = app
        .role(
            "审计",
            &["audit.view", "org.view", "org.manage"],
            "org_and_children",
        )
        .await;
    let (_, t) = app.person("auditor_a", a, auditor).await;
    app.post(
        "/api/v1/orgs",
        &t,
        json!({"name": "A1支行", "code": "A1", "parent_id": a}),
    )
    .await;
    app.post(
        "/api/v1/orgs",
        &app.admin_token,
        json!({"name": "B1支行", "code": "B1", "parent_id": b}),
    )
    .await;
    let entries = app.all("/api/v1/audit?entity=org", &t).await;
    assert!(entries
        .iter()
        .any(|e| e["summary"].as_str().unwrap().contains("A1支行")));
    assert!(
        entries
            .iter()
            .all(|e| !e["summary"].as_str().unwrap().contains("B")),
        "B's entries leak: {entries:?}"
    );
    // the log cannot be changed through the API
    let id = entries[0]["id"].as_i64().unwrap();
    for m in [Method::PUT, Method::PATCH, Method::DELETE] {
        let (status, _) = app
            .call(
                m,
                &format!("/api/v1/audit/{id}"),
                Some(&app.admin_token),
                Some(json!({})),
            )
            .await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "{status}"
        );
    }
    // time filters use RFC 3339 and say so when malformed
    assert_error(
        &app.get("/api/v1/audit?from=yesterday", &app.admin_token)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_time",
        Some("from"),
    );
    let future = app
        .all("/api/v1/audit?from=2999-01-01T00:00:00Z", &app.admin_token)
        .await;
    assert!(future.is_empty());
}
