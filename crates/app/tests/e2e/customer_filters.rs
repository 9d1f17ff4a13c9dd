//! Saved filters (常用筛选) of the customer list: per person, checked, applied, deleted.

use crate::harness::assert_error;
use crate::{both, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

both!(saved_filters_are_per_person);

async fn saved_filters_are_per_person(app: TestApp) {
    let admin = &app.admin_token;
    let root = app.root_id().await;
    let role = app
        .role("rep", &["customer.view", "customer.edit"], "org")
        .await;
    let (_, rep) = app.person("rep1", root, role).await;
    for (name, kind) in [("张三", "lead"), ("李四", "customer"), ("王五", "lead")] {
        let (status, body) = app
            .post(
                "/api/v1/customers",
                admin,
                json!({"name": name, "kind": kind}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, list) = app.get("/api/v1/customers/saved-filters", &rep).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));

    // paging is left out; the rest must be a list query
    let (status, saved) = app
        .post(
            "/api/v1/customers/saved-filters",
            &rep,
            json!({"name": " 我的线索 ", "query": "?kind=lead&sort=name&cursor=abc&limit=5"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_eq!(saved["name"], "我的线索");
    assert_eq!(saved["query"], "kind=lead&sort=name");
    let id = saved["id"].as_i64().unwrap();
    // applying it lists what it names
    let (_, page) = app
        .get(
            &format!("/api/v1/customers?{}", saved["query"].as_str().unwrap()),
            &rep,
        )
        .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"张三") && names.contains(&"王五"));

    // bad input
    assert_error(
        &app.post(
            "/api/v1/customers/saved-filters",
            &rep,
            json!({"name": "我的线索", "query": "kind=customer"}),
        )
        .await,
        StatusCode::CONFLICT,
        "name_taken",
        Some("name"),
    );
    assert_error(
        &app.post(
            "/api/v1/customers/saved-filters",
            &rep,
            json!({"name": "  ", "query": "kind=lead"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_length",
        Some("name"),
    );
    assert_error(
        &app.post(
            "/api/v1/customers/saved-filters",
            &rep,
            json!({"name": "坏的", "query": "sort=shoe_size"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        Some("query"),
    );
    assert_error(
        &app.post(
            "/api/v1/customers/saved-filters",
            &rep,
            json!({"name": "坏的", "query": "owner_id=abc"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        Some("query"),
    );
    let missing = app
        .post(
            "/api/v1/customers/saved-filters",
            &rep,
            json!({"name": "x"}),
        )
        .await;
    assert!(missing.0.is_client_error(), "{missing:?}");
    let wrong = app
        .post(
            "/api/v1/customers/saved-filters",
            &rep,
            json!({"name": 5, "query": "kind=lead"}),
        )
        .await;
    assert!(wrong.0.is_client_error(), "{wrong:?}");

    // another person sees none of them and cannot delete them
    let (_, theirs) = app.get("/api/v1/customers/saved-filters", admin).await;
    assert_eq!(theirs, json!([]));
    let del = |token: &str, id: i64| {
        let token = token.to_string();
        let app = &app;
        async move {
            app.call(
                Method::DELETE,
                &format!("/api/v1/customers/saved-filters/{id}"),
                Some(&token),
                None,
            )
            .await
            .0
        }
    };
    assert_eq!(del(admin, id).await, StatusCode::NOT_FOUND);
    assert_eq!(del(&rep, 999_999).await, StatusCode::NOT_FOUND);

    // the page: save the current filter, open it, delete it
    let page = app.page_client(&app.url, "rep1", "person-pass-1").await;
    let resp = page
        .post(format!("{}/customers/saved-filters", app.url))
        .form(&[
            ("name", "公海线索"),
            ("q", "张"),
            ("kind", "lead"),
            ("pool", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, list) = app.get("/api/v1/customers/saved-filters", &rep).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "公海线索")
        .unwrap();
    assert_eq!(mine["query"], "q=%E5%BC%A0&kind=lead");
    let other_id = mine["id"].as_i64().unwrap();
    let resp = page
        .get(format!("{}/customers/saved-filters/{other_id}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()["location"],
        "/customers?q=%E5%BC%A0&kind=lead"
    );
    let html = crate::harness::html(&page, format!("{}/customers", app.url)).await;
    assert!(
        html.contains("公海线索") && html.contains("我的线索"),
        "{html}"
    );
    let resp = page
        .post(format!(
            "{}/customers/saved-filters/{other_id}/delete",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(del(&rep, id).await, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/api/v1/customers/saved-filters", &rep).await;
    assert_eq!(list, json!([]));
}
