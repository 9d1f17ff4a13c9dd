//! Customer records (客户档案): customers, contacts, follow-up records, owners, sharing, the
//! public pool, merges, custom fields, imports and exports, and caller-ID for telephony systems.

use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::live::CallEvent;
use crate::AppState;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keping_domain::customers::{DuplicateMode, FieldDef, FieldKind, PoolSettings};
use keping_store::customers::{
    self as store, Activity, Call, Contact, ContactInput, Created, CustomField, Customer,
    CustomerFilter, CustomerInput, ImportOptions, ImportOutcome, ImportPhase, ImportProgress,
    ImportSource, NewActivity, NewCustomer, Reminders, Share, Sort, TimelineItem,
};
use keping_store::Page;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Imports take files up to this size; larger ones answer 413.
pub const MAX_IMPORT_BYTES: usize = 20 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    let imports = OpenApiRouter::new()
        .routes(routes!(import_customers))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES));
    OpenApiRouter::new()
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(get_customer, update_customer))
        .routes(routes!(export_customers))
        .routes(routes!(reminders))
        .routes(routes!(get_reminder_email, put_reminder_email))
        .routes(routes!(timeline))
        .routes(routes!(add_contact))
        .routes(routes!(update_contact, delete_contact))
        .routes(routes!(add_activity))
        .routes(routes!(assign))
        .routes(routes!(list_shares))
        .routes(routes!(put_share, delete_share))
        .routes(routes!(claim))
        .routes(routes!(release))
        .routes(routes!(merge))
        .routes(routes!(list_calls))
        .routes(routes!(get_pool_settings, put_pool_settings))
        .routes(routes!(list_fields, create_field))
        .routes(routes!(undo_import))
        .routes(routes!(import_progress))
        .routes(routes!(incoming_call))
        .merge(imports)
}

/// Create a customer. Besides the customer's fields the body may name `org_id` (default the
/// owner's org) and `owner_id` (default the caller; null puts the customer into the public pool;
/// another rep needs customer.assign). Likely duplicates (same phone, same name and company), also
/// among customers the caller cannot see, are reported in `duplicates` (those without id or name).
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", security(("bearer" = [])), request_body = CustomerInput,
    responses((status = 201, body = Created), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_customer(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    // where it goes is taken out first; the rest must be exactly the customer's fields, read so
    // that a wrong type names its field (serde's flatten would lose the name)
    let mut body = body;
    let org_id = match body.remove("org_id") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::invalid("org_id", "invalid_body", "org_id must be an integer")
        })?),
    };
    let owner_id = match body.remove("owner_id") {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(v) => Some(Some(v.as_i64().ok_or_else(|| {
            ApiError::invalid(
                "owner_id",
                "invalid_body",
                "owner_id must be an integer or null",
            )
        })?)),
    };
    let rest = serde_json::to_vec(&body).expect("a JSON map serialises");
    let Json(input) =
        Json::<CustomerInput>::from_bytes(&rest).map_err(crate::error::json_rejection)?;
    let created = store::create(
        &state.db,
        &caller.scope,
        NewCustomer {
            input,
            org_id,
            owner_id,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Any part of the name, company, code, phone, a contact's name or phone, or pinyin initials (zs finds 张三).
    q: Option<String>,
    /// customer, lead, agent or competitor
    kind: Option<String>,
    owner_id: Option<i64>,
    /// true: only the public pool; false: only owned customers.
    in_pool: Option<bool>,
    /// Only customers in this org's subtree.
    org_id: Option<i64>,
    importance: Option<String>,
    intent: Option<String>,
    tag: Option<String>,
    customer_group: Option<String>,
    industry: Option<String>,
    blacklisted: Option<bool>,
    /// YYYY-MM-DD: follow-ups planned on or before.
    follow_up_due_by: Option<String>,
    /// RFC 3339: created at or after.
    created_from: Option<String>,
    /// RFC 3339: created before.
    created_to: Option<String>,
    /// Custom field conditions `code:op:value`, several joined by `;`; op is eq, gte or lte.
    custom: Option<String>,
    /// Only customers whose latest grade (from the latest grading run that scored them) is this one; needs grading.view.
    grade: Option<String>,
    /// newest (default), name or updated
    sort: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

impl ListQuery {
    pub(crate) fn filter(self) -> Result<CustomerFilter, ApiError> {
        let sort = match self.sort.as_deref() {
            None | Some("") => Sort::default(),
            Some(s) => Sort::parse(s).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "sort is newest, name or updated",
                )
                .field("sort")
            })?,
        };
        let mut custom = Vec::new();
        for cond in self
            .custom
            .iter()
            .flat_map(|c| c.split(';'))
            .filter(|c| !c.trim().is_empty())
        {
            let mut parts = cond.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(code), Some(op), Some(value)) => custom.push((
                    code.trim().to_string(),
                    op.trim().to_string(),
                    value.trim().to_string(),
                )),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!("'{cond}' is not code:op:value"),
                    )
                    .field("custom"))
                }
            }
        }
        Ok(CustomerFilter {
            q: self.q,
            kind: self.kind.filter(|k| !k.is_empty()),
            owner_id: self.owner_id,
            in_pool: self.in_pool,
            org_id: self.org_id,
            importance: self.importance.filter(|k| !k.is_empty()),
            intent: self.intent.filter(|k| !k.is_empty()),
            tag: self.tag.filter(|k| !k.is_empty()),
            customer_group: self.customer_group.filter(|k| !k.is_empty()),
            industry: self.industry.filter(|k| !k.is_empty()),
            blacklisted: self.blacklisted,
            follow_up_due_by: self.follow_up_due_by.filter(|k| !k.is_empty()),
            created_from: crate::api::audit::parse_time(
                "created_from",
                self.created_from.as_deref(),
            )?,
            created_to: crate::api::audit::parse_time("created_to", self.created_to.as_deref())?,
            custom,
            grade: self.grade.filter(|g| !g.trim().is_empty()),
            sort,
        })
    }
}

/// Customers the caller may see, filtered and sorted, a page at a time.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<Customer>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_customers(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<Customer>>, ApiError> {
    let limit = page_limit(q.limit)?;
    let cursor = q.cursor.clone();
    let filter = q.filter()?;
    Ok(Json(
        store::list(&state.db, &caller.scope, &filter, limit, cursor.as_deref()).await?,
    ))
}

/// The filtered list as an xlsx workbook (every page; phones as the caller may see them). Logged.
#[utoipa::path(get, path = "/api/v1/customers/export", tag = "customers", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 403, body = ErrorBody)))]
async fn export_customers(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = q.filter()?;
    let (bytes, _) = store::export_xlsx(&state.db, &caller.scope, &filter).await?;
    Ok(xlsx_response(bytes, "customers.xlsx"))
}

pub fn xlsx_response(bytes: Vec<u8>, file_name: &str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The caller's reminders: birthdays and contacts' dates this week, due follow-ups, customers
/// about to return to the pool. The same list goes out by e-mail every morning (from 08:00) to
/// those whose account has an address, unless they switch it off.
#[utoipa::path(get, path = "/api/v1/customers/reminders", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Reminders), (status = 403, body = ErrorBody)))]
async fn reminders(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Reminders>, ApiError> {
    Ok(Json(store::reminders(&state.db, &caller.scope).await?))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderEmail {
    /// Whether the daily reminder e-mail goes to the caller's address.
    on: bool,
}

#[utoipa::path(get, path = "/api/v1/me/reminder-email", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = ReminderEmail)))]
async fn get_reminder_email(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ReminderEmail>, ApiError> {
    let on = store::reminders::reminder_email(&state.db, caller.scope.user_id).await?;
    Ok(Json(ReminderEmail { on }))
}

/// Switch the caller's daily reminder e-mail on or off.
#[utoipa::path(put, path = "/api/v1/me/reminder-email", tag = "customers", security(("bearer" = [])), request_body = ReminderEmail,
    responses((status = 200, body = ReminderEmail), (status = 422, body = ErrorBody)))]
async fn put_reminder_email(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReminderEmail>,
) -> Result<Json<ReminderEmail>, ApiError> {
    store::reminders::set_reminder_email(&state.db, caller.scope.user_id, body.on).await?;
    Ok(Json(body))
}

/// One customer with its contacts; 404 outside the caller's scope.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody)))]
async fn get_customer(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(store::get(&state.db, &caller.scope, id).await?))
}

/// Change a customer: absent or null fields keep their value, "" clears a text field; changing
/// `kind` (lead → customer, customer ↔ agent) is kept on the timeline as a conversion.
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers", security(("bearer" = [])), request_body = CustomerInput,
    responses((status = 200, body = Customer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_customer(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CustomerInput>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(
        store::update(&state.db, &caller.scope, id, body).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct TimelineQuery {
    /// At most this many follow-ups and as many changes (default 100, max 500).
    limit: Option<i64>,
}

/// Follow-up records and changes (owner moves, pool, merges, conversions, calls) in one stream, newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/timeline", tag = "customers", security(("bearer" = [])), params(TimelineQuery),
    responses((status = 200, body = Vec<TimelineItem>), (status = 404, body = ErrorBody)))]
async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Json<Vec<TimelineItem>>, ApiError> {
    let limit = page_limit(Some(q.limit.unwrap_or(100)))?;
    Ok(Json(
        store::timeline(&state.db, &caller.scope, id, limit).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/customers/{id}/contacts", tag = "customers", security(("bearer" = [])), request_body = ContactInput,
    responses((status = 201, body = Contact), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ContactInput>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(store::add_contact(&state.db, &caller.scope, id, body).await?),
    ))
}

/// Change a contact; absent fields keep their value.
#[utoipa::path(patch, path = "/api/v1/customers/{id}/contacts/{contact_id}", tag = "customers", security(("bearer" = [])), request_body = ContactInput,
    responses((status = 200, body = Contact), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, contact_id)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<ContactInput>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(
        store::update_contact(&state.db, &caller.scope, id, contact_id, body).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/customers/{id}/contacts/{contact_id}", tag = "customers", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, contact_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    store::delete_contact(&state.db, &caller.scope, id, contact_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityBody {
    /// call, visit, email, meeting or note
    kind: String,
    content: String,
    contact_id: Option<i64>,
    /// RFC 3339; default now.
    happened_at: Option<String>,
    /// YYYY-MM-DD: when to follow up next.
    next_follow_up_on: Option<String>,
}

/// Record a follow-up (沟通记录). It restarts the pool clock and sets the next follow-up date.
#[utoipa::path(post, path = "/api/v1/customers/{id}/activities", tag = "customers", security(("bearer" = [])), request_body = ActivityBody,
    responses((status = 201, body = Activity), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_activity(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ActivityBody>,
) -> Result<(StatusCode, Json<Activity>), ApiError> {
    let happened_at = crate::api::audit::parse_time("happened_at", body.happened_at.as_deref())?;
    let a = store::add_activity(
        &state.db,
        &caller.scope,
        id,
        NewActivity {
            kind: body.kind,
            content: body.content,
            contact_id: body.contact_id,
            happened_at,
            next_follow_up_on: body.next_follow_up_on,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// 1 to 1000 customers; all are moved or none.
    customer_ids: Vec<i64>,
    owner_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Moved {
    /// Customers whose owner changed (those already his are left as they are).
    moved: usize,
}

/// Give customers to a rep, one or many at once (customer.assign).
#[utoipa::path(post, path = "/api/v1/customers/assign", tag = "customers", security(("bearer" = [])), request_body = AssignBody,
    responses((status = 200, body = Moved), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Json<Moved>, ApiError> {
    let moved = store::assign(&state.db, &caller.scope, &body.customer_ids, body.owner_id).await?;
    Ok(Json(Moved { moved }))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/shares", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Vec<Share>), (status = 404, body = ErrorBody)))]
async fn list_shares(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Share>>, ApiError> {
    Ok(Json(store::shares(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    /// false: read-only; true: read-write.
    can_edit: bool,
}

/// Share a customer with a colleague, read-only or read-write.
#[utoipa::path(put, path = "/api/v1/customers/{id}/shares/{user_id}", tag = "customers", security(("bearer" = [])), request_body = ShareBody,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_share(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, user_id)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<ShareBody>,
) -> Result<StatusCode, ApiError> {
    store::share(&state.db, &caller.scope, id, user_id, body.can_edit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/customers/{id}/shares/{user_id}", tag = "customers", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_share(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, user_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    store::unshare(&state.db, &caller.scope, id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Claim a customer from the public pool (customer.pool), within the org's claim limit.
#[utoipa::path(post, path = "/api/v1/customers/{id}/claim", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not_in_pool or claim_limit")))]
async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(store::claim(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    reason: Option<String>,
}

/// Put a customer back into the public pool (its owner, or someone who may assign it); the body may be `{}`.
#[utoipa::path(post, path = "/api/v1/customers/{id}/release", tag = "customers", security(("bearer" = [])), request_body = ReleaseBody,
    responses((status = 200, body = Customer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn release(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(
        store::release(&state.db, &caller.scope, id, body.reason).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The duplicate to merge into this customer; it is gone afterwards.
    merge_id: i64,
}

/// Merge a duplicate into this customer: its contacts, follow-ups, history, calls and shares move
/// over, empty fields are filled from it. Both must be the caller's to change (else 404).
#[utoipa::path(post, path = "/api/v1/customers/{id}/merge", tag = "customers", security(("bearer" = [])), request_body = MergeBody,
    responses((status = 200, body = Customer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(
        store::merge(&state.db, &caller.scope, id, body.merge_id).await?,
    ))
}

/// The customer's call log (来电记录), newest first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/calls", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Vec<Call>), (status = 404, body = ErrorBody)))]
async fn list_calls(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Call>>, ApiError> {
    Ok(Json(store::calls(&state.db, &caller.scope, id, 100).await?))
}

/// The public pool's rules in force at an org (its own or inherited).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/customer-pool-settings", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = PoolSettingsBody), (status = 422, body = ErrorBody)))]
async fn get_pool_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PoolSettingsBody>, ApiError> {
    Ok(Json(
        store::pool_settings(&state.db, &caller.scope, id)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSettingsBody {
    /// Owned customers without a follow-up for this many days return to the pool; null: never.
    return_after_days: Option<u32>,
    /// How many customers a rep may own when claiming from the pool.
    claim_limit: u32,
}

impl From<PoolSettings> for PoolSettingsBody {
    fn from(s: PoolSettings) -> Self {
        PoolSettingsBody {
            return_after_days: s.return_after_days,
            claim_limit: s.claim_limit,
        }
    }
}

/// Set an org's pool rules; its subtree inherits them (settings.manage).
#[utoipa::path(put, path = "/api/v1/orgs/{id}/customer-pool-settings", tag = "customers", security(("bearer" = [])), request_body = PoolSettingsBody,
    responses((status = 200, body = PoolSettingsBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_pool_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PoolSettingsBody>,
) -> Result<Json<PoolSettingsBody>, ApiError> {
    let s = PoolSettings {
        return_after_days: body.return_after_days,
        claim_limit: body.claim_limit,
    };
    Ok(Json(
        store::put_pool_settings(&state.db, &caller.scope, id, &s)
            .await?
            .into(),
    ))
}

/// The custom fields in force for customers of an org (defined there or above).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/customer-fields", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Vec<CustomField>), (status = 422, body = ErrorBody)))]
async fn list_fields(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<CustomField>>, ApiError> {
    Ok(Json(store::fields(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldBody {
    /// Letters, digits, '-', '_' and '.'; unique per org.
    code: String,
    label: String,
    /// text, number, date or choice
    kind: String,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    required: bool,
}

/// Define a custom field for the customers of an org and its subtree (settings.manage).
#[utoipa::path(post, path = "/api/v1/orgs/{id}/customer-fields", tag = "customers", security(("bearer" = [])), request_body = FieldBody,
    responses((status = 201, body = CustomField), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_field(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<FieldBody>,
) -> Result<(StatusCode, Json<CustomField>), ApiError> {
    let def = FieldDef {
        code: body.code,
        label: body.label,
        kind: FieldKind::parse_field("kind", &body.kind)?,
        choices: body.choices,
        required: body.required,
    };
    Ok((
        StatusCode::CREATED,
        Json(store::create_field(&state.db, &caller.scope, id, def).await?),
    ))
}

/// Imports followed by a token their caller chose (the form field `progress`), while they run
/// and for an hour after they began. A token belongs to the user who sent it.
#[derive(Default)]
pub struct ImportWatch {
    imports: Mutex<HashMap<Followed, (Instant, Arc<ImportProgress>)>>,
}

/// A user's id and the token he follows an import under.
type Followed = (i64, String);

impl ImportWatch {
    const KEPT: Duration = Duration::from_secs(3600);

    /// Starts following an import of `user_id` under `token` (a token used again starts afresh).
    pub fn follow(&self, user_id: i64, token: String) -> Arc<ImportProgress> {
        let progress = Arc::new(ImportProgress::default());
        let mut imports = self.imports.lock().expect("import watch lock");
        imports.retain(|_, (since, _)| since.elapsed() < Self::KEPT);
        imports.insert((user_id, token), (Instant::now(), progress.clone()));
        progress
    }

    /// How far the import `user_id` follows under `token` has got.
    pub fn get(&self, user_id: i64, token: &str) -> Option<ProgressBody> {
        let imports = self.imports.lock().expect("import watch lock");
        imports
            .get(&(user_id, token.to_string()))
            .filter(|(since, _)| since.elapsed() < Self::KEPT)
            .map(|(_, p)| {
                let (phase, rows_done, rows_total) = p.get();
                ProgressBody {
                    phase,
                    rows_done,
                    rows_total,
                }
            })
    }
}

/// Marks a followed import ended when its request ends, however it ends.
pub struct FinishOnDrop(pub Arc<ImportProgress>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Checks a progress token: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn progress_token(text: &str) -> Result<String, keping_domain::Invalid> {
    let ok = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(keping_domain::Invalid::new(
            "progress",
            "invalid_token",
            "progress is a token of 1 to 64 letters, digits, '-', '_' or '.'",
        ))
    }
}

/// How far a running import has got.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressBody {
    /// reading (the file), checking (rows and duplicates), writing, done (the upload's answer says how it ended).
    pub phase: ImportPhase,
    /// Rows done in this phase.
    pub rows_done: usize,
    /// The file's data rows (0 while it is being read).
    pub rows_total: usize,
}

/// How far an import sent with the form field `progress` has got. Poll it while the upload runs;
/// only the user who sent the import may read it, for an hour after it began.
#[utoipa::path(get, path = "/api/v1/customers/imports/progress/{token}", tag = "customers", security(("bearer" = [])),
    params(("token" = String, Path, description = "the token sent as the form field progress")),
    responses((status = 200, body = ProgressBody), (status = 404, body = ErrorBody)))]
async fn import_progress(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<ProgressBody>, ApiError> {
    state
        .imports
        .get(caller.scope.user_id, &token)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no import of yours is followed under this token",
            )
        })
}

/// Import customers (and a first contact each) from a spreadsheet. The header row is found by
/// itself (a title row above it is fine) and Chinese and English headers are recognised; every
/// rejected row is listed with its row number, column, field and reason. Form fields: `file`
/// (xlsx, xls or csv in UTF-8 or GBK, at most 20 MiB); `mapping` (JSON: sheet header → field:
/// name, company, contact_name, phone, email, address, industry, region, kind, birthday, intent,
/// importance, source, customer_group, tags, notes, code, contact_title, contact_department,
/// hobbies or custom.<code>); `dry_run` (true: check only, 200; default false: import, 201);
/// `duplicates` (skip (default), update or import_anyway); `org_id` (default the caller's org);
/// `progress` (a token of your choosing, 1 to 64 letters, digits, `-`, `_` or `.`: send it before
/// the file and poll `GET /api/v1/customers/imports/progress/{token}` while the upload runs).
#[utoipa::path(post, path = "/api/v1/customers/imports", tag = "customers", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "multipart/form-data"),
    responses((status = 200, body = ImportOutcome, description = "dry run"), (status = 201, body = ImportOutcome), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import_customers(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<ImportOutcome>), ApiError> {
    let mut multipart = multipart
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", r.body_text()))?;
    let mut file: Option<ImportSource> = None;
    let mut mapping = None;
    let mut dry_run = false;
    let mut duplicates = DuplicateMode::Skip;
    let mut org_id = None;
    let mut progress = None;
    let mut _finish = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the file is larger than {} MiB; split it into smaller files",
                        MAX_IMPORT_BYTES / 1024 / 1024
                    ),
                ))
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    e.body_text(),
                ))
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the file is larger than {} MiB; split it into smaller files",
                        MAX_IMPORT_BYTES / 1024 / 1024
                    ),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
            }
        })?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "file" => {
                file = Some(ImportSource {
                    file_name: file_name.unwrap_or_else(|| "upload".into()),
                    bytes: bytes.to_vec(),
                })
            }
            "mapping" if !text().is_empty() => {
                mapping = Some(
                    serde_json::from_str::<HashMap<String, String>>(&text()).map_err(|e| {
                        ApiError::invalid(
                            "mapping",
                            "invalid_mapping",
                            format!("mapping must be a JSON object of header → field: {e}"),
                        )
                    })?,
                )
            }
            "mapping" => {}
            "dry_run" => {
                dry_run = match text().as_str() {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    other => {
                        return Err(ApiError::invalid(
                            "dry_run",
                            "invalid_body",
                            format!("dry_run is true or false, not '{other}'"),
                        ))
                    }
                }
            }
            "duplicates" => duplicates = DuplicateMode::parse_field("duplicates", &text())?,
            "progress" => {
                let token = progress_token(&text())?;
                let p = state.imports.follow(caller.scope.user_id, token);
                _finish = Some(FinishOnDrop(p.clone()));
                progress = Some(p);
            }
            "org_id" => {
                org_id = Some(text().parse::<i64>().map_err(|_| {
                    ApiError::invalid("org_id", "invalid_body", "org_id must be an integer")
                })?)
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown_field",
                    format!("'{other}' is not a field of an import"),
                ))
            }
        }
    }
    let file = file.ok_or_else(|| {
        ApiError::invalid(
            "file",
            "required",
            "send the spreadsheet as the form field 'file'",
        )
    })?;
    if file.bytes.is_empty() {
        return Err(ApiError::invalid(
            "file",
            "unreadable_file",
            "the file is empty",
        ));
    }
    let outcome = store::import(
        &state.db,
        &caller.scope,
        file,
        ImportOptions {
            mapping,
            dry_run,
            duplicates,
            org_id,
            progress,
        },
    )
    .await?;
    let status = if dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

#[derive(Serialize, ToSchema)]
pub struct Undone {
    /// Customers the import created, now removed.
    removed: usize,
    /// Customers the import updated, now as they were.
    restored: usize,
}

/// Undo a whole import.
#[utoipa::path(delete, path = "/api/v1/customers/imports/{id}", tag = "customers", security(("bearer" = [])),
    responses((status = 200, body = Undone), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn undo_import(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Undone>, ApiError> {
    let (removed, restored) = store::undo_import(&state.db, &caller.scope, id).await?;
    Ok(Json(Undone { removed, restored }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingCallBody {
    phone: String,
    agent_employee_no: String,
}

#[derive(Serialize, ToSchema)]
pub struct IncomingCallAnswer {
    /// The matching customer as the caller may see it; null when none (or none he may see).
    customer: Option<Customer>,
    call_id: i64,
}

/// 来电弹屏: a telephony system announces a call (telephony.notify). The agent's browser opens the
/// matching customer card, or a new-customer form with the number filled in; the call is logged.
#[utoipa::path(post, path = "/api/v1/calls/incoming", tag = "customers", security(("bearer" = [])), request_body = IncomingCallBody,
    responses((status = 200, body = IncomingCallAnswer), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn incoming_call(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<IncomingCallBody>,
) -> Result<Json<IncomingCallAnswer>, ApiError> {
    let call = store::incoming_call(
        &state.db,
        &caller.scope,
        &body.phone,
        &body.agent_employee_no,
    )
    .await?;
    state
        .live
        .publish_call(
            &state.db,
            CallEvent {
                agent_id: call.agent_id,
                call_id: call.call_id,
            },
        )
        .await;
    Ok(Json(IncomingCallAnswer {
        customer: call.customer_for_caller,
        call_id: call.call_id,
    }))
}
