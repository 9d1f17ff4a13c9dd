//! 评价器 on a tablet at the counter: one static page. Everything live (staff card, options,
//! prompts) comes from the device API with the terminal's token, which the page keeps in
//! localStorage; presses wait in a queue there until the server has them (static/kiosk.js).

use super::render;
use crate::i18n::Locale;
use axum::extract::Query;
use axum::response::Response;
use serde::Deserialize;

#[derive(askama::Template)]
#[template(path = "kiosk.html")]
struct KioskPage {
    locale: Locale,
}

#[derive(Deserialize)]
pub struct KioskQuery {
    lang: Option<String>,
}

/// Chinese unless `?lang=en`: the tablet's own browser language says nothing about the customer's.
pub async fn page(Query(q): Query<KioskQuery>) -> Response {
    let locale = q.lang.as_deref().map_or(Locale::Zh, Locale::parse);
    render(&KioskPage { locale })
}
