//! The management side of service evaluation: terminals (list, revoke, rotate), business types,
//! and the follow-ups negative ratings open.

use crate::api_evaluation::{counter, end, press, start, Counter};
use crate::harness::assert_error;
use crate::{both, TestApp};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both!(
    terminals_are_listed_revoked_and_rotated,
    business_types_are_assigned_within_the_tree,
    follow_ups_are_listed_and_closed
);

/// A device call that needs nothing but a valid terminal token.
async fn device_status(app: &TestApp, token: &str) -> StatusCode {
    app.call(Method::POST, "/api/v1/device/sign-out", Some(token), None)
        .await
        .0
}

async fn terminals_are_listed_revoked_and_rotated(app: TestApp) {
    let (_, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    for p in [
        "/api/v1/windows/{id}/terminals",
        "/api/v1/terminals/{id}/revoke",
        "/api/v1/terminals/{id}/rotate",
        "/api/v1/business-types",
        "/api/v1/follow-ups",
        "/api/v1/follow-ups/{id}/close",
    ] {
        assert!(doc["paths"].get(p).is_some(), "OpenAPI lacks {p}");
    }
    let a = counter(&app, "A").await;
    let (status, kiosk) = app
        .post(
            "/api/v1/terminals",
            &app.admin_token,
            json!({"window_id": a.window, "kind": "kiosk", "name": "大堂平板"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kiosk}");
    let kiosk_id = kiosk["id"].as_i64().unwrap();
    let kiosk_token = kiosk["token"].as_str().unwrap().to_string();

    let list_path = format!("/api/v1/windows/{}/terminals", a.window);
    let (status, list) = app.get(&list_path, &app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(list["next_cursor"], Value::Null);
    assert!(items.iter().all(|t| t["revoked_at"].is_null()));
    // no token or digest is ever listed
    assert!(!list.to_string().contains(&kiosk_token));
    assert!(!list.to_string().contains("digest"));
    let keypad_id = items.iter().find(|t| t["kind"] == "keypad").unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(items.iter().any(|t| t["name"] == "大堂平板"));
    let (_, window) = app
        .get(&format!("/api/v1/windows/{}", a.window), &app.admin_token)
        .await;
    assert_eq!(window["terminal_count"], 2);

    // revoking: the token stops working at once; twice is a conflict
    assert_eq!(device_status(&app, &a.terminal).await, StatusCode::OK);
    let (status, revoked) = app
        .post(
            &format!("/api/v1/terminals/{keypad_id}/revoke"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(
        device_status(&app, &a.terminal).await,
        StatusCode::UNAUTHORIZED
    );
    for action in ["revoke", "rotate"] {
        assert_error(
            &app.post(
                &format!("/api/v1/terminals/{keypad_id}/{action}"),
                &app.admin_token,
                json!({}),
            )
            .await,
            StatusCode::CONFLICT,
            "terminal_revoked",
            None,
        );
    }

    // rotating: a new token, shown once; the old one stops, the new one works
    assert_eq!(device_status(&app, &kiosk_token).await, StatusCode::OK);
    let (status, rotated) = app
        .post(
            &format!("/api/v1/terminals/{kiosk_id}/rotate"),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["id"], kiosk_id);
    assert_eq!(rotated["terminal"]["kind"], "kiosk");
    let new_token = rotated["token"].as_str().unwrap();
    assert_ne!(new_token, kiosk_token);
    assert_eq!(
        device_status(&app, &kiosk_token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(device_status(&app, new_token).await, StatusCode::OK);

    // live ones first; the revoked one stays listed; the window counts live ones only
    let (_, list) = app.get(&list_path, &app.admin_token).await;
    let ids: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![kiosk_id, keypad_id]);
    let (_, window) = app
        .get(&format!("/api/v1/windows/{}", a.window), &app.admin_token)
        .await;
    assert_eq!(window["terminal_count"], 1);
    let (_, audit) = app
        .get("/api/v1/audit?entity=terminal", &app.admin_token)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"revoke") && actions.contains(&"rotate"),
        "{actions:?}"
    );

    // another outlet's terminal manager sees none of it; a watcher may list but not change
    let b = counter(&app, "B").await;
    let manager = app
        .role("评价器管理员", &["terminal.manage"], "org_and_children")
        .await;
    let (_, tb) = app.person("terminals_b", b.outlet, manager).await;
    assert_error(
        &app.get(&list_path, &tb).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    for action in ["revoke", "rotate"] {
        assert_error(
            &app.post(
                &format!("/api/v1/terminals/{kiosk_id}/{action}"),
                &tb,
                json!({}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        );
    }
    assert_eq!(device_status(&app, new_token).await, StatusCode::OK);
    let watcher = app
        .role("监控员", &["monitor.view"], "org_and_children")
        .await;
    let (_, tw) = app.person("watcher_a", a.outlet, watcher).await;
    let (status, seen) = app.get(&list_path, &tw).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["items"].as_array().unwrap().len(), 2);
    assert_error(
        &app.post(
            &format!("/api/v1/terminals/{kiosk_id}/revoke"),
            &tw,
            json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
}

async fn business_type(app: &TestApp, token: &str, org_id: i64, name: &str, code: &str) -> i64 {
    let (status, body) = app
        .post(
            "/api/v1/business-types",
            token,
            json!({"org_id": org_id, "name": name, "code": code}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["org_id"], org_id);
    body["id"].as_i64().unwrap()
}

async fn business_types_are_assigned_within_the_tree(app: TestApp) {
    let root = app.root_id().await;
    let a = counter(&app, "A").await;
    let b = counter(&app, "B").await;
    // the head office defines one for every outlet; each outlet may add its own
    let corp = business_type(&app, &app.admin_token, root, "对公业务", "CORP").await;
    let retail = business_type(&app, &app.admin_token, a.outlet, "个人业务", "RETAIL").await;
    let fx = business_type(&app, &app.admin_token, b.outlet, "外汇业务", "FX").await;
    assert_error(
        &app.post(
            "/api/v1/business-types",
            &app.admin_token,
            json!({"org_id": a.outlet, "name": "重复", "code": "RETAIL"}),
        )
        .await,
        StatusCode::CONFLICT,
        "duplicate",
        Some("code"),
    );
    assert_error(
        &app.post(
            "/api/v1/business-types",
            &app.admin_token,
            json!({"org_id": a.outlet, "name": " ", "code": "X"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("name"),
    );

    let window = format!("/api/v1/windows/{}", a.window);
    let (status, w) = app
        .patch(&window, &app.admin_token, json!({"business_type_id": corp}))
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["business_type_id"], corp);
    assert_eq!(w["business_type_name"], "对公业务");
    let (status, w) = app
        .patch(
            &window,
            &app.admin_token,
            json!({"business_type_id": retail}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["business_type_name"], "个人业务");
    // another branch's type, or one that does not exist, is no choice for this window
    for wrong in [fx, 999_999] {
        assert_error(
            &app.patch(
                &window,
                &app.admin_token,
                json!({"business_type_id": wrong}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_business_type",
            Some("business_type_id"),
        );
    }
    let (_, unchanged) = app.get(&window, &app.admin_token).await;
    assert_eq!(unchanged["business_type_id"], retail);
    // leaving it out changes nothing; null takes it away
    let (_, w) = app
        .patch(&window, &app.admin_token, json!({"name": "1号窗口"}))
        .await;
    assert_eq!(w["business_type_id"], retail);
    let (status, w) = app
        .patch(&window, &app.admin_token, json!({"business_type_id": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["business_type_id"], Value::Null);

    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["code"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, usable) = app
        .get(
            &format!("/api/v1/business-types?org_id={}", a.outlet),
            &app.admin_token,
        )
        .await;
    assert_eq!(names(&usable), vec!["CORP", "RETAIL"]);
    let (_, all) = app.get("/api/v1/business-types", &app.admin_token).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);

    // an outlet manager sees his own and the head office's, and adds only at his outlet
    let manager = app
        .role(
            "网点负责人",
            &["window.manage", "org.view"],
            "org_and_children",
        )
        .await;
    let (_, ta) = app.person("manager_a", a.outlet, manager).await;
    let (status, seen) = app.get("/api/v1/business-types", &ta).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(names(&seen), vec!["CORP", "RETAIL"]);
    for org in [b.outlet, root] {
        assert_error(
            &app.post(
                "/api/v1/business-types",
                &ta,
                json!({"org_id": org, "name": "越权", "code": "NOPE"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_org",
            Some("org_id"),
        );
    }
    assert_error(
        &app.get(&format!("/api/v1/business-types?org_id={}", b.outlet), &ta)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let deposit = business_type(&app, &ta, a.outlet, "储蓄业务", "DEPOSIT").await;
    let (status, w) = app
        .patch(&window, &ta, json!({"business_type_id": corp}))
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    let (status, _) = app
        .patch(&window, &ta, json!({"business_type_id": deposit}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let none = app.role("访客", &["org.view"], "all").await;
    let (_, tn) = app.person("visitor", a.outlet, none).await;
    assert_error(
        &app.get("/api/v1/business-types", &tn).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );

    // renaming: within reach only; the window shows the new name
    let (status, renamed) = app
        .patch(
            &format!("/api/v1/business-types/{deposit}"),
            &ta,
            json!({"name": "储蓄与理财"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["code"], "DEPOSIT");
    let (_, w) = app.get(&window, &ta).await;
    assert_eq!(w["business_type_name"], "储蓄与理财");
    for (id, status, code) in [
        (corp, StatusCode::NOT_FOUND, "not_found"),
        (fx, StatusCode::NOT_FOUND, "not_found"),
        (999_999, StatusCode::NOT_FOUND, "not_found"),
    ] {
        assert_error(
            &app.patch(
                &format!("/api/v1/business-types/{id}"),
                &ta,
                json!({"name": "改名"}),
            )
            .await,
            status,
            code,
            None,
        );
    }
    assert_error(
        &app.patch(
            &format!("/api/v1/business-types/{deposit}"),
            &ta,
            json!({"name": ""}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("name"),
    );
    // deleting: only what nothing uses; another branch's type is not found
    let delete = |id: i64, token: String| {
        let app = &app;
        async move {
            app.call(
                Method::DELETE,
                &format!("/api/v1/business-types/{id}"),
                Some(&token),
                None,
            )
            .await
        }
    };
    assert_error(
        &delete(deposit, ta.clone()).await,
        StatusCode::CONFLICT,
        "in_use",
        Some("business_type"),
    );
    assert_error(
        &delete(fx, ta.clone()).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (status, _) = delete(retail, ta.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = delete(fx, app.admin_token.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, all) = app.get("/api/v1/business-types", &app.admin_token).await;
    assert_eq!(names(&all), vec!["CORP", "DEPOSIT"]);
    // a type past services used stays, even when no window has it any more
    let s = start(&app, &a).await;
    end(&app, &a, s).await;
    let (status, _) = app
        .patch(&window, &ta, json!({"business_type_id": null}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &delete(deposit, ta.clone()).await,
        StatusCode::CONFLICT,
        "in_use",
        Some("business_type"),
    );
}

/// The clerk `employee_no` serves a customer who presses 不满意 and leaves a phone number.
async fn unhappy(app: &TestApp, c: &Counter, employee_no: &str, idem: &str) {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/device/sign-in",
            Some(&c.terminal),
            Some(json!({"employee_no": employee_no})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let s = start(app, c).await;
    end(app, c, s).await;
    let (status, p) = app
        .call(Method::POST, "/api/v1/device/presses", Some(&c.terminal), Some(json!({"key": "dissatisfied", "idempotency_key": idem, "pressed_at": Utc::now().to_rfc3339(), "phone": "13800135678", "negative_reason": "服务效率"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["counted"], true);
}

async fn follow_ups_are_listed_and_closed(app: TestApp) {
    let a = counter(&app, "A").await;
    let b = counter(&app, "B").await;
    unhappy(&app, &a, "CA", "a-1").await;
    unhappy(&app, &b, "CB", "b-1").await;
    // a satisfied customer opens nothing
    let s = start(&app, &a).await;
    end(&app, &a, s).await;
    let (_, p) = press(&app, &a, "satisfied", "a-2").await;
    assert_eq!(p["counted"], true);

    let all = app.all("/api/v1/follow-ups", &app.admin_token).await;
    assert_eq!(all.len(), 2, "{all:?}");
    // newest first, with the rating as it was given; the administrator sees the whole number
    assert_eq!(all[0]["window_id"], b.window);
    let item = &all[1];
    assert_eq!(item["status"], "open");
    assert_eq!(item["window_id"], a.window);
    assert_eq!(item["window_name"], "1号窗口");
    assert_eq!(item["org_id"], a.outlet);
    assert_eq!(item["staff_id"], a.staff_id);
    assert_eq!(item["staff_name"], "王芳");
    assert_eq!(item["label"], "不满意");
    assert_eq!(item["negative_reason"], "服务效率");
    assert_eq!(item["phone"], "13800135678");
    assert!(item["rated_at"].is_string() && item["note"].is_null());
    let a_item = item["id"].as_i64().unwrap();
    let b_item = all[0]["id"].as_i64().unwrap();
    let (_, first) = app
        .get("/api/v1/follow-ups?limit=1", &app.admin_token)
        .await;
    assert_eq!(first["items"][0]["id"], b_item);
    assert!(first["next_cursor"].is_string());

    // A's handler: only A's item, phone masked (no phone.view)
    let handler = app
        .role("跟进专员", &["followup.handle"], "org_and_children")
        .await;
    let (_, ta) = app.person("handler_a", a.outlet, handler).await;
    let (_, tb) = app.person("handler_b", b.outlet, handler).await;
    let (status, mine) = app.get("/api/v1/follow-ups?status=open", &ta).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{mine}");
    assert_eq!(items[0]["id"], a_item);
    assert_eq!(items[0]["phone"], "138****5678");
    assert_error(
        &app.get(&format!("/api/v1/follow-ups?org_id={}", b.outlet), &ta)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.get("/api/v1/follow-ups?status=pending", &ta).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_choice",
        Some("status"),
    );

    // closing needs a note of 1–500 characters
    let close = format!("/api/v1/follow-ups/{a_item}/close");
    for body in [json!({}), json!({"note": "  "})] {
        assert_error(
            &app.post(&close, &ta, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            Some("note"),
        );
    }
    assert_error(
        &app.post(&close, &ta, json!({"note": "长".repeat(501)}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "too_long",
        Some("note"),
    );
    // another branch's handler: 404, exactly as for nothing at all
    assert_error(
        &app.post(&close, &tb, json!({"note": "越权处理"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (_, theirs) = app.get("/api/v1/follow-ups", &tb).await;
    let ids: Vec<&Value> = theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["id"])
        .collect();
    assert_eq!(ids, vec![&json!(b_item)]);

    let (status, closed) = app
        .post(&close, &ta, json!({"note": "已致电客户致歉，客户表示理解"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["note"], "已致电客户致歉，客户表示理解");
    assert_eq!(closed["closed_by_name"], "handler_a");
    assert!(closed["closed_at"].is_string());
    assert_eq!(closed["phone"], "138****5678");
    assert_error(
        &app.post(&close, &ta, json!({"note": "再处理一次"})).await,
        StatusCode::CONFLICT,
        "already_closed",
        None,
    );
    let (_, open) = app.get("/api/v1/follow-ups?status=open", &ta).await;
    assert!(open["items"].as_array().unwrap().is_empty(), "{open}");
    let (_, done) = app.get("/api/v1/follow-ups?status=closed", &ta).await;
    assert_eq!(done["items"][0]["id"], a_item);
    let (_, audit) = app
        .get("/api/v1/audit?entity=follow_up", &app.admin_token)
        .await;
    assert_eq!(audit["items"][0]["action"], "close", "{audit}");

    // without followup.handle there is no list at all
    let watcher = app.role("统计员", &["stats.view"], "all").await;
    let (_, tw) = app.person("stats_only", a.outlet, watcher).await;
    assert_error(
        &app.get("/api/v1/follow-ups", &tw).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
}
