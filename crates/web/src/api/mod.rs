//! `/api/v1`: JSON, described by the OpenAPI document at `/api/openapi.json`.

pub(crate) mod accounts;
pub(crate) mod audit;
mod auth;
pub(crate) mod customer_attachments;
pub(crate) mod customer_filters;
pub(crate) mod customer_quality;
pub(crate) mod customers;
pub(crate) mod data;
pub(crate) mod device;
pub(crate) mod evaluation;
mod grading;
mod notify;
mod org;
pub(crate) mod stats;
mod tokens;

use crate::AppState;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(title = "keping API", description = "客评 keping: customer evaluation and customer relationship management. Errors answer {\"error\":{\"code\",\"message\",\"field\"}}; lists answer {\"items\",\"next_cursor\"} and take limit (1–500, default 50) and cursor."),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "org"), (name = "accounts"), (name = "tokens"), (name = "audit"), (name = "evaluation"), (name = "notify"), (name = "customers"), (name = "grading"), (name = "data", description = "Data management: cleanup (数据清理), retention, backup (数据备份)."), (name = "device", description = "For evaluation terminals: the terminal's own token is the bearer."))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(org::router())
        .merge(accounts::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(evaluation::router())
        .merge(device::router())
        .merge(notify::router())
        .merge(customers::router())
        .merge(customer_attachments::router())
        .merge(customer_quality::router())
        .merge(customer_filters::router())
        .merge(data::router())
        .merge(grading::router())
        .merge(stats::router())
}
