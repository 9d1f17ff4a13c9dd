//! Customer records through the API: create and search (Chinese names, pinyin initials, phone
//! fragments), duplicates without leaks, scope, sharing, the public pool, merges, imports with
//! their dry run and undo, export round trips, and caller-ID reaching the agent's browser.

use crate::harness::assert_error;
use crate::{both, Backend, TestApp};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

both!(
    create_search_and_bad_input,
    duplicates_do_not_leak_and_scope_holds,
    sharing_and_masked_phones,
    pool_claim_limit_and_auto_return,
    merge_repoints_everything,
    import_dry_run_undo_and_gbk,
    import_progress_is_followed,
    large_import_is_searchable,
    search_reads_the_term_parts_newest_first,
    search_terms_go_with_what_made_them,
    export_imports_back_the_same,
    caller_id_reaches_the_agent,
    customer_pages,
    customer_edit_pages,
);

const REP_PERMS: &[&str] = &["customer.view", "customer.edit", "customer.pool"];

/// A rep at `org` with his own customers only (本人).
async fn rep(app: &TestApp, org: i64, name: &str, perms: &[&str]) -> (i64, String) {
    let role = app.role(&format!("role-{name}"), perms, "self").await;
    app.person(name, org, role).await
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, created) = app.post("/api/v1/customers", token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn names(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let (status, body) = app.get(&format!("/api/v1/customers?{query}"), token).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    item_names(&body)
}

/// The names of a customer list page's items, in order.
fn item_names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn create_search_and_bad_input(app: TestApp) {
    let admin = &app.admin_token;
    let zs = create(&app, admin, json!({"name": "张三", "company": "北京华为技术有限公司", "phone": "138 0013 8000", "intent": "A", "tags": ["VIP", "华北"], "importance": "马上要做"})).await;
    assert_eq!(zs["phone"], "13800138000");
    assert_eq!(zs["kind"], "customer");
    assert_eq!(zs["importance"], "urgent");
    assert!(zs["expected_close_by"].as_str().is_some());
    assert_eq!(zs["duplicates"], json!([]));
    let ls = create(
        &app,
        admin,
        json!({"name": "李四", "kind": "lead", "phone": "010-62345678转123"}),
    )
    .await;
    assert_eq!(ls["phone"], "010-62345678-123");
    let (status, contact) = app.post(&format!("/api/v1/customers/{}/contacts", ls["id"]), admin, json!({"name": "王小明", "mobile": "13912345678", "title": "采购经理", "gender": "male"})).await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    create(
        &app,
        admin,
        json!({"name": "Acme Trading Ltd", "kind": "agent"}),
    )
    .await;

    for (q, expected) in [
        ("张三", vec!["张三"]),
        ("三", vec!["张三"]),
        ("zs", vec!["张三"]),
        ("华为", vec!["张三"]),
        ("8000", vec!["张三"]),
        ("138-0013", vec!["张三"]),
        ("王小明", vec!["李四"]),
        ("wxm", vec!["李四"]),
        ("1391234", vec!["李四"]),
        ("62345678", vec!["李四"]),
        ("acme", vec!["Acme Trading Ltd"]),
        ("北京华为技术有限公司张", vec![]),
        ("bjhwjsyxgs", vec!["张三"]),
        ("nobody", vec![]),
    ] {
        assert_eq!(
            names(&app, admin, &format!("q={}", enc(q))).await,
            expected,
            "q={q}"
        );
    }
    // filters and sorts
    assert_eq!(names(&app, admin, "kind=lead").await, vec!["李四"]);
    assert_eq!(names(&app, admin, "tag=VIP").await, vec!["张三"]);
    assert_eq!(
        names(&app, admin, "intent=A&importance=urgent").await,
        vec!["张三"]
    );
    // keyset pages of one
    let all = app.all("/api/v1/customers?limit=1", admin).await;
    assert_eq!(all.len(), 3);
    // by name, in the database's own collation: page by page as in one page
    let by_name: Vec<Value> = app
        .all("/api/v1/customers?limit=1&sort=name", admin)
        .await
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    let (_, one_page) = app.get("/api/v1/customers?sort=name", admin).await;
    let one_page: Vec<Value> = one_page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(by_name, one_page);
    assert_eq!(by_name.len(), 3);

    // update, conversion lead → customer, timeline
    let (status, after) = app
        .patch(
            &format!("/api/v1/customers/{}", ls["id"]),
            admin,
            json!({"kind": "customer", "notes": "老客户介绍"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["kind"], "customer");
    // absent fields keep their value, "" clears one
    let (_, cleared) = app
        .patch(
            &format!("/api/v1/customers/{}", zs["id"]),
            admin,
            json!({"company": "", "intent": null}),
        )
        .await;
    assert_eq!(cleared["company"], Value::Null);
    assert_eq!(cleared["intent"], "A");
    assert_eq!(cleared["phone"], "13800138000");
    assert!(
        names(&app, admin, &format!("q={}", enc("华为")))
            .await
            .is_empty(),
        "the index follows the change"
    );
    let (_, restored) = app
        .patch(
            &format!("/api/v1/customers/{}", zs["id"]),
            admin,
            json!({"company": "北京华为技术有限公司"}),
        )
        .await;
    assert_eq!(restored["company"], "北京华为技术有限公司");
    let (_, timeline) = app
        .get(&format!("/api/v1/customers/{}/timeline", ls["id"]), admin)
        .await;
    assert!(
        timeline
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["action"] == "convert"),
        "{timeline}"
    );
    let (status, one) = app
        .get(&format!("/api/v1/customers/{}", ls["id"]), admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["contacts"][0]["name"], "王小明");
    assert_eq!(one["can_edit"], true);

    // bad input: each with its field
    let cases = [
        (
            json!({"company": "无名"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            "name",
        ),
        (
            json!({"name": "x", "phone": "abc"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_phone",
            "phone",
        ),
        (
            json!({"name": "x", "phone": "1380013800"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_phone",
            "phone",
        ),
        (
            json!({"name": "x", "email": "a@b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
            "email",
        ),
        (
            json!({"name": "x", "kind": "vip"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_choice",
            "kind",
        ),
        (
            json!({"name": "x", "birthday": "1990-13-01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_date",
            "birthday",
        ),
        (
            json!({"name": "x", "blacklisted": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            "blacklist_reason",
        ),
        (
            json!({"name": "x", "custom": {"engine_no": "E1"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            "custom.engine_no",
        ),
        (
            json!({"name": 123}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "name",
        ),
        (
            json!({"name": "x", "owner_id": 999999}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_owner",
            "owner_id",
        ),
    ];
    for (body, status, code, field) in cases {
        let got = app.post("/api/v1/customers", admin, body.clone()).await;
        assert_error(&got, status, code, Some(field));
    }
    let got = app
        .post(
            "/api/v1/customers",
            admin,
            json!({"name": "x", "colour": "red"}),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    // answered before the body is read, so the server closes that connection: a client of its own
    let huge = "名".repeat(700_000);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/customers", app.url))
        .bearer_auth(admin)
        .json(&json!({ "name": huge }))
        .send()
        .await
        .unwrap();
    let got = (resp.status(), resp.json::<Value>().await.unwrap());
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None);
    assert_error(
        &app.get("/api/v1/customers/999999", admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.get("/api/v1/customers/abc", admin).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
        None,
    );
    assert_error(
        &app.get("/api/v1/customers?limit=0", admin).await,
        StatusCode::BAD_REQUEST,
        "out_of_range",
        Some("limit"),
    );
    assert_error(
        &app.get("/api/v1/customers?sort=colour", admin).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        Some("sort"),
    );
    assert_error(
        &app.get("/api/v1/customers?cursor=zz", admin).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_cursor",
        Some("cursor"),
    );
    assert_error(
        &app.call(Method::GET, "/api/v1/customers", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );

    // custom fields: defined per org, checked by type, filterable
    let root = app.root_id().await;
    let (status, f) = app
        .post(
            &format!("/api/v1/orgs/{root}/customer-fields"),
            admin,
            json!({"code": "displacement", "label": "排量", "kind": "number"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{f}");
    let got = app
        .post(
            "/api/v1/customers",
            admin,
            json!({"name": "赵六", "custom": {"displacement": "大"}}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_type",
        Some("custom.displacement"),
    );
    create(
        &app,
        admin,
        json!({"name": "赵六", "custom": {"displacement": 1.6}}),
    )
    .await;
    create(
        &app,
        admin,
        json!({"name": "钱七", "custom": {"displacement": "2.0"}}),
    )
    .await;
    assert_eq!(
        names(&app, admin, "custom=displacement:gte:1.8").await,
        vec!["钱七"]
    );
    assert_eq!(
        names(&app, admin, "custom=displacement:lte:1.8").await,
        vec!["赵六"]
    );
}

async fn duplicates_do_not_leak_and_scope_holds(app: TestApp) {
    let root = app.root_id().await;
    let a = app.org("甲分行", "BR-A", root).await;
    let b = app.org("乙分行", "BR-B", root).await;
    let (_, rep_a) = rep(&app, a, "rep_a", REP_PERMS).await;
    let (_, rep_b) = rep(&app, b, "rep_b", REP_PERMS).await;
    let secret = create(&app, &rep_a, json!({"name": "秘密客户", "company": "甲公司", "phone": "13700001111", "notes": "只给甲看"})).await;
    let id = secret["id"].as_i64().unwrap();

    // rep B enters the same phone: warned, but nothing of A's customer is shown
    let (status, mine) = app
        .post(
            "/api/v1/customers",
            &rep_b,
            json!({"name": "另一个名字", "phone": "137-0000-1111"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        mine["duplicates"],
        json!([{"reason": "same_phone", "visible": false, "customer_id": null, "name": null, "in_pool": false}])
    );
    let text = mine.to_string();
    assert!(
        !text.contains("秘密客户")
            && !text.contains("甲公司")
            && !text.contains(&format!("\"customer_id\":{id}")),
        "{text}"
    );
    // rep A entering his own again sees which one
    let again = create(
        &app,
        &rep_a,
        json!({"name": "秘密客户", "company": "甲公司"}),
    )
    .await;
    assert_eq!(again["duplicates"][0]["visible"], true);
    assert_eq!(again["duplicates"][0]["customer_id"], id);
    assert_eq!(again["duplicates"][0]["reason"], "same_name_company");

    // another branch's customer is 404 everywhere, and nothing is written
    assert_error(
        &app.get(&format!("/api/v1/customers/{id}"), &rep_b).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.patch(
            &format!("/api/v1/customers/{id}"),
            &rep_b,
            json!({"name": "改掉"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.post(
            &format!("/api/v1/customers/{id}/activities"),
            &rep_b,
            json!({"kind": "call", "content": "hi"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.post(
            &format!("/api/v1/customers/{id}/contacts"),
            &rep_b,
            json!({"name": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.get(&format!("/api/v1/customers/{id}/timeline"), &rep_b)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let theirs = mine["id"].as_i64().unwrap();
    assert_error(
        &app.post(
            &format!("/api/v1/customers/{theirs}/merge"),
            &rep_b,
            json!({"merge_id": id}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.post(&format!("/api/v1/customers/{id}/claim"), &rep_b, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert!(names(&app, &rep_b, &format!("q={}", enc("秘密")))
        .await
        .is_empty());
    assert_eq!(
        names(&app, &rep_b, "q=13700001111").await,
        vec!["另一个名字"],
        "only his own"
    );
    assert_eq!(names(&app, &rep_b, "").await, vec!["另一个名字"]);
    let (_, still) = app
        .get(&format!("/api/v1/customers/{id}"), &app.admin_token)
        .await;
    assert_eq!(still["name"], "秘密客户");
    assert_eq!(still["contacts"], json!([]));
    // a branch manager (本部门及下属部门 at A) sees A's customers, not B's
    let role = app
        .role(
            "branch-manager",
            &["customer.view", "customer.assign", "phone.view"],
            "org_and_children",
        )
        .await;
    let (_, manager) = app.person("mgr_a", a, role).await;
    let seen = names(&app, &manager, "").await;
    assert!(
        seen.contains(&"秘密客户".to_string()) && !seen.contains(&"另一个名字".to_string()),
        "{seen:?}"
    );
    // without customer.view at all: 403
    let role = app.role("no-customers", &["org.view"], "all").await;
    let (_, nobody) = app.person("nobody", a, role).await;
    assert_error(
        &app.get("/api/v1/customers", &nobody).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
}

async fn sharing_and_masked_phones(app: TestApp) {
    let root = app.root_id().await;
    let (_, owner) = rep(
        &app,
        root,
        "owner",
        &["customer.view", "customer.edit", "phone.view"],
    )
    .await;
    let (colleague_id, colleague) = rep(&app, root, "colleague", REP_PERMS).await;
    let c = create(
        &app,
        &owner,
        json!({"name": "共享客户", "phone": "13800001234"}),
    )
    .await;
    let id = c["id"].as_i64().unwrap();
    assert_eq!(c["phone"], "13800001234");
    assert_error(
        &app.get(&format!("/api/v1/customers/{id}"), &colleague)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/customers/{id}/shares/{colleague_id}"),
            Some(&owner),
            Some(json!({"can_edit": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, seen) = app
        .get(&format!("/api/v1/customers/{id}"), &colleague)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["phone"], "138****1234", "masked without phone.view");
    assert_eq!(seen["can_edit"], false);
    assert_error(
        &app.patch(
            &format!("/api/v1/customers/{id}"),
            &colleague,
            json!({"notes": "x"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    app.call(
        Method::PUT,
        &format!("/api/v1/customers/{id}/shares/{colleague_id}"),
        Some(&owner),
        Some(json!({"can_edit": true})),
    )
    .await;
    let (status, _) = app
        .patch(
            &format!("/api/v1/customers/{id}"),
            &colleague,
            json!({"notes": "一起跟进"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, shares) = app
        .get(&format!("/api/v1/customers/{id}/shares"), &owner)
        .await;
    assert_eq!(shares[0]["can_edit"], true);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/customers/{id}/shares/{colleague_id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &app.get(&format!("/api/v1/customers/{id}"), &colleague)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    // the timeline keeps who did what; changes of phones are masked too
    let (_, timeline) = app
        .get(&format!("/api/v1/customers/{id}/timeline"), &owner)
        .await;
    let actions: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"share") && actions.contains(&"unshare") && actions.contains(&"update"),
        "{actions:?}"
    );
}

async fn pool_claim_limit_and_auto_return(app: TestApp) {
    let root = app.root_id().await;
    let admin = &app.admin_token;
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/customer-pool-settings"),
            Some(admin),
            Some(json!({"return_after_days": 30, "claim_limit": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &app.call(
            Method::PUT,
            &format!("/api/v1/orgs/{root}/customer-pool-settings"),
            Some(admin),
            Some(json!({"return_after_days": 0, "claim_limit": 1})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
        Some("return_after_days"),
    );
    let first = create(&app, admin, json!({"name": "公海一", "owner_id": null})).await;
    let second = create(&app, admin, json!({"name": "公海二", "owner_id": null})).await;
    assert_eq!(first["in_pool"], true);
    let (rep_id, rep_token) = rep(&app, root, "pool_rep", REP_PERMS).await;
    // a 本人 rep sees the pool of his org
    assert_eq!(names(&app, &rep_token, "in_pool=true").await.len(), 2);
    let (status, claimed) = app
        .post(
            &format!("/api/v1/customers/{}/claim", first["id"]),
            &rep_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["owner_id"], rep_id);
    let over = app
        .post(
            &format!("/api/v1/customers/{}/claim", second["id"]),
            &rep_token,
            json!({}),
        )
        .await;
    assert_error(&over, StatusCode::CONFLICT, "claim_limit", None);
    let (_, still) = app
        .get(&format!("/api/v1/customers/{}", second["id"]), admin)
        .await;
    assert_eq!(still["in_pool"], true, "a refused claim changes nothing");
    assert_error(
        &app.post(
            &format!("/api/v1/customers/{}/claim", first["id"]),
            admin,
            json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "not_in_pool",
        None,
    );
    // release, then the second fits
    let (status, released) = app
        .post(
            &format!("/api/v1/customers/{}/release", first["id"]),
            &rep_token,
            json!({"reason": "暂无需求"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["in_pool"], true);
    let (status, _) = app
        .post(
            &format!("/api/v1/customers/{}/claim", second["id"]),
            &rep_token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // bulk assignment by the admin, then 31 days without follow-up send it back
    let (status, moved) = app
        .post(
            "/api/v1/customers/assign",
            admin,
            json!({"customer_ids": [first["id"], second["id"]], "owner_id": rep_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["moved"], 1);
    assert_error(
        &app.post(
            "/api/v1/customers/assign",
            admin,
            json!({"customer_ids": [first["id"], 999999], "owner_id": rep_id}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &app.post(
            "/api/v1/customers/assign",
            &rep_token,
            json!({"customer_ids": [first["id"]], "owner_id": rep_id}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    let db = &app.running.state.db;
    sqlx::query(&format!(
        "UPDATE customers SET last_touched_at = last_touched_at - {} WHERE id = {}",
        31 * 86_400_000_i64,
        first["id"]
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    // a follow-up on the second keeps it
    let (status, _) = app
        .post(
            &format!("/api/v1/customers/{}/activities", second["id"]),
            &rep_token,
            json!({"kind": "call", "content": "约了下周拜访", "next_follow_up_on": "2026-01-05"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        keping_store::customers::return_idle_to_pool(db)
            .await
            .unwrap(),
        1
    );
    let (_, back) = app
        .get(&format!("/api/v1/customers/{}", first["id"]), admin)
        .await;
    assert_eq!(back["in_pool"], true);
    let (_, timeline) = app
        .get(
            &format!("/api/v1/customers/{}/timeline", first["id"]),
            admin,
        )
        .await;
    let actions: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    for a in ["create", "claim", "release", "assign", "auto_return"] {
        assert!(actions.contains(&a), "{a} missing in {actions:?}");
    }
    let (_, reminders) = app.get("/api/v1/customers/reminders", &rep_token).await;
    assert_eq!(
        reminders["due_follow_ups"][0]["name"], "公海二",
        "{reminders}"
    );
}

async fn merge_repoints_everything(app: TestApp) {
    let admin = &app.admin_token;
    let keep = create(
        &app,
        admin,
        json!({"name": "合并甲", "phone": "13600000001"}),
    )
    .await;
    let other = create(
        &app,
        admin,
        json!({"name": "合并甲", "company": "甲乙公司", "email": "a@jy.cn", "tags": ["老客户"]}),
    )
    .await;
    assert_eq!(
        other["duplicates"].as_array().unwrap().len(),
        0,
        "different company: no name duplicate"
    );
    let (k, o) = (keep["id"].as_i64().unwrap(), other["id"].as_i64().unwrap());
    app.post(
        &format!("/api/v1/customers/{k}/contacts"),
        admin,
        json!({"name": "联系人一"}),
    )
    .await;
    app.post(
        &format!("/api/v1/customers/{o}/contacts"),
        admin,
        json!({"name": "联系人二", "mobile": "13600000002"}),
    )
    .await;
    app.post(
        &format!("/api/v1/customers/{o}/activities"),
        admin,
        json!({"kind": "visit", "content": "上门拜访"}),
    )
    .await;
    assert_error(
        &app.post(
            &format!("/api/v1/customers/{k}/merge"),
            admin,
            json!({"merge_id": k}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "same_customer",
        Some("merge_id"),
    );
    let (status, merged) = app
        .post(
            &format!("/api/v1/customers/{k}/merge"),
            admin,
            json!({"merge_id": o}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["company"], "甲乙公司");
    assert_eq!(merged["email"], "a@jy.cn");
    assert_eq!(merged["phone"], "13600000001");
    assert_eq!(merged["tags"], json!(["老客户"]));
    assert_error(
        &app.get(&format!("/api/v1/customers/{o}"), admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (_, one) = app.get(&format!("/api/v1/customers/{k}"), admin).await;
    assert_eq!(one["contacts"].as_array().unwrap().len(), 2);
    let (_, timeline) = app
        .get(&format!("/api/v1/customers/{k}/timeline"), admin)
        .await;
    let items = timeline.as_array().unwrap();
    assert!(items.iter().any(|i| i["summary"] == "上门拜访"));
    assert!(items.iter().any(|i| i["action"] == "merge"));
    assert!(
        items.iter().filter(|i| i["action"] == "create").count() == 2,
        "both histories: {timeline}"
    );
    assert_eq!(names(&app, admin, "q=13600000002").await, vec!["合并甲"]);
    assert_eq!(
        names(&app, admin, &format!("q={}", enc("甲乙"))).await,
        vec!["合并甲"]
    );
}

/// An xlsx workbook from rows of cells (numbers where the value parses as one, else text).
fn xlsx(rows: &[Vec<Value>]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (r, c) = (r as u32, c as u16);
            match cell {
                Value::Number(n) => {
                    sheet.write_number(r, c, n.as_f64().unwrap()).unwrap();
                }
                Value::String(s) if s.starts_with("date:") => {
                    sheet
                        .write_number_with_format(r, c, s[5..].parse::<f64>().unwrap(), &date)
                        .unwrap();
                }
                Value::String(s) if s.starts_with('=') => {
                    sheet.write_formula(r, c, s.as_str()).unwrap();
                }
                Value::String(s) => {
                    sheet.write_string(r, c, s).unwrap();
                }
                _ => {}
            }
        }
    }
    book.save_to_buffer().unwrap()
}

async fn upload(
    app: &TestApp,
    token: &str,
    file_name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_string()),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    let resp = app
        .client
        .post(format!("{}/api/v1/customers/imports", app.url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An import sent with a progress token is followed while it runs: the phases come in order and
/// end in done with every row counted; only its sender may follow it.
async fn import_progress_is_followed(app: TestApp) {
    let admin = app.admin_token.clone();
    const ROWS: usize = 6000;
    let mut csv = String::from("客户名称,联系人,手机\n");
    for i in 0..ROWS {
        csv.push_str(&format!("进度客户{i},联系人{i},139{i:08}\n"));
    }
    let send = |token: &str| {
        let form = reqwest::multipart::Form::new()
            .text("progress", token.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.clone().into_bytes()).file_name("进度.csv"),
            );
        app.client
            .post(format!("{}/api/v1/customers/imports", app.url))
            .bearer_auth(&admin)
            .multipart(form)
            .send()
    };
    // a bad token is refused before any file is read
    let resp = app
        .client
        .post(format!("{}/api/v1/customers/imports", app.url))
        .bearer_auth(&admin)
        .multipart(reqwest::multipart::Form::new().text("progress", "no spaces allowed"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let token = "imp-7f3a.x_1";
    let answered = std::sync::atomic::AtomicBool::new(false);
    let upload = async {
        let resp = send(token).await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        answered.store(true, std::sync::atomic::Ordering::SeqCst);
        (status, body)
    };
    let poll = async {
        let mut phases: Vec<String> = Vec::new();
        let order = ["reading", "checking", "writing", "done"];
        let started = Instant::now();
        loop {
            let (status, p) = app
                .get(
                    &format!("/api/v1/customers/imports/progress/{token}"),
                    &admin,
                )
                .await;
            if status == StatusCode::OK {
                let phase = p["phase"].as_str().unwrap().to_string();
                let at = order
                    .iter()
                    .position(|o| *o == phase)
                    .expect("a known phase");
                if let Some(last) = phases.last() {
                    let before = order.iter().position(|o| o == last).unwrap();
                    assert!(at >= before, "{phase} after {last}");
                }
                if phase != "reading" {
                    assert_eq!(p["rows_total"], ROWS, "{p}");
                }
                assert!(p["rows_done"].as_u64().unwrap() <= ROWS as u64, "{p}");
                if phases.last() != Some(&phase) {
                    phases.push(phase.clone());
                }
                if phase == "done" {
                    assert_eq!(p["rows_done"], ROWS, "{p}");
                    return phases;
                }
            } else {
                assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
                if answered.load(std::sync::atomic::Ordering::SeqCst) {
                    // the upload ended without its token being followed: its answer says why
                    return phases;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(120), "{phases:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ((status, outcome), phases) = tokio::join!(upload, poll);
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    assert_eq!(outcome["created"], ROWS, "{outcome}");
    assert_eq!(phases.last().map(String::as_str), Some("done"));
    assert!(phases.len() >= 2, "the import was seen running: {phases:?}");

    let (status, p) = app
        .get(
            &format!("/api/v1/customers/imports/progress/{token}"),
            &admin,
        )
        .await;
    assert_eq!((status, &p["phase"]), (StatusCode::OK, &json!("done")));
    let root = app.root_id().await;
    let (_, other) = rep(&app, root, "progress-other", REP_PERMS).await;
    let (status, _) = app
        .get(
            &format!("/api/v1/customers/imports/progress/{token}"),
            &other,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get("/api/v1/customers/imports/progress/never-sent", &admin)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// An import of many batches (and more search terms than are written at once) leaves every row
/// findable: by a part of its name, its contact, a phone fragment and its tag, and its phone
/// catches a later import's duplicate.
async fn large_import_is_searchable(app: TestApp) {
    let admin = &app.admin_token;
    // about 39 search terms a row: more than the import writes at once
    const ROWS: usize = 3000;
    let mut csv = String::from("客户名称,联系人,手机,标签\n");
    for i in 0..ROWS {
        csv.push_str(&format!("批量客户{i:04},联系人{i:04},137{i:08},批量{i}\n"));
    }
    let (status, outcome) = upload(&app, admin, "批量.csv", csv.into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    assert_eq!(outcome["created"], ROWS, "{outcome}");
    for i in [0, 1, 199, 200, 1777, ROWS - 1] {
        let name = format!("批量客户{i:04}");
        let found = vec![name.clone()];
        assert_eq!(
            names(&app, admin, &format!("q={}", enc(&format!("客户{i:04}")))).await,
            found
        );
        assert_eq!(
            names(&app, admin, &format!("q={}", enc(&format!("联系人{i:04}")))).await,
            found
        );
        assert_eq!(
            names(&app, admin, &format!("q=0000{i:04}")).await,
            found,
            "phone of row {i}"
        );
        assert_eq!(
            names(&app, admin, &format!("tag={}", enc(&format!("批量{i}")))).await,
            found
        );
    }
    let again = format!("客户名称,手机\n又一个客户,137{:08}\n", ROWS - 1);
    let (status, outcome) = upload(&app, admin, "again.csv", again.into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    assert_eq!(outcome["created"], 0, "{outcome}");
    assert_eq!(
        outcome["duplicates"][0]["reason"], "same_phone",
        "{outcome}"
    );
}

/// Moves the customer id sequence on, so that the next customer is `next_id`.
async fn skip_customer_ids(app: &TestApp, next_id: i64) {
    let db = keping_store::Db::open(app.config.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let sql = match app.backend {
        Backend::Sqlite => {
            format!(
                "UPDATE sqlite_sequence SET seq = {} WHERE name = 'customers'",
                next_id - 1
            )
        }
        Backend::Postgres => format!(
            "SELECT setval(pg_get_serial_sequence('customers', 'id'), {})",
            next_id - 1
        ),
    };
    keping_store::Sql::new(&sql)
        .execute(&db.pool)
        .await
        .unwrap();
    db.pool.close().await;
}

/// Search terms live in parts of 32,768 customer ids and a search newest first reads them newest
/// part first, a few parts at a time: matches spread over parts come back whole, in order, and
/// page by page, in every order.
async fn search_reads_the_term_parts_newest_first(app: TestApp) {
    let admin = &app.admin_token;
    let part = 1i64 << keping_domain::customers::TERM_PART_BITS;
    let mut ids = Vec::new();
    for (name, next_id) in [
        ("分段客户甲", None),
        ("分段客户乙", Some(3 * part - 1)),
        ("分段客户丙", None),
        ("不相干的客户", None),
        ("分段客户丁", Some(12 * part + 5)),
    ] {
        if let Some(next) = next_id {
            skip_customer_ids(&app, next).await;
        }
        let created = create(&app, admin, json!({"name": name})).await;
        ids.push(created["id"].as_i64().unwrap());
    }
    // parts 0, 2, 3 and 12: the windows read are 12-11, 10-3 and 2-0
    assert_eq!(ids[1], 3 * part - 1);
    assert_eq!(ids[2], 3 * part);
    assert_eq!(ids[4], 12 * part + 5);
    let newest_first = ["分段客户丁", "分段客户丙", "分段客户乙", "分段客户甲"];
    assert_eq!(
        names(&app, admin, &format!("q={}", enc("分段"))).await,
        newest_first
    );
    assert_eq!(names(&app, admin, "q=fdkh").await, newest_first);
    // two at a time: the second page starts in an older window
    let (status, first) = app
        .get(
            &format!("/api/v1/customers?limit=2&q={}", enc("分段")),
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(item_names(&first), ["分段客户丁", "分段客户丙"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, second) = app
        .get(
            &format!(
                "/api/v1/customers?limit=2&q={}&cursor={}",
                enc("分段"),
                enc(cursor)
            ),
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(item_names(&second), ["分段客户乙", "分段客户甲"]);
    assert!(second["next_cursor"].is_null(), "{second}");
    // by name: every part at once
    let mut by_name = newest_first.map(String::from).to_vec();
    by_name.sort();
    assert_eq!(
        names(&app, admin, &format!("q={}&sort=name", enc("分段"))).await,
        by_name
    );
    // a word of one customer only, in the oldest part
    assert_eq!(
        names(&app, admin, &format!("q={}", enc("客户甲"))).await,
        ["分段客户甲"]
    );
}

/// The number of search terms of one customer, or of all when None, read from the database.
async fn term_count(app: &TestApp, customer_id: Option<i64>) -> i64 {
    let db = keping_store::Db::open(app.config.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let mut sql = keping_store::Sql::new("SELECT COUNT(*) FROM customer_terms");
    if let Some(id) = customer_id {
        sql.push(" WHERE customer_id = ").arg(id);
    }
    let (count,): (i64,) = sql.fetch_one(&db.pool).await.unwrap();
    db.pool.close().await;
    count
}

/// Creates a customer with one contact, as the administrator; answers its id.
async fn create_with_contact(app: &TestApp, customer: Value, contact: &Value) -> i64 {
    let id = create(app, &app.admin_token, customer).await["id"]
        .as_i64()
        .unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/customers/{id}/contacts"),
            &app.admin_token,
            contact.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id
}

/// The term index has no tree by customer: a customer's old terms are found from its search text
/// when it changes or is merged away, and an import's by reading its parts when it is undone. No
/// term outlives what it was made from.
async fn search_terms_go_with_what_made_them(app: TestApp) {
    let admin = &app.admin_token;
    let contact = json!({"name": "联系人老王", "mobile": "13733334444"});
    let changed = create_with_contact(
        &app,
        json!({"name": "旧名称贸易", "phone": "13511112222", "company": "旧公司"}),
        &contact,
    )
    .await;
    let (status, body) = app
        .patch(
            &format!("/api/v1/customers/{changed}"),
            admin,
            json!({"name": "新名称贸易", "company": "新公司", "phone": "13599998888"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for old in ["旧名称", "jmc", "旧公司", "11112222"] {
        assert!(
            names(&app, admin, &format!("q={}", enc(old)))
                .await
                .is_empty(),
            "{old}"
        );
    }
    for new in ["新名称", "xmc", "新公司", "99998888", "老王", "33334444"] {
        assert_eq!(
            names(&app, admin, &format!("q={}", enc(new))).await,
            ["新名称贸易"],
            "{new}"
        );
    }
    // the same customer made afresh has exactly as many terms
    let twin = create_with_contact(
        &app,
        json!({"name": "新名称贸易", "company": "新公司", "phone": "13599998888"}),
        &contact,
    )
    .await;
    let terms = term_count(&app, Some(changed)).await;
    assert!(terms > 20, "{terms}");
    assert_eq!(term_count(&app, Some(twin)).await, terms);
    // merged away: the twin's terms go, the kept one's stay as they were
    let (status, merged) = app
        .post(
            &format!("/api/v1/customers/{changed}/merge"),
            admin,
            json!({"merge_id": twin}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(term_count(&app, Some(twin)).await, 0);
    assert_eq!(term_count(&app, Some(changed)).await, terms);

    // a name of punctuation only has no terms at all, and still changes
    let bare = create(&app, admin, json!({"name": "（-）"})).await["id"]
        .as_i64()
        .unwrap();
    let (status, body) = app
        .patch(
            &format!("/api/v1/customers/{bare}"),
            admin,
            json!({"name": "·-·"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(term_count(&app, Some(bare)).await, 0);

    // undone imports: a few customers (looked up one by one) and more than 4,096 of one part
    // (the part read whole) leave the index as it was
    let before = term_count(&app, None).await;
    for rows in [3, 4200] {
        let mut csv = String::from("客户名称,单位名称,联系人,手机\n");
        for i in 0..rows {
            csv.push_str(&format!(
                "撤销客户{i:05},撤销单位{i},撤销联系人{i},136{i:08}\n"
            ));
        }
        let (status, done) = upload(&app, admin, "撤销.csv", csv.into_bytes(), &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{done}");
        assert_eq!(done["created"], rows, "{done}");
        assert!(term_count(&app, None).await > before + 20 * rows as i64);
        let (status, undone) = app
            .call(
                Method::DELETE,
                &format!("/api/v1/customers/imports/{}", done["import_id"]),
                Some(admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{undone}");
        assert_eq!(undone["removed"], rows, "{undone}");
        assert_eq!(term_count(&app, None).await, before, "{rows} rows undone");
    }
    assert_eq!(
        names(&app, admin, &format!("q={}", enc("新名称"))).await,
        ["新名称贸易"]
    );
}

async fn import_dry_run_undo_and_gbk(app: TestApp) {
    let admin = &app.admin_token;
    let existing = create(
        &app,
        admin,
        json!({"name": "老客户", "phone": "13500000000"}),
    )
    .await;
    let rows = vec![
        vec![json!("2026年第一季度客户名单")],
        vec![
            json!("客户名称"),
            json!("联系人"),
            json!("手机"),
            json!("电子邮箱"),
            json!("生日"),
            json!("意向等级"),
            json!("所属行业"),
            json!("发动机号"),
        ],
        vec![
            json!("星河贸易"),
            json!("周经理"),
            json!(13811112222.0),
            json!("zhou@xh.cn"),
            json!("date:32874"),
            json!("A"),
            json!("贸易"),
            json!("X1"),
        ],
        vec![
            json!("坏电话公司"),
            json!(""),
            json!("12345"),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
        ],
        vec![json!(""), json!("无名氏"), json!(13811113333.0)],
        vec![
            json!("坏邮箱公司"),
            json!(""),
            json!(""),
            json!("not-an-email"),
        ],
        vec![json!("老客户重复"), json!(""), json!(13500000000.0)],
        vec![
            json!("意向错误"),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!("Z"),
        ],
        vec![json!("星河贸易"), json!(""), json!(13811112222.0)],
    ];
    let file = xlsx(&rows);
    let (status, dry) = upload(
        &app,
        admin,
        "客户.xlsx",
        file.clone(),
        &[("dry_run", "true")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["import_id"], Value::Null);
    assert_eq!(dry["header_row"], 2);
    assert_eq!(dry["rows"], 7);
    assert_eq!(dry["accepted"], 1);
    let rejected: Vec<(i64, String, String)> = dry["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["column"].as_str().unwrap_or("").to_string(),
                r["field"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (4, "C".into(), "phone".into()),
            (5, "A".into(), "name".into()),
            (6, "D".into(), "email".into()),
            (8, "F".into(), "intent".into())
        ],
        "{dry}"
    );
    assert_eq!(
        dry["duplicates"],
        json!([
            {"row": 7, "customer_id": existing["id"], "reason": "same_phone", "action": "skipped", "same_as_row": null},
            {"row": 9, "customer_id": null, "reason": "same_as_row", "action": "skipped", "same_as_row": 3}
        ])
    );
    assert_eq!(dry["ignored_columns"], json!(["发动机号"]));
    assert_eq!(
        names(&app, admin, "").await,
        vec!["老客户"],
        "a dry run writes nothing"
    );

    let (status, done) = upload(&app, admin, "客户.xlsx", file, &[("duplicates", "update")]).await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    assert_eq!(
        (done["created"].as_i64(), done["updated"].as_i64()),
        (Some(1), Some(1))
    );
    let import_id = done["import_id"].as_i64().unwrap();
    let (_, star) = app
        .get(&format!("/api/v1/customers?q={}", enc("星河")), admin)
        .await;
    let star = &star["items"][0];
    assert_eq!(star["birthday"], "1990-01-01", "an Excel serial date");
    assert_eq!(star["phone"], "13811112222");
    assert_eq!(star["industry"], "贸易");
    let (_, card) = app
        .get(&format!("/api/v1/customers/{}", star["id"]), admin)
        .await;
    assert_eq!(card["contacts"][0]["name"], "周经理");
    assert_eq!(
        names(&app, admin, "q=zjl").await,
        vec!["星河贸易"],
        "the contact's pinyin initials"
    );
    let (_, old) = app
        .get(&format!("/api/v1/customers/{}", existing["id"]), admin)
        .await;
    assert_eq!(old["name"], "老客户重复", "updated from the sheet");

    // undo: the created one is gone, the updated one as it was; twice is a conflict
    let (status, undone) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/customers/imports/{import_id}"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    assert_eq!(undone, json!({"removed": 1, "restored": 1}));
    assert_eq!(names(&app, admin, "").await, vec!["老客户"]);
    assert_error(
        &app.call(
            Method::DELETE,
            &format!("/api/v1/customers/imports/{import_id}"),
            Some(admin),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "already_undone",
        None,
    );
    assert_error(
        &app.call(
            Method::DELETE,
            "/api/v1/customers/imports/999999",
            Some(admin),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // GBK csv, as Excel in China saves it
    let (gbk, _, _) =
        encoding_rs::GBK.encode("客户名称,联系电话,备注\n华南五金,020-87654321,\"老客户, 介绍\"\n");
    let (status, csv) = upload(&app, admin, "gbk.csv", gbk.into_owned(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{csv}");
    assert_eq!(csv["created"], 1);
    let (_, found) = app
        .get(&format!("/api/v1/customers?q={}", enc("华南")), admin)
        .await;
    assert_eq!(found["items"][0]["phone"], "020-87654321");
    assert_eq!(found["items"][0]["notes"], "老客户, 介绍");

    // broken files: a zip that is no workbook, binary junk, no header, unknown mapping, no file
    let broken = upload(
        &app,
        admin,
        "x.xlsx",
        b"PK\x03\x04garbage".to_vec(),
        &[("dry_run", "true")],
    )
    .await;
    assert_error(
        &broken,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unreadable_file",
        Some("file"),
    );
    let junk = upload(
        &app,
        admin,
        "x.csv",
        vec![0xff, 0xfe, 0x00, 0x81, 0x00],
        &[],
    )
    .await;
    assert_error(
        &junk,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unreadable_file",
        Some("file"),
    );
    let headless = upload(&app, admin, "x.csv", "a,b\n1,2\n".as_bytes().to_vec(), &[]).await;
    assert_error(
        &headless,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unreadable_file",
        Some("file"),
    );
    let mapping = upload(
        &app,
        admin,
        "x.csv",
        "公司,电话\n甲,13800000000\n".as_bytes().to_vec(),
        &[("mapping", r#"{"公司":"name","电话":"fax"}"#)],
    )
    .await;
    assert_error(
        &mapping,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_field",
        Some("mapping"),
    );
    let mapped = upload(
        &app,
        admin,
        "x.csv",
        "公司,电话\n映射公司,13800000009\n".as_bytes().to_vec(),
        &[("mapping", r#"{"公司":"name","电话":"phone"}"#)],
    )
    .await;
    assert_eq!(mapped.0, StatusCode::CREATED, "{}", mapped.1);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/customers/imports",
            Some(admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'a'; 21 * 1024 * 1024]).file_name("big.csv"),
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/customers/imports", app.url))
        .bearer_auth(admin)
        .multipart(form)
        .send()
        .await;
    // the server may answer 413 or cut the upload short; either way nothing is imported
    if let Ok(resp) = resp {
        let got = (
            resp.status(),
            resp.json::<Value>().await.unwrap_or(Value::Null),
        );
        assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None);
    }
    assert!(names(&app, admin, "q=aaaa").await.is_empty());
}

async fn export_imports_back_the_same(app: TestApp) {
    let admin = &app.admin_token;
    let root = app.root_id().await;
    let other_org = app.org("导入机构", "IMP", root).await;
    create(&app, admin, json!({"name": "导出甲", "company": "甲公司", "phone": "13900000001", "kind": "agent", "tags": ["A类", "华东"], "importance": "考虑中", "intent": "B", "birthday": "1985-06-01", "industry": "制造", "notes": "备注一"})).await;
    let b = create(
        &app,
        admin,
        json!({"name": "导出乙", "phone": "021-66668888-12", "email": "b@y.cn", "address": "上海"}),
    )
    .await;
    app.post(
        &format!("/api/v1/customers/{}/contacts", b["id"]),
        admin,
        json!({"name": "乙联系人", "title": "经理", "department": "采购部"}),
    )
    .await;
    let resp = app
        .client
        .get(format!("{}/api/v1/customers/export", app.url))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("spreadsheetml"));
    let bytes = resp.bytes().await.unwrap().to_vec();
    let (status, body) = upload(
        &app,
        admin,
        "export.xlsx",
        bytes,
        &[
            ("duplicates", "import_anyway"),
            ("org_id", &other_org.to_string()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], 2);
    assert_eq!(body["rejected"], json!([]));
    let originals = app
        .all(&format!("/api/v1/customers?sort=name&org_id={root}"), admin)
        .await;
    let copies = app
        .all(
            &format!("/api/v1/customers?sort=name&org_id={other_org}"),
            admin,
        )
        .await;
    assert_eq!(copies.len(), 2);
    let fields = [
        "name",
        "company",
        "phone",
        "kind",
        "tags",
        "importance",
        "intent",
        "birthday",
        "industry",
        "notes",
        "email",
        "address",
    ];
    for copy in &copies {
        let original = originals
            .iter()
            .find(|o| o["name"] == copy["name"])
            .unwrap();
        for f in fields {
            assert_eq!(copy[f], original[f], "{f} of {}", copy["name"]);
        }
        let (_, a) = app
            .get(&format!("/api/v1/customers/{}", original["id"]), admin)
            .await;
        let (_, b) = app
            .get(&format!("/api/v1/customers/{}", copy["id"]), admin)
            .await;
        for f in ["name", "title", "department"] {
            assert_eq!(a["contacts"][0][f], b["contacts"][0][f]);
        }
    }
    // exports are logged, and need their permission
    let (_, log) = app.get("/api/v1/audit?action=export", admin).await;
    assert!(!log["items"].as_array().unwrap().is_empty(), "{log}");
    let (_, viewer) = rep(&app, root, "viewer", &["customer.view"]).await;
    let resp = app
        .client
        .get(format!("{}/api/v1/customers/export", app.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

async fn caller_id_reaches_the_agent(app: TestApp) {
    let root = app.root_id().await;
    let role = app
        .role(
            "agent",
            &["customer.view", "customer.edit", "phone.view"],
            "self",
        )
        .await;
    let (_, agent_token) = app.person("agent1", root, role).await;
    let known = create(
        &app,
        &agent_token,
        json!({"name": "来电客户", "phone": "13312345678"}),
    )
    .await;
    let role = app.role("telephony", &["telephony.notify"], "all").await;
    let (_, phone_system) = app.person("pbx", root, role).await;

    // on PostgreSQL the agent's browser is connected to another instance
    let second = if app.backend == Backend::Postgres {
        Some(app.another_instance().await)
    } else {
        None
    };
    let watch_url = second.as_ref().map_or(app.url.clone(), |r| r.url());
    let browser = app.page_client(&watch_url, "agent1", "person-pass-1").await;
    let resp = browser
        .get(format!("{watch_url}/calls/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let mut buffer = String::new();
    // the stream is live once the server holds the subscription; give it a moment
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, answer) = app
        .post(
            "/api/v1/calls/incoming",
            &phone_system,
            json!({"phone": "+86 133 1234 5678", "agent_employee_no": "E-agent1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["customer"],
        Value::Null,
        "the phone system itself may not see customers"
    );
    let event = next_event(&mut stream, "call", "来电客户", &mut buffer).await;
    assert!(
        event.contains(&format!("/customers/{}", known["id"])),
        "{event}"
    );

    let (status, answer) = app
        .post(
            "/api/v1/calls/incoming",
            &phone_system,
            json!({"phone": "13999990000", "agent_employee_no": "E-agent1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["customer"], Value::Null);
    let event = next_event(&mut stream, "call", "13999990000", &mut buffer).await;
    assert!(
        event.contains("/customers/new?phone=13999990000"),
        "{event}"
    );

    // the admin's token may see customers: the answer carries the card
    let (_, answer) = app
        .post(
            "/api/v1/calls/incoming",
            &app.admin_token,
            json!({"phone": "13312345678", "agent_employee_no": "E-agent1"}),
        )
        .await;
    assert_eq!(answer["customer"]["name"], "来电客户");
    let (_, calls) = app
        .get(
            &format!("/api/v1/customers/{}/calls", known["id"]),
            &agent_token,
        )
        .await;
    assert_eq!(calls.as_array().unwrap().len(), 2, "{calls}");

    assert_error(
        &app.post(
            "/api/v1/calls/incoming",
            &phone_system,
            json!({"phone": "13312345678", "agent_employee_no": "nobody"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_agent",
        Some("agent_employee_no"),
    );
    assert_error(
        &app.post(
            "/api/v1/calls/incoming",
            &agent_token,
            json!({"phone": "13312345678", "agent_employee_no": "E-agent1"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_error(
        &app.post(
            "/api/v1/calls/incoming",
            &phone_system,
            json!({"phone": 13312345678_i64, "agent_employee_no": "E-agent1"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        Some("phone"),
    );
}

/// Reads the SSE stream until an event named `name` whose data contains `needle` arrives.
async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    name: &str,
    needle: &str,
    buffer: &mut String,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
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

/// The pages with a session cookie: list and live search by pinyin initials, the card with its
/// timeline and follow-up form, a new customer with its duplicate warning, the pool's claim
/// button, the import page's dry run, and English.
async fn customer_pages(app: TestApp) {
    let admin = &app.admin_token;
    let zs = create(
        &app,
        admin,
        json!({"name": "张三", "company": "华为", "phone": "13800138000"}),
    )
    .await;
    create(&app, admin, json!({"name": "公海客户", "owner_id": null})).await;
    let page = app
        .page_client(&app.url, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let get = |path: &str| {
        let page = page.clone();
        let url = format!("{}{path}", app.url);
        async move {
            let resp = page.get(url).send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (status, html) = get("/customers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("客户档案") && html.contains("张三") && html.contains("公海客户"),
        "{html}"
    );
    // the live search answers only the table
    let resp = page
        .get(format!("{}/customers?q=zs", app.url))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    let table = resp.text().await.unwrap();
    assert!(
        table.contains("张三") && !table.contains("公海客户") && !table.contains("<html"),
        "{table}"
    );
    let (_, pool) = get("/customers?pool=1").await;
    assert!(
        pool.contains("公海客户") && !pool.contains(">张三<"),
        "{pool}"
    );

    // the card, then a follow-up through its form
    let id = zs["id"].as_i64().unwrap();
    let (status, card) = get(&format!("/customers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        card.contains("13800138000") && card.contains("activity-form"),
        "{card}"
    );
    let resp = page
        .post(format!("{}/customers/{id}/activities", app.url))
        .form(&[
            ("kind", "visit"),
            ("content", "上门演示"),
            ("next_follow_up_on", "2030-01-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, card) = get(&format!("/customers/{id}?saved=recorded")).await;
    assert!(
        card.contains("上门演示") && card.contains("2030-01-01") && card.contains("id=\"notice\""),
        "{card}"
    );
    let (status, missing) = get("/customers/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    // a new customer with the same phone: created, and the duplicate is named on its card
    let (_, form) = get("/customers/new?phone=13800138000").await;
    assert!(
        form.contains("value=\"13800138000\""),
        "caller-ID fills the number in"
    );
    let resp = page
        .post(format!("{}/customers", app.url))
        .form(&[
            ("name", "张三分身"),
            ("phone", "13800138000"),
            ("kind", "lead"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("id=\"duplicates\"") && html.contains(&format!("/customers/{id}")),
        "{html}"
    );
    let resp = page
        .post(format!("{}/customers", app.url))
        .form(&[("name", ""), ("phone", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // the pool: claim from the card
    let (_, pooled) = app
        .get(&format!("/api/v1/customers?q={}", enc("公海客户")), admin)
        .await;
    let pooled = pooled["items"][0]["id"].as_i64().unwrap();
    let resp = page
        .post(format!("{}/customers/{pooled}/claim", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, one) = app.get(&format!("/api/v1/customers/{pooled}"), admin).await;
    assert_eq!(one["in_pool"], false);

    // the import page: a dry run lists the bad row
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                "客户名称,手机\n新客户,13700000000\n坏客户,123\n"
                    .as_bytes()
                    .to_vec(),
            )
            .file_name("a.csv"),
        )
        .text("duplicates", "skip")
        .text("dry_run", "1");
    let resp = page
        .post(format!("{}/customers/import", app.url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("import-rejections") && html.contains("<td>3</td>"),
        "{html}"
    );

    // reminders on the home page, and English
    let (_, home) = get("/").await;
    assert!(home.contains("id=\"reminders\""), "{home}");
    page.post(format!("{}/locale", app.url))
        .form(&[("locale", "en"), ("back", "/customers")])
        .send()
        .await
        .unwrap();
    let (_, en) = get("/customers").await;
    assert!(
        en.contains("Public pool") && en.contains("New customer"),
        "{en}"
    );
    // the export link of the page is an xlsx file
    let resp = page
        .get(format!("{}/customers/export?q=zs", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"));
}

/// Changing customers through pages: the edit form with a custom field (also a list column),
/// contacts added and edited, the owner from the card and in bulk from the list, sharing, and a
/// merge that asks first; a rep sees no edit form for a customer he may only read.
async fn customer_edit_pages(app: TestApp) {
    let admin = &app.admin_token;
    let root = app.root_id().await;
    let (status, _) = app
        .post(
            &format!("/api/v1/orgs/{root}/customer-fields"),
            admin,
            json!({"code": "frame_no", "label": "车架号", "kind": "text"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (rep_id, rep_token) = rep(&app, root, "pagerep", REP_PERMS).await;
    let a = create(
        &app,
        admin,
        json!({"name": "李四商行", "phone": "13900139000"}),
    )
    .await;
    let b = create(
        &app,
        admin,
        json!({"name": "李四商行（重复）", "company": "李四"}),
    )
    .await;
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let page = app
        .page_client(&app.url, "admin", crate::harness::ADMIN_PASSWORD)
        .await;
    let get = |path: String| {
        let page = page.clone();
        let url = format!("{}{path}", app.url);
        async move {
            let resp = page.get(url).send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let page = page.clone();
        let url = format!("{}{path}", app.url);
        async move {
            let resp = page.post(url).form(&form).send().await.unwrap();
            let location = resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            (resp.status(), location, resp.text().await.unwrap())
        }
    };

    // the edit form shows the stored values and the custom field
    let (status, form) = get(format!("/customers/{a}/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        form.contains("value=\"李四商行\"")
            && form.contains("车架号")
            && form.contains("name=\"custom.frame_no\""),
        "{form}"
    );
    let edit = |name: &str, phone: &str| {
        vec![
            ("name", name.to_string()),
            ("kind", "customer".to_string()),
            ("is_company", "1".to_string()),
            ("phone", phone.to_string()),
            ("region", "华东".to_string()),
            ("tags", "老客户，VIP".to_string()),
            ("importance", "urgent".to_string()),
            ("intent", "B".to_string()),
            ("custom.frame_no", "LSVAB123".to_string()),
            ("notes", String::new()),
        ]
    };
    let (status, _, html) = post(format!("/customers/{a}/edit"), edit("李四商行", "123")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"edit-error\"") && html.contains("value=\"华东\""),
        "the form keeps what was typed: {html}"
    );
    let (status, location, _) = post(
        format!("/customers/{a}/edit"),
        edit("李四商贸", "13900139001"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some(&*format!("/customers/{a}?saved=saved"))
    );
    let (_, one) = app.get(&format!("/api/v1/customers/{a}"), admin).await;
    assert_eq!(one["name"], "李四商贸");
    assert_eq!(one["phone"], "13900139001");
    assert_eq!(one["tags"], json!(["老客户", "VIP"]));
    assert_eq!(one["importance"], "urgent");
    assert_eq!(one["custom"]["frame_no"], "LSVAB123");
    let (_, list) = get("/customers".to_string()).await;
    assert!(
        list.contains("车架号") && list.contains("LSVAB123"),
        "a column per custom field: {list}"
    );
    let (_, card) = get(format!("/customers/{a}")).await;
    assert!(
        card.contains("LSVAB123") && card.contains("customer-edit"),
        "{card}"
    );

    // contacts: add, a bad phone, edit
    let (status, form) = get(format!("/customers/{a}/contacts/new")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("contact-form"), "{form}");
    let contact = |phone: &str| {
        vec![
            ("name", "王经理".to_string()),
            ("department", "采购部".to_string()),
            ("title", "经理".to_string()),
            ("gender", "male".to_string()),
            ("approx_age", "45".to_string()),
            ("phone", phone.to_string()),
            ("mobile", "13700137000".to_string()),
            ("important_dates", "结婚纪念日 2020-05-20".to_string()),
        ]
    };
    let (status, _, html) = post(format!("/customers/{a}/contacts"), contact("12-ab")).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a landline needs its area code"
    );
    assert!(
        html.contains("contact-error") && html.contains("采购部"),
        "{html}"
    );
    let (status, location, _) = post(
        format!("/customers/{a}/contacts"),
        contact("010-62345678-123"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some(&*format!("/customers/{a}?saved=contact_saved"))
    );
    let (_, one) = app.get(&format!("/api/v1/customers/{a}"), admin).await;
    let k = &one["contacts"][0];
    assert_eq!(k["department"], "采购部");
    assert_eq!(k["phone"], "010-62345678-123");
    assert_eq!(
        k["important_dates"],
        json!([{"label": "结婚纪念日", "date": "2020-05-20"}])
    );
    let k = k["id"].as_i64().unwrap();
    let (status, form) = get(format!("/customers/{a}/contacts/{k}/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        form.contains("value=\"王经理\"") && form.contains("结婚纪念日 2020-05-20"),
        "{form}"
    );
    let mut changed = contact("010-62345678-123");
    changed[2] = ("title", "总经理".to_string());
    let (status, _, _) = post(format!("/customers/{a}/contacts/{k}"), changed).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, one) = app.get(&format!("/api/v1/customers/{a}"), admin).await;
    assert_eq!(one["contacts"][0]["title"], "总经理");
    let (status, _) = get(format!("/customers/{a}/contacts/999999/edit")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // the owner from the card, then both in bulk from the list
    let (_, card) = get(format!("/customers/{a}")).await;
    assert!(
        card.contains("owner-form") && card.contains("pagerep"),
        "{card}"
    );
    let (status, location, _) = post(
        format!("/customers/{a}/owner"),
        vec![("owner_id", rep_id.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location:?}");
    let (_, one) = app.get(&format!("/api/v1/customers/{a}"), &rep_token).await;
    assert_eq!(one["owner_id"], rep_id);
    let (_, list) = get("/customers".to_string()).await;
    assert!(
        list.contains("bulk-assign") && list.contains("name=\"ids\""),
        "{list}"
    );
    let (status, location, _) = post(
        "/customers/assign".to_string(),
        vec![
            ("ids", a.to_string()),
            ("ids", b.to_string()),
            ("owner_id", rep_id.to_string()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/customers?saved=assigned"));
    assert_eq!(names(&app, &rep_token, "sort=name").await.len(), 2);
    let (status, _, _) = post(
        "/customers/assign".to_string(),
        vec![("owner_id", rep_id.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "nothing ticked");

    // sharing with a colleague, read-only, then no more
    let (colleague_id, colleague) = rep(&app, root, "pagecolleague", REP_PERMS).await;
    let (status, _, _) = post(
        format!("/customers/{a}/shares"),
        vec![
            ("user_id", colleague_id.to_string()),
            ("access", "read".to_string()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, card) = get(format!("/customers/{a}")).await;
    assert!(
        card.contains("pagecolleague") && card.contains("只读"),
        "{card}"
    );
    let (status, one) = app.get(&format!("/api/v1/customers/{a}"), &colleague).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["can_edit"], false);
    let colleague_page = app
        .page_client(&app.url, "pagecolleague", "person-pass-1")
        .await;
    let resp = colleague_page
        .get(format!("{}/customers/{a}/edit", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "read-only: no edit form"
    );
    let (status, _, _) = post(
        format!("/customers/{a}/shares/{colleague_id}/delete"),
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = app.get(&format!("/api/v1/customers/{a}"), &colleague).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // merge: find the duplicate, see both, confirm
    let (_, pick) = get(format!("/customers/{a}/merge?q={}", enc("重复"))).await;
    assert!(
        pick.contains(&format!("/customers/{a}/merge?other={b}")),
        "{pick}"
    );
    let (_, confirm) = get(format!("/customers/{a}/merge?other={b}")).await;
    assert!(
        confirm.contains("merge-confirm")
            && confirm.contains("李四商行（重复）")
            && confirm.contains("无法撤销"),
        "{confirm}"
    );
    let (_, still) = app.get(&format!("/api/v1/customers/{b}"), admin).await;
    assert_eq!(still["id"], b, "showing the confirmation merges nothing");
    let (status, location, _) = post(
        format!("/customers/{a}/merge"),
        vec![("other", b.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some(&*format!("/customers/{a}?saved=merged"))
    );
    let (status, _) = app.get(&format!("/api/v1/customers/{b}"), admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, one) = app.get(&format!("/api/v1/customers/{a}"), admin).await;
    assert_eq!(
        one["company"], "李四",
        "the blank company is filled from the duplicate"
    );
}

/// Figures, not a timed test: `cargo test -p keping --test e2e customer_figures -- --ignored --nocapture`
/// (KEPING_FIGURES_ROWS sets the size, default 20000; with KEPING_TEST_PG_URL also on PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn customer_figures() {
    let rows: usize = std::env::var("KEPING_FIGURES_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn(backend).await else {
            continue;
        };
        let admin = &app.admin_token;
        let surnames = ["张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴"];
        let given = [
            "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰",
        ];
        let mut csv = String::from("客户名称,公司名称,联系人,手机,所属行业\n");
        for i in 0..rows {
            let name = format!(
                "{}{}{}",
                surnames[i % 10],
                given[(i / 10) % 12],
                given[(i / 120) % 12]
            );
            csv.push_str(&format!(
                "{name},{}号贸易有限公司,{}经理,1{:010},制造\n",
                i,
                surnames[(i / 7) % 10],
                3_000_000_000u64 + i as u64
            ));
        }
        let started = Instant::now();
        let (status, body) = upload(&app, admin, "big.csv", csv.into_bytes(), &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let import = started.elapsed();
        let queries = [
            "zwf",
            "张伟",
            "贸易有限",
            "300000123",
            "12345",
            "王经理",
            "wjl",
        ];
        let mut lines = Vec::new();
        for q in queries {
            let mut times = Vec::new();
            for _ in 0..40 {
                let t = Instant::now();
                let (status, _) = app
                    .get(&format!("/api/v1/customers?q={}", enc(q)), admin)
                    .await;
                assert_eq!(status, StatusCode::OK);
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            lines.push(format!(
                "q={q}: p50 {:.1} ms, p95 {:.1} ms",
                times[times.len() / 2],
                times[times.len() * 95 / 100]
            ));
        }
        let mut times = Vec::new();
        for _ in 0..40 {
            let t = Instant::now();
            let (status, _) = app
                .get(
                    "/api/v1/customers?industry=%E5%88%B6%E9%80%A0&limit=50",
                    admin,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let started = Instant::now();
        let resp = app
            .client
            .get(format!("{}/api/v1/customers/export", app.url))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        let size = resp.bytes().await.unwrap().len();
        let export = started.elapsed();
        eprintln!(
            "{backend:?}: import {rows} rows {:.1} s; list of 50 with a filter p50 {:.1} ms p99 {:.1} ms; export {rows} rows {:.1} s ({} KiB)\n  {}",
            import.as_secs_f64(),
            times[20],
            times[39],
            export.as_secs_f64(),
            size / 1024,
            lines.join("\n  ")
        );
    }
}
