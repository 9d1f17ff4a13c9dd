//! Data quality of customer records: per-org completeness rules (inherited), a customer's score,
//! the report per rep and per org within scope, its xlsx export and the page.

use crate::harness::assert_error;
use crate::{both, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both!(quality_rules_scores_and_report);

async fn create(app: &TestApp, token: &str, body: Value) -> i64 {
    let (status, created) = app.post("/api/v1/customers", token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().unwrap()
}

async fn put_rules(app: &TestApp, token: &str, org: i64, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        &format!("/api/v1/orgs/{org}/customer-quality-rules"),
        Some(token),
        Some(body),
    )
    .await
}

async fn quality_rules_scores_and_report(app: TestApp) {
    let admin = &app.admin_token;
    let root = app.root_id().await;
    let a = app.org("甲分行", "BR-A", root).await;
    let b = app.org("乙分行", "BR-B", root).await;
    let rep_role = app
        .role("rep", &["customer.view", "customer.edit"], "self")
        .await;
    let (rep_a_id, rep_a) = app.person("rep_a", a, rep_role).await;
    let (_, rep_b) = app.person("rep_b", b, rep_role).await;
    let head_role = app
        .role(
            "head",
            &[
                "customer.view",
                "customer.export",
                "settings.manage",
                "org.view",
            ],
            "org_and_children",
        )
        .await;
    let (_, head_a) = app.person("head_a", a, head_role).await;

    // the defaults until an org sets its own; a branch inherits the head office's
    let (status, rules) = app
        .get(&format!("/api/v1/orgs/{a}/customer-quality-rules"), admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    assert_eq!(
        rules,
        json!({"required_fields": ["phone", "address", "industry"], "phone_area_code": true, "department_head": true, "min_contacts": 1})
    );

    // bad rules
    assert_error(
        &put_rules(&app, &head_a, a, json!({"required_fields": ["nickname"], "phone_area_code": true, "department_head": false, "min_contacts": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_choice",
        Some("required_fields"),
    );
    assert_error(
        &put_rules(&app, &head_a, a, json!({"required_fields": [], "phone_area_code": true, "department_head": false, "min_contacts": 101})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "out_of_range",
        Some("min_contacts"),
    );
    let wrong_type = put_rules(&app, &head_a, a, json!({"required_fields": "phone", "phone_area_code": true, "department_head": false, "min_contacts": 1})).await;
    assert!(wrong_type.0.is_client_error(), "{wrong_type:?}");
    let missing = put_rules(&app, &head_a, a, json!({"required_fields": []})).await;
    assert!(missing.0.is_client_error(), "{missing:?}");
    // a rep may not set rules; the head of A may not set B's
    let good = json!({"required_fields": ["email", "phone", "phone"], "phone_area_code": true, "department_head": false, "min_contacts": 1});
    assert_eq!(
        put_rules(&app, &rep_a, a, good.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_error(
        &put_rules(&app, &head_a, b, good.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_org",
        Some("org_id"),
    );
    let (status, saved) = put_rules(&app, &head_a, a, good).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["required_fields"], json!(["email", "phone"]));

    // A's rules: phone, e-mail, area codes, one contact = 4 checks
    let full = create(
        &app,
        &rep_a,
        json!({"name": "甲一", "phone": "010-62345678", "email": "a@example.com"}),
    )
    .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/customers/{full}/contacts"),
            &rep_a,
            json!({"name": "王经理", "mobile": "13900000001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // a landline without its area code, no e-mail, no contact: 1 of 4 → 25
    let poor = create(&app, &rep_a, json!({"name": "甲二", "phone": "62345678"})).await;
    // B keeps the defaults (6 checks); only the area-code check passes: 1 of 6 → 17
    let other = create(&app, &rep_b, json!({"name": "乙一"})).await;

    let (status, q) = app
        .get(&format!("/api/v1/customers/{full}/quality"), &rep_a)
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q, json!({"score": 100, "failed": []}));
    let (_, q) = app
        .get(&format!("/api/v1/customers/{poor}/quality"), &rep_a)
        .await;
    assert_eq!(
        q,
        json!({"score": 25, "failed": ["missing.email", "phone_area_code", "min_contacts"]})
    );
    let (_, q) = app
        .get(&format!("/api/v1/customers/{other}/quality"), admin)
        .await;
    assert_eq!(q["score"], 17);
    // another branch's customer and an unknown id are not found
    assert_eq!(
        app.get(&format!("/api/v1/customers/{other}/quality"), &rep_a)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/customers/999999/quality", admin).await.0,
        StatusCode::NOT_FOUND
    );

    // the head of A sees A only: (100 + 25) / 2 = 62.5
    let (status, report) = app.get("/api/v1/customers/quality-report", &head_a).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["total"],
        json!({"id": null, "name": null, "customers": 2, "average_score": 62.5, "complete": 1,
               "failures": {"min_contacts": 1, "missing.email": 1, "phone_area_code": 1}})
    );
    assert_eq!(report["by_rep"].as_array().unwrap().len(), 1);
    assert_eq!(report["by_rep"][0]["id"], rep_a_id);
    assert_eq!(report["by_rep"][0]["name"], "rep_a");
    assert_eq!(report["by_org"][0]["id"], a);
    assert!(!report.to_string().contains("乙分行"), "{report}");
    // everyone: (100 + 25 + 17) / 3 = 47.3; weakest org first
    let (_, report) = app.get("/api/v1/customers/quality-report", admin).await;
    assert_eq!(report["total"]["customers"], 3);
    assert_eq!(report["total"]["average_score"], 47.3);
    let orgs: Vec<&str> = report["by_org"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, vec!["乙分行", "甲分行"]);
    // narrowed to B's subtree; an org out of reach is not found
    let (_, report) = app
        .get(
            &format!("/api/v1/customers/quality-report?org_id={b}"),
            admin,
        )
        .await;
    assert_eq!(report["total"]["customers"], 1);
    assert_eq!(report["total"]["average_score"], 17.0);
    assert_eq!(
        app.get(
            &format!("/api/v1/customers/quality-report?org_id={b}"),
            &head_a
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v1/customers/quality-report?org_id=abc", admin)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // the xlsx: per rep, then per org, each with the total last
    let resp = app
        .client
        .get(format!(
            "{}/api/v1/customers/quality-report/export",
            app.url
        ))
        .bearer_auth(&head_a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap();
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(book.sheet_names(), vec!["按业务员", "按机构"]);
    let sheet = book.worksheet_range("按业务员").unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][..4], ["业务员", "客户数", "平均得分", "完整客户数"]);
    assert_eq!(rows[1][..4], ["rep_a", "2", "62.5", "1"]);
    assert_eq!(rows[2][..4], ["合计", "2", "62.5", "1"]);
    assert_eq!(
        app.get("/api/v1/customers/quality-report/export", &rep_a)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // the page: the report and the rules form
    let page = app.page_client(&app.url, "head_a", "person-pass-1").await;
    let html = crate::harness::html(&page, format!("{}/customers/quality", app.url)).await;
    assert!(
        html.contains("资料质量") && html.contains("62.5") && html.contains("rep_a"),
        "{html}"
    );
    assert!(!html.contains("乙一"));
    let resp = page
        .post(format!("{}/customers/quality/rules", app.url))
        .form(&[("required", "phone"), ("min_contacts", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, rules) = app
        .get(&format!("/api/v1/orgs/{a}/customer-quality-rules"), admin)
        .await;
    assert_eq!(
        rules,
        json!({"required_fields": ["phone"], "phone_area_code": false, "department_head": false, "min_contacts": 0})
    );
    let resp = page
        .post(format!("{}/customers/quality/rules", app.url))
        .form(&[("required", "shoe_size"), ("min_contacts", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().await.unwrap().contains("rules-error"));
}
