//! Customer grading (客户分级): scoring models and their versions, inputs and deduction events
//! per customer and period, runs, grades with their breakdowns, history, diffs and exports.

use crate::api::customers::{xlsx_response, MAX_IMPORT_BYTES};
use crate::auth::Caller;
use crate::error::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::AppState;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use keping_domain::grading::{
    self as rules, GradingSettings, Inputs, LifecycleRule, ScoringModel, Values,
};
use keping_store::customers::ImportSource;
use keping_store::grading::{
    self as store, Grade, HistoryPoint, InputsImport, ModelSummary, ModelVersion, PeriodInputs,
    Run, RunDiff, RunFilter, RunRequest, RunResult, ScoringEvent, StarLevelOverride,
};
use keping_store::grading_settings::{self, GradingSettingsInForce};
use keping_store::Page;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    let imports = OpenApiRouter::new()
        .routes(routes!(import_inputs))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES));
    OpenApiRouter::new()
        .routes(routes!(list_models, create_model))
        .routes(routes!(get_model, update_model))
        .routes(routes!(preview))
        .routes(routes!(list_metrics))
        .routes(routes!(get_inputs, put_inputs))
        .routes(routes!(list_events, add_event))
        .routes(routes!(list_runs, create_run))
        .routes(routes!(get_run))
        .routes(routes!(run_results))
        .routes(routes!(run_diff))
        .routes(routes!(export_run))
        .routes(routes!(customer_grade))
        .routes(routes!(grade_history))
        .routes(routes!(set_star_override, clear_star_override))
        .routes(routes!(
            get_grading_settings,
            put_grading_settings,
            inherit_grading_settings
        ))
        .merge(imports)
}

#[derive(Serialize, ToSchema)]
struct ModelList {
    items: Vec<ModelSummary>,
    next_cursor: Option<String>,
}

/// Every scoring model the caller may use, the built-in templates (composite, key_account,
/// points_deduction) first.
#[utoipa::path(get, path = "/api/v1/scoring-models", tag = "grading", security(("bearer" = [])),
    responses((status = 200, body = ModelList), (status = 403, body = ErrorBody)))]
async fn list_models(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ModelList>, ApiError> {
    Ok(Json(ModelList {
        items: store::list_models(&state.db, &caller.scope).await?,
        next_cursor: None,
    }))
}

/// A scoring model in the format of API.md, and optionally the org whose subtree uses it
/// (default the caller's org).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewModel {
    org_id: Option<i64>,
    name: String,
    scale: f64,
    #[schema(value_type = Vec<Object>)]
    criteria: Vec<rules::Criterion>,
    #[schema(value_type = Vec<Object>)]
    grades: Vec<rules::GradeBand>,
}

/// Create a scoring model. Weights above 0, known metrics, bands without overlaps or gaps
/// (the error says where), ranges with from ≠ to, and grades from 0 up are required.
#[utoipa::path(post, path = "/api/v1/scoring-models", tag = "grading", security(("bearer" = [])), request_body = NewModel,
    responses((status = 201, body = ModelVersion), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_model(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewModel>,
) -> Result<(StatusCode, Json<ModelVersion>), ApiError> {
    let model = ScoringModel {
        name: body.name,
        scale: body.scale,
        criteria: body.criteria,
        grades: body.grades,
    };
    let created = store::create_model(&state.db, &caller.scope, body.org_id, model).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, IntoParams)]
struct VersionQuery {
    /// A version number; default the current one.
    version: Option<i64>,
}

/// One model at one version, with the list of its versions.
#[utoipa::path(get, path = "/api/v1/scoring-models/{id}", tag = "grading", security(("bearer" = [])), params(VersionQuery),
    responses((status = 200, body = ModelVersion), (status = 404, body = ErrorBody)))]
async fn get_model(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> Result<Json<ModelVersion>, ApiError> {
    Ok(Json(
        store::get_model(&state.db, &caller.scope, id, q.version).await?,
    ))
}

/// Save a changed model: a new version; results keep the version they were computed with.
/// Built-in templates are read-only (409): create a model from one instead.
#[utoipa::path(put, path = "/api/v1/scoring-models/{id}", tag = "grading", security(("bearer" = [])), request_body = Object,
    responses((status = 200, body = ModelVersion), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_model(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(model): ApiJson<ScoringModel>,
) -> Result<Json<ModelVersion>, ApiError> {
    Ok(Json(
        store::update_model(&state.db, &caller.scope, id, model).await?,
    ))
}

/// A sample customer for a preview.
#[derive(Deserialize, ToSchema)]
struct Sample {
    #[serde(default)]
    name: Option<String>,
    /// Criterion or metric code → number or text.
    #[schema(value_type = Object)]
    #[serde(default)]
    values: Values,
    /// Event type → count, for deductions.
    #[serde(default)]
    events: HashMap<String, u32>,
}

#[derive(Deserialize, ToSchema)]
struct PreviewRequest {
    #[schema(value_type = Object)]
    model: ScoringModel,
    samples: Vec<Sample>,
}

#[derive(Serialize, ToSchema)]
struct PreviewLine {
    name: Option<String>,
    #[schema(value_type = Object)]
    scored: rules::Scored,
}

#[derive(Serialize, ToSchema)]
struct Preview {
    items: Vec<PreviewLine>,
}

/// Score sample customers with a model that is not saved (the editor's live preview); ranking
/// criteria rank the samples among themselves. Nothing is stored.
#[utoipa::path(post, path = "/api/v1/scoring-models/preview", tag = "grading", security(("bearer" = [])), request_body = PreviewRequest,
    responses((status = 200, body = Preview), (status = 422, body = ErrorBody)))]
async fn preview(
    caller: Caller,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> Result<Json<Preview>, ApiError> {
    if !caller.scope.has("grading.view") && !caller.scope.has("grading.manage") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs the permission 'grading.view'",
        ));
    }
    req.model.check()?;
    if req.samples.len() > 200 {
        return Err(ApiError::invalid(
            "samples",
            "too_many",
            "at most 200 samples",
        ));
    }
    let inputs: Vec<Inputs> = req
        .samples
        .iter()
        .map(|s| Inputs {
            values: s.values.clone(),
            events: s.events.clone(),
        })
        .collect();
    let refs: Vec<&Inputs> = inputs.iter().collect();
    let scored = rules::score_all(&req.model, &refs);
    Ok(Json(Preview {
        items: req
            .samples
            .into_iter()
            .zip(scored)
            .map(|(s, scored)| PreviewLine {
                name: s.name,
                scored,
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
struct MetricItem {
    code: &'static str,
    name_zh: &'static str,
    name_en: &'static str,
    unit: &'static str,
}

#[derive(Serialize, ToSchema)]
struct MetricList {
    items: Vec<MetricItem>,
    next_cursor: Option<String>,
}

/// The metrics a criterion may read (`"input": "metric:<code>"`); rates are in percent.
#[utoipa::path(get, path = "/api/v1/scoring-metrics", tag = "grading", security(("bearer" = [])),
    responses((status = 200, body = MetricList)))]
async fn list_metrics(_caller: Caller) -> Json<MetricList> {
    Json(MetricList {
        items: rules::METRICS
            .iter()
            .map(|m| MetricItem {
                code: m.code,
                name_zh: m.name_zh,
                name_en: m.name_en,
                unit: m.unit,
            })
            .collect(),
        next_cursor: None,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InputsBody {
    /// Criterion or metric code → number or text; null removes a value. Keys left out keep their value.
    #[schema(value_type = Object)]
    values: serde_json::Map<String, serde_json::Value>,
}

/// Set a customer's inputs for a period (`YYYY-MM`): metrics are numbers, manual criteria numbers
/// or (for a text table) one of its texts; a number under a metric criterion's own code is an
/// assessor's score for it.
#[utoipa::path(put, path = "/api/v1/customers/{id}/scoring-inputs/{period}", tag = "grading", security(("bearer" = [])), request_body = InputsBody,
    responses((status = 200, body = PeriodInputs), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_inputs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, period)): ApiPath<(i64, String)>,
    ApiJson(body): ApiJson<InputsBody>,
) -> Result<Json<PeriodInputs>, ApiError> {
    Ok(Json(
        store::put_inputs(&state.db, &caller.scope, id, &period, body.values).await?,
    ))
}

/// A customer's inputs and deduction events for a period.
#[utoipa::path(get, path = "/api/v1/customers/{id}/scoring-inputs/{period}", tag = "grading", security(("bearer" = [])),
    responses((status = 200, body = PeriodInputs), (status = 404, body = ErrorBody)))]
async fn get_inputs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, period)): ApiPath<(i64, String)>,
) -> Result<Json<PeriodInputs>, ApiError> {
    Ok(Json(
        store::get_inputs(&state.db, &caller.scope, id, &period).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    /// An event type some model deducts points for (e.g. non_channel, delivery_lapse).
    kind: String,
    /// YYYY-MM-DD; the event counts in that month's period.
    occurred_on: String,
    note: Option<String>,
}

/// Record a violation or lapse for deductions.
#[utoipa::path(post, path = "/api/v1/customers/{id}/scoring-events", tag = "grading", security(("bearer" = [])), request_body = NewEvent,
    responses((status = 201, body = ScoringEvent), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewEvent>,
) -> Result<(StatusCode, Json<ScoringEvent>), ApiError> {
    let e = store::add_event(
        &state.db,
        &caller.scope,
        id,
        &body.kind,
        &body.occurred_on,
        body.note.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

#[derive(Deserialize, IntoParams)]
struct PeriodQuery {
    /// YYYY-MM
    period: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct EventList {
    items: Vec<ScoringEvent>,
    next_cursor: Option<String>,
}

/// A customer's deduction events, of one period when given.
#[utoipa::path(get, path = "/api/v1/customers/{id}/scoring-events", tag = "grading", security(("bearer" = [])), params(PeriodQuery),
    responses((status = 200, body = EventList), (status = 404, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PeriodQuery>,
) -> Result<Json<EventList>, ApiError> {
    Ok(Json(EventList {
        items: store::list_events(&state.db, &caller.scope, id, q.period.as_deref()).await?,
        next_cursor: None,
    }))
}

/// Import a period's inputs from a sheet. Multipart: `file` (xlsx, xls or csv in UTF-8 or GBK);
/// `period` (YYYY-MM); `dry_run` (true: check only, 200; default false: write, 201). One row per
/// customer, named by 客户编号 / code, customer_id or 客户名称; other columns are metrics (by code or
/// name: 销量, 销售额, 毛利额…) or criteria (by code or name). Rejected rows are reported with their
/// row and column and not written.
#[utoipa::path(post, path = "/api/v1/scoring-inputs/imports", tag = "grading", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "multipart/form-data"),
    responses((status = 200, body = InputsImport, description = "dry run"), (status = 201, body = InputsImport), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import_inputs(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<InputsImport>), ApiError> {
    let mut multipart = multipart
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", r.body_text()))?;
    let mut file = None;
    let mut period = None;
    let mut dry_run = false;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ApiError::new(e.status(), "invalid_body", e.body_text())),
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "file" => {
                file = Some(ImportSource {
                    file_name: file_name.unwrap_or_else(|| "upload".into()),
                    bytes: bytes.to_vec(),
                })
            }
            "period" => period = Some(text),
            "dry_run" => dry_run = text == "true",
            _ => {}
        }
    }
    let file =
        file.ok_or_else(|| ApiError::invalid("file", "required", "send the sheet as 'file'"))?;
    let period = period
        .ok_or_else(|| ApiError::invalid("period", "required", "name the period, YYYY-MM"))?;
    let outcome = store::import_inputs(&state.db, &caller.scope, &period, &file, dry_run).await?;
    let status = if dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRun {
    model_id: i64,
    /// YYYY-MM
    period: String,
    /// Only this org's subtree (within the caller's scope); default the caller's whole scope.
    org_id: Option<i64>,
}

/// Grade every customer in the caller's scope with the model's current version for the period.
/// All or nothing: a run that fails leaves earlier results as they were.
#[utoipa::path(post, path = "/api/v1/scoring-runs", tag = "grading", security(("bearer" = [])), request_body = NewRun,
    responses((status = 201, body = Run), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewRun>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    let run = store::run(
        &state.db,
        &caller.scope,
        RunRequest {
            model_id: body.model_id,
            period: body.period,
            org_id: body.org_id,
            trigger: "manual",
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[derive(Deserialize, IntoParams)]
struct RunListQuery {
    model_id: Option<i64>,
    /// YYYY-MM
    period: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Runs the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/scoring-runs", tag = "grading", security(("bearer" = [])), params(RunListQuery),
    responses((status = 200, body = Page<Run>)))]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RunListQuery>,
) -> Result<Json<Page<Run>>, ApiError> {
    let filter = RunFilter {
        model_id: q.model_id,
        period: q.period,
    };
    Ok(Json(
        store::list_runs(
            &state.db,
            &caller.scope,
            &filter,
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

/// One run: model version, period, how many were graded and the grade distribution.
#[utoipa::path(get, path = "/api/v1/scoring-runs/{id}", tag = "grading", security(("bearer" = [])),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)))]
async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Run>, ApiError> {
    Ok(Json(store::get_run(&state.db, &caller.scope, id).await?))
}

#[derive(Deserialize, IntoParams)]
struct ResultsQuery {
    /// Only this grade.
    grade: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A run's results for the customers the caller may see, best first.
#[utoipa::path(get, path = "/api/v1/scoring-runs/{id}/results", tag = "grading", security(("bearer" = [])), params(ResultsQuery),
    responses((status = 200, body = Page<RunResult>), (status = 404, body = ErrorBody)))]
async fn run_results(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ResultsQuery>,
) -> Result<Json<Page<RunResult>>, ApiError> {
    Ok(Json(
        store::run_results(
            &state.db,
            &caller.scope,
            id,
            q.grade.as_deref(),
            page_limit(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
struct DiffQuery {
    /// Another run of the same model; default the run before this one.
    against: Option<i64>,
}

/// Who moved up and who moved down against the previous run (or `against`).
#[utoipa::path(get, path = "/api/v1/scoring-runs/{id}/diff", tag = "grading", security(("bearer" = [])), params(DiffQuery),
    responses((status = 200, body = RunDiff), (status = 404, body = ErrorBody)))]
async fn run_diff(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<RunDiff>, ApiError> {
    Ok(Json(
        store::run_diff(&state.db, &caller.scope, id, q.against).await?,
    ))
}

/// A run's results as an xlsx workbook, one column per criterion. Logged.
#[utoipa::path(get, path = "/api/v1/scoring-runs/{id}/export", tag = "grading", security(("bearer" = [])),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 404, body = ErrorBody)))]
async fn export_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let bytes = store::export_xlsx(&state.db, &caller.scope, id).await?;
    Ok(xlsx_response(bytes, &format!("grades-{id}.xlsx")))
}

#[derive(Deserialize, IntoParams)]
struct GradeQuery {
    /// Default: the model of the latest run that graded the customer.
    model_id: Option<i64>,
    /// YYYY-MM; default the latest period graded.
    period: Option<String>,
}

/// A customer's grade with its per-criterion breakdown (the lines' `weighted` add up to `score`).
#[utoipa::path(get, path = "/api/v1/customers/{id}/grades", tag = "grading", security(("bearer" = [])), params(GradeQuery),
    responses((status = 200, body = Grade), (status = 404, body = ErrorBody)))]
async fn customer_grade(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<GradeQuery>,
) -> Result<Json<Grade>, ApiError> {
    Ok(Json(
        store::customer_grade(
            &state.db,
            &caller.scope,
            id,
            q.model_id,
            q.period.as_deref(),
        )
        .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
struct HistoryQuery {
    model_id: i64,
}

#[derive(Serialize, ToSchema)]
struct HistoryList {
    items: Vec<HistoryPoint>,
    next_cursor: Option<String>,
}

/// A customer's grades under a model over time, oldest period first.
#[utoipa::path(get, path = "/api/v1/customers/{id}/grades/history", tag = "grading", security(("bearer" = [])), params(HistoryQuery),
    responses((status = 200, body = HistoryList), (status = 404, body = ErrorBody)))]
async fn grade_history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryList>, ApiError> {
    Ok(Json(HistoryList {
        items: store::grade_history(&state.db, &caller.scope, id, q.model_id).await?,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StarOverrideBody {
    /// 0 to 3 stars.
    level: i64,
    /// YYYY-MM-DD: holds for runs of periods up to this date's; absent or null for a manual
    /// override that holds until removed.
    until: Option<String>,
}

/// Override a customer's star level (service level: manual, or until a fixed date); the runs
/// after it use the override instead of the contribution points.
#[utoipa::path(put, path = "/api/v1/customers/{id}/star-override", tag = "grading", security(("bearer" = [])), request_body = StarOverrideBody,
    responses((status = 200, body = StarLevelOverride), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_star_override(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<StarOverrideBody>,
) -> Result<Json<StarLevelOverride>, ApiError> {
    Ok(Json(
        store::set_star_override(
            &state.db,
            &caller.scope,
            id,
            body.level,
            body.until.as_deref(),
        )
        .await?,
    ))
}

/// Remove a customer's star override; later runs count contribution points again.
#[utoipa::path(delete, path = "/api/v1/customers/{id}/star-override", tag = "grading", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn clear_star_override(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    store::clear_star_override(&state.db, &caller.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The lifecycle rules (first match wins) and star thresholds in force at an org: its own, an
/// ancestor's or the built-in ones (SPEC §4.4; 100 / 300 / 1,000 contribution points).
#[utoipa::path(get, path = "/api/v1/orgs/{id}/grading-settings", tag = "grading", security(("bearer" = [])),
    responses((status = 200, body = GradingSettingsInForce), (status = 404, body = ErrorBody)))]
async fn get_grading_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<GradingSettingsInForce>, ApiError> {
    Ok(Json(
        grading_settings::get(&state.db, &caller.scope, id).await?,
    ))
}

/// An org's own grading settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GradingSettingsBody {
    /// `[{"category","all":[{"field","op","value"}…],"any":[…]}…]`: fields `new_this_year`,
    /// `sales_amount`, `batches`, `collection_rate`, `return_rate`, `arrears`, `sales_change_pct`,
    /// `collection_change_points`; ops `<`, `<=`, `>`, `>=`, `=`.
    #[schema(value_type = Vec<Object>)]
    lifecycle_rules: Vec<LifecycleRule>,
    /// Contribution points for 1, 2, … stars (1 to 7, ascending).
    star_thresholds: Vec<f64>,
}

/// Set an org's own grading settings; its subtree inherits them. Runs from then on classify with
/// them; results already stored keep what they were given.
#[utoipa::path(put, path = "/api/v1/orgs/{id}/grading-settings", tag = "grading", security(("bearer" = [])), request_body = GradingSettingsBody,
    responses((status = 200, body = GradingSettingsInForce), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_grading_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<GradingSettingsBody>,
) -> Result<Json<GradingSettingsInForce>, ApiError> {
    let settings = GradingSettings {
        lifecycle_rules: body.lifecycle_rules,
        star_thresholds: body.star_thresholds,
    };
    Ok(Json(
        grading_settings::put(&state.db, &caller.scope, id, Some(&settings)).await?,
    ))
}

/// Drop an org's own grading settings: it inherits its nearest ancestor's (or the built-in ones).
#[utoipa::path(delete, path = "/api/v1/orgs/{id}/grading-settings", tag = "grading", security(("bearer" = [])),
    responses((status = 200, body = GradingSettingsInForce), (status = 404, body = ErrorBody)))]
async fn inherit_grading_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<GradingSettingsInForce>, ApiError> {
    Ok(Json(
        grading_settings::put(&state.db, &caller.scope, id, None).await?,
    ))
}
