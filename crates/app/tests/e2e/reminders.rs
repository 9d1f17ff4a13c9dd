//! Reminders: customers' and contacts' birthdays and important dates of the coming week on the
//! API and the home page, and the daily e-mail: from 08:00, once a day, only with something to
//! remind of, and never to someone who switched it off.

use crate::harness::assert_error;
use crate::{both, TestApp};
use chrono::{Duration, NaiveDate, Utc};
use keping_store::customers::reminders::send_digests;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both!(reminders_on_the_home_page_and_by_email);

/// UTC ms of `hour`:00 on `day` in China time (UTC+8).
fn china_at(day: NaiveDate, hour: u32) -> i64 {
    (day.and_hms_opt(hour, 0, 0).unwrap() - Duration::hours(8))
        .and_utc()
        .timestamp_millis()
}

async fn digests_in_outbox(app: &TestApp) -> Vec<(String, Value)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT target, payload FROM outbox WHERE topic = 'reminders' ORDER BY id")
            .fetch_all(&app.running.state.db.pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(t, p)| (t, serde_json::from_str(&p).unwrap()))
        .collect()
}

async fn reminders_on_the_home_page_and_by_email(app: TestApp) {
    let admin = &app.admin_token;
    let root = app.root_id().await;
    let role = app
        .role("业务员", &["customer.view", "customer.edit"], "self")
        .await;
    let (status, rep) = app
        .post(
            "/api/v1/users",
            admin,
            json!({"username": "rep_li", "password": "person-pass-1", "name": "李业务", "email": "li@example.cn",
                "org_id": root, "roles": [{"role_id": role, "org_id": root}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rep}");
    let rep_token = app.login("rep_li", "person-pass-1").await;
    let today = (Utc::now() + Duration::hours(8)).date_naive();
    let md = |days: i64| (today + Duration::days(days)).format("%m-%d").to_string();
    let this_year = |days: i64| {
        (today + Duration::days(days))
            .format("%Y-%m-%d")
            .to_string()
    };

    let (status, c) = app
        .post(
            "/api/v1/customers",
            &rep_token,
            json!({"name": "寿星公司", "birthday": format!("1980-{}", md(0)), "birthday_reminder": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_i64().unwrap();
    let (status, k) = app
        .post(
            &format!("/api/v1/customers/{id}/contacts"),
            &rep_token,
            json!({"name": "王经理", "birthday": format!("1975-{}", md(2)),
                "important_dates": [
                    {"label": "合作纪念日", "date": format!("2019-{}", md(3))},
                    {"label": "太远的日子", "date": format!("2019-{}", md(10))}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{k}");

    let (status, r) = app.get("/api/v1/customers/reminders", &rep_token).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["birthdays"][0]["name"], "寿星公司");
    assert_eq!(r["birthdays"][0]["date"], this_year(0));
    assert_eq!(
        r["contact_dates"],
        json!([
            {"customer_id": id, "name": "寿星公司", "date": this_year(2), "contact": "王经理"},
            {"customer_id": id, "name": "寿星公司", "date": this_year(3), "contact": "王经理", "occasion": "合作纪念日"}
        ])
    );
    let client = app.page_client(&app.url, "rep_li", "person-pass-1").await;
    let home = crate::harness::html(&client, format!("{}/", app.url)).await;
    assert!(
        home.contains("id=\"reminders-contact_dates\"") && home.contains("王经理 合作纪念日"),
        "{home}"
    );

    // before 08:00 nothing goes out; at 09:00 one e-mail; the same day never again
    let db = app.running.state.db.clone();
    let base = "https://kp.example.cn";
    assert_eq!(
        send_digests(&db, china_at(today, 7), base).await.unwrap(),
        0
    );
    assert_eq!(
        send_digests(&db, china_at(today, 9), base).await.unwrap(),
        1
    );
    assert_eq!(
        send_digests(&db, china_at(today, 18), base).await.unwrap(),
        0
    );
    let sent = digests_in_outbox(&app).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0.contains("li@example.cn"), "{}", sent[0].0);
    let mail = &sent[0].1;
    assert_eq!(
        mail["subject"],
        format!("{} 客户提醒（3 项）", today.format("%Y-%m-%d"))
    );
    let text = mail["text"].as_str().unwrap();
    for part in [
        format!("客户生日（1）：\n· {} 寿星公司", this_year(0)),
        format!("· {} 寿星公司（王经理 · 生日）", this_year(2)),
        format!("· {} 寿星公司（王经理 · 合作纪念日）", this_year(3)),
    ] {
        assert!(text.contains(&part), "{part} missing from {text}");
    }
    assert!(!text.contains("太远的日子"), "{text}");
    // the next day, again
    let tomorrow = today + Duration::days(1);
    assert_eq!(
        send_digests(&db, china_at(tomorrow, 9), base)
            .await
            .unwrap(),
        1
    );

    // switched off: nothing more
    let path = "/api/v1/me/reminder-email";
    let r = app
        .call(
            Method::PUT,
            path,
            Some(&rep_token),
            Some(json!({"on": "no"})),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", None);
    let (status, _) = app
        .call(
            Method::PUT,
            path,
            Some(&rep_token),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, on) = app.get(path, &rep_token).await;
    assert_eq!(on, json!({"on": false}));
    let later = today + Duration::days(2);
    assert_eq!(
        send_digests(&db, china_at(later, 9), base).await.unwrap(),
        0
    );
    // and on again from the account page
    let resp = client
        .post(format!("{}/account/reminders", app.url))
        .form(&[("on", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, on) = app.get(path, &rep_token).await;
    assert_eq!(on, json!({"on": true}));
    assert_eq!(digests_in_outbox(&app).await.len(), 2);
}
