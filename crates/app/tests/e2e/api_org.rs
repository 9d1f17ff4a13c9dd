//! The org tree through the API: create, list, rename, time zones, move, disable.

use crate::harness::assert_error;
use crate::{both, TestApp};
use reqwest::StatusCode;
use serde_json::json;

both!(
    create_and_validate,
    move_and_refuse_cycles,
    timezones_inherit,
    disable_cascades,
    pagination_walks_the_tree
);

async fn create_and_validate(app: TestApp) {
    let root = app.root_id().await;
    let (status, org) = app
        .post(
            "/api/v1/orgs",
            &app.admin_token,
            json!({"name": "北京分行", "code": "BJ", "parent_id": root}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(org["name"], "北京分行");
    assert_eq!(org["code"], "BJ");
    assert_eq!(org["parent_id"], root);
    assert_eq!(org["timezone"], "Asia/Shanghai");
    assert_eq!(org["kind"], "branch");
    let bj = org["id"].as_i64().unwrap();

    let t = &app.admin_token;
    assert_error(
        &app.post(
            "/api/v1/orgs",
            t,
            json!({"name": "重复", "code": "BJ", "parent_id": root}),
        )
        .await,
        StatusCode::CONFLICT,
        "duplicate",
        Some("code"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            t,
            json!({"name": "  ", "code": "X1", "parent_id": root}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("name"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            t,
            json!({"name": "长".repeat(101), "code": "X1", "parent_id": root}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_long",
        Some("name"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            t,
            json!({"name": "甲", "code": "北京", "parent_id": root}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_format",
        Some("code"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            t,
            json!({"name": "甲", "code": "X1", "parent_id": 999_999}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_parent",
        Some("parent_id"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            t,
            json!({"name": "甲", "code": "X1", "parent_id": bj, "kind": "planet"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_choice",
        Some("kind"),
    );
    assert_error(
        &app.post(
            "/api/v1/orgs",
            t,
            json!({"name": "甲", "code": "X1", "parent_id": bj, "timezone": "Mars/Olympus"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_timezone",
        Some("timezone"),
    );
    assert_error(
        &app.get("/api/v1/orgs/999999", t).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // a second root only for an administrator with data level all; the admin may
    let (status, second) = app
        .post(
            "/api/v1/orgs",
            t,
            json!({"name": "第二集团", "code": "G2", "parent_id": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["kind"], "head_office");

    // rename and recode; a taken code is refused and nothing changes
    let (status, renamed) = app
        .patch(
            &format!("/api/v1/orgs/{bj}"),
            t,
            json!({"name": "北京市分行", "code": "BJ1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "北京市分行");
    assert_error(
        &app.patch(
            &format!("/api/v1/orgs/{bj}"),
            t,
            json!({"name": "改不了", "code": "G2"}),
        )
        .await,
        StatusCode::CONFLICT,
        "duplicate",
        Some("code"),
    );
    let (_, now) = app.get(&format!("/api/v1/orgs/{bj}"), t).await;
    assert_eq!(now["name"], "北京市分行");
    assert_eq!(now["code"], "BJ1");

    // the audit log holds the before and after of the rename
    let (_, audit) = app.get("/api/v1/audit?entity=org&action=update", t).await;
    let entry = &audit["items"][0];
    assert_eq!(entry["entity_id"], bj);
    let changes: serde_json::Value =
        serde_json::from_str(entry["changes"].as_str().unwrap()).unwrap();
    assert_eq!(changes["name"], json!(["北京分行", "北京市分行"]));
}

async fn move_and_refuse_cycles(app: TestApp) {
    let root = app.root_id().await;
    let a = app.org("A分行", "A", root).await;
    let b = app.org("B分行", "B", root).await;
    let a1 = app.org("A1支行", "A1", a).await;
    let a1x = app.org("A1营业部", "A1X", a1).await;
    let t = &app.admin_token;

    // under itself or its own descendant: refused, nothing moves
    assert_error(
        &app.post(
            &format!("/api/v1/orgs/{a}/move"),
            t,
            json!({"parent_id": a1x}),
        )
        .await,
        StatusCode::CONFLICT,
        "cycle",
        Some("parent_id"),
    );
    assert_error(
        &app.post(
            &format!("/api/v1/orgs/{a}/move"),
            t,
            json!({"parent_id": a}),
        )
        .await,
        StatusCode::CONFLICT,
        "cycle",
        Some("parent_id"),
    );
    assert_error(
        &app.post(
            &format!("/api/v1/orgs/{root}/move"),
            t,
            json!({"parent_id": a}),
        )
        .await,
        StatusCode::CONFLICT,
        "root_cannot_move",
        None,
    );
    assert_error(
        &app.post(
            &format!("/api/v1/orgs/{a1}/move"),
            t,
            json!({"parent_id": 424242}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_parent",
        Some("parent_id"),
    );

    // A1 (with its child) moves under B: the subtree follows
    let (status, moved) = app
        .post(
            &format!("/api/v1/orgs/{a1}/move"),
            t,
            json!({"parent_id": b}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["parent_id"], b);
    let under_b: Vec<i64> = app
        .all(&format!("/api/v1/orgs?under={b}"), t)
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(under_b, vec![b, a1, a1x]);
    let under_a: Vec<i64> = app
        .all(&format!("/api/v1/orgs?under={a}"), t)
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(under_a, vec![a]);
    let (_, deep) = app.get(&format!("/api/v1/orgs/{a1x}"), t).await;
    assert_eq!(deep["depth"], 3);
    assert_eq!(deep["path"], format!("/{root}/{b}/{a1}/{a1x}/"));
}

async fn timezones_inherit(app: TestApp) {
    let root = app.root_id().await;
    let t = &app.admin_token;
    let (_, eu) = app.post("/api/v1/orgs", t, json!({"name": "欧洲分行", "code": "EU", "parent_id": root, "timezone": "Europe/Berlin"})).await;
    let eu = eu["id"].as_i64().unwrap();
    let (_, paris) = app
        .post(
            "/api/v1/orgs",
            t,
            json!({"name": "巴黎网点", "code": "EU-PA", "parent_id": eu}),
        )
        .await;
    assert_eq!(paris["timezone"], "Europe/Berlin");
    assert_eq!(paris["timezone_inherited"], true);
    let paris = paris["id"].as_i64().unwrap();
    // changing the branch's zone reaches the outlet that inherits it
    app.patch(
        &format!("/api/v1/orgs/{eu}"),
        t,
        json!({"timezone": "Europe/Paris"}),
    )
    .await;
    let (_, p) = app.get(&format!("/api/v1/orgs/{paris}"), t).await;
    assert_eq!(p["timezone"], "Europe/Paris");
    // moving the outlet under the head office gives it the head office's zone
    app.post(
        &format!("/api/v1/orgs/{paris}/move"),
        t,
        json!({"parent_id": root}),
    )
    .await;
    let (_, p) = app.get(&format!("/api/v1/orgs/{paris}"), t).await;
    assert_eq!(p["timezone"], "Asia/Shanghai");
    // null returns the branch to inheriting
    let (_, e) = app
        .patch(&format!("/api/v1/orgs/{eu}"), t, json!({"timezone": null}))
        .await;
    assert_eq!(e["timezone"], "Asia/Shanghai");
    assert_eq!(e["timezone_inherited"], true);
}

async fn disable_cascades(app: TestApp) {
    let root = app.root_id().await;
    let a = app.org("A分行", "A", root).await;
    let a1 = app.org("A1支行", "A1", a).await;
    let t = &app.admin_token;
    let (status, body) = app
        .patch(&format!("/api/v1/orgs/{a}"), t, json!({"enabled": false}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, child) = app.get(&format!("/api/v1/orgs/{a1}"), t).await;
    assert_eq!(child["enabled"], false);
    let enabled: Vec<i64> = app
        .all("/api/v1/orgs?enabled=true", t)
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(enabled, vec![root]);
    // no one can be placed in a disabled org
    let role = app.role("柜员", &["org.view"], "self").await;
    let placed = app.post("/api/v1/users", t, json!({"username": "late", "password": "person-pass-1", "name": "迟到", "org_id": a1, "roles": [{"role_id": role, "org_id": a1}]})).await;
    assert_error(
        &placed,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_org",
        Some("org_id"),
    );
}

async fn pagination_walks_the_tree(app: TestApp) {
    let root = app.root_id().await;
    for i in 0..7 {
        let b = app.org(&format!("分行{i}"), &format!("B{i}"), root).await;
        app.org(&format!("网点{i}"), &format!("B{i}-1"), b).await;
    }
    let (_, first) = app.get("/api/v1/orgs?limit=5", &app.admin_token).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 5);
    assert!(first["next_cursor"].is_string());
    let all = app.all("/api/v1/orgs?limit=4", &app.admin_token).await;
    assert_eq!(all.len(), 15);
    // a parent comes before its children, and no node twice
    let mut seen = std::collections::HashSet::new();
    for o in &all {
        if let Some(p) = o["parent_id"].as_i64() {
            assert!(seen.contains(&p), "child before parent: {o}");
        }
        assert!(seen.insert(o["id"].as_i64().unwrap()));
    }
    let found = app.all("/api/v1/orgs?q=网点3", &app.admin_token).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["code"], "B3-1");
}
