//! Data quality of customer records (有效客户判断标准): per-org completeness rules, a customer's
//! score, and the report per rep and per org (JSON and xlsx).

use crate::api::customers::xlsx_response;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use keping_store::customers::quality::{self as store, QualityReport, QualityRules};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_rules, put_rules))
        .routes(routes!(customer_quality))
        .routes(routes!(report))
        .routes(routes!(report_export))
}

/// Completeness rules as the API reads and writes them.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesBody {
    /// Fields that must be filled: company, phone, email, address, region, industry, source,
    /// customer_group, importance, intent.
    required_fields: Vec<String>,
    /// Landlines (the customer's and its contacts') carry their area code.
    phone_area_code: bool,
    /// At least one contact is a department head (经理, 主任, 总监…) with name, department, title,
    /// a phone and an e-mail.
    department_head: bool,
    /// At least this many contacts (0–100; 0: no such rule).
    min_contacts: u32,
}

impl From<QualityRules> for RulesBody {
    fn from(r: QualityRules) -> Self {
        RulesBody {
            required_fields: r.required_fields,
            phone_area_code: r.phone_area_code,
            department_head: r.department_head,
            min_contacts: r.min_contacts,
        }
    }
}

/// The completeness rules in force at an org (its own or inherited; the defaults otherwise).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/customer-quality-rules", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = RulesBody), (status = 422, body = ErrorBody)))]
async fn get_rules(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RulesBody>, ApiError> {
    Ok(Json(
        store::rules(&state.db, &caller.scope, id).await?.into(),
    ))
}

/// Set an org's completeness rules; its subtree inherits them (settings.manage). Logged.
#[utoipa::path(put, path = "/api/v1/orgs/{id}/customer-quality-rules", tag = "customers", security(("bearer" = [])), request_body = RulesBody,
    responses((status = 200, body = RulesBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_rules(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RulesBody>,
) -> Result<Json<RulesBody>, ApiError> {
    let rules = QualityRules {
        required_fields: body.required_fields,
        phone_area_code: body.phone_area_code,
        department_head: body.department_head,
        min_contacts: body.min_contacts,
    };
    Ok(Json(
        store::put_rules(&state.db, &caller.scope, id, rules)
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct AssessmentBody {
    /// 0–100: the share of the org's checks the customer passes.
    score: u32,
    /// The checks it fails: missing.<field>, phone_area_code, department_head, min_contacts.
    failed: Vec<String>,
}

/// A customer's quality score under its org's rules; 404 outside the caller's scope.
#[utoipa::path(get, path = "/api/v1/customers/{id}/quality", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = AssessmentBody), (status = 404, body = ErrorBody)))]
async fn customer_quality(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AssessmentBody>, ApiError> {
    let a = store::customer(&state.db, &caller.scope, id).await?;
    Ok(Json(AssessmentBody {
        score: a.score,
        failed: a.failed,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Only customers of this org's subtree.
    org_id: Option<i64>,
}

/// The data-quality report over the customers the caller sees: totals, per owner rep (the pool
/// is the line without id) and per org, weakest average first.
#[utoipa::path(get, path = "/api/v1/customers/quality-report", tag = "customers", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, body = QualityReport), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<QualityReport>, ApiError> {
    Ok(Json(
        store::report(&state.db, &caller.scope, q.org_id).await?,
    ))
}

/// The report as xlsx: a sheet per rep and one per org, with the total last (customer.export).
#[utoipa::path(get, path = "/api/v1/customers/quality-report/export", tag = "customers", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 403, body = ErrorBody)))]
async fn report_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    if !caller.scope.has("customer.export") {
        return Err(keping_store::StoreError::Forbidden("customer.export").into());
    }
    let r = store::report(&state.db, &caller.scope, q.org_id).await?;
    let bytes = store::report_xlsx(&r, caller.locale == Locale::Zh)?;
    Ok(xlsx_response(bytes, "customer-quality.xlsx"))
}
