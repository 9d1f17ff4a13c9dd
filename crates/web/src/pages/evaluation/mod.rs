//! 服务评价 pages for those who run the counters: windows and their terminals, business types,
//! evaluation settings per org, and the follow-ups negative ratings open.

mod business_types;
mod follow_ups;
mod settings;
mod windows;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/windows", get(windows::list).post(windows::create))
        .route("/windows/{id}", get(windows::show).post(windows::update))
        .route("/windows/{id}/terminals", post(windows::register_terminal))
        .route("/terminals/{id}/revoke", post(windows::revoke_terminal))
        .route("/terminals/{id}/rotate", post(windows::rotate_terminal))
        .route(
            "/business-types",
            get(business_types::page).post(business_types::create),
        )
        .route("/business-types/{id}", post(business_types::rename))
        .route("/business-types/{id}/delete", post(business_types::delete))
        .route(
            "/evaluation-settings",
            get(settings::page).post(settings::save),
        )
        .route("/evaluation-settings/inherit", post(settings::inherit))
        .route("/follow-ups", get(follow_ups::page))
        .route("/follow-ups/{id}/close", post(follow_ups::close))
}
