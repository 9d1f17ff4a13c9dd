//! 客户分级 pages: models with their editor and live preview, runs with the grade distribution
//! and who moved, and a customer's grade card explaining the grade in words and numbers.

use crate::auth::PageCaller;
use crate::i18n::Locale;
use crate::pages::{error_page, render, Shell};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::grading::{self as rules, Inputs, ScoringModel, Value, Values, Why};
use keping_store::grading::{
    self as store, BreakdownLine, Grade, HistoryPoint, ModelSummary, ModelVersion, Run, RunDiff,
    RunFilter, RunRequest, RunResult,
};
use serde::Deserialize;
use std::collections::HashMap;

/// [`number`] for templates, which hand their arguments over by reference.
pub(crate) fn grouped(x: &f64) -> String {
    number(*x)
}

/// A number for people: thousands grouped (2,000,000), no trailing zeros.
fn number(x: f64) -> String {
    let r = rules::round6(x);
    let text = if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    };
    let (sign, unsigned) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |t| ("-", t));
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let mut grouped = String::with_capacity(text.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{fraction}")
    }
}

fn input_text(v: &Option<Value>) -> String {
    match v {
        None => "—".into(),
        Some(Value::Number(n)) => number(*n),
        Some(Value::Text(t)) => t.clone(),
    }
}

/// One breakdown line in words: what was read, which rule gave the score, and its share.
pub fn explain(locale: Locale, l: &BreakdownLine, total_weight: f64) -> String {
    let en = locale.is_en();
    let input = input_text(&l.input);
    let score = number(l.score);
    let rule = match &l.why {
        Why::Missing => {
            return if en {
                "no input for this period: scores 0".into()
            } else {
                "本期没有该项数据,计 0 分".into()
            }
        }
        Why::AsScore { clamped } => match (en, clamped) {
            (true, false) => format!("{input} taken as the score"),
            (true, true) => format!("{input} is outside the scale: counted as {score}"),
            (false, false) => format!("{input} 直接作为得分"),
            (false, true) => format!("{input} 超出分值范围,按 {score} 计"),
        },
        Why::Assessed { .. } => {
            if en {
                format!("the assessor scored {score}")
            } else {
                format!("评估人给分 {score}")
            }
        }
        Why::Linear { from, to, clamped } => {
            let (f, t) = (number(*from), number(*to));
            let reversed = from > to;
            match (en, reversed, clamped) {
                (true, false, false) => format!("{input} within {f}–{t} scales to {score}"),
                (true, true, false) => {
                    format!("{input} within {f}–{t} (lower is better) scales to {score}")
                }
                (true, _, true) => format!("{input} is beyond {f}–{t}: {score}"),
                (false, false, false) => format!("{input} 在 {f}–{t} 之间按比例计 {score} 分"),
                (false, true, false) => format!("{input} 在 {f}–{t} 之间倒序计 {score} 分"),
                (false, _, true) => format!("{input} 超出 {f}–{t},计 {score} 分"),
            }
        }
        Why::Band { min, max, .. } => {
            let (a, b) = (number(*min), number(*max));
            if en {
                format!("{input} lies in the band {a}–{b}: {score}")
            } else {
                format!("{input} 落在 {a}–{b} 档,计 {score} 分")
            }
        }
        Why::NoBand => {
            if en {
                format!("{input} lies in no band: scores 0")
            } else {
                format!("{input} 不在任何档内,计 0 分")
            }
        }
        Why::Rank { rank, of, .. } => {
            if en {
                format!("{input} ranks {rank} of {of}: {score}")
            } else {
                format!("{input} 在 {of} 位客户中排第 {rank} 名,计 {score} 分")
            }
        }
        Why::Percentile { below, of } => {
            let b = number(*below);
            if en {
                format!("{input} is above {b}% of {of} customers: {score}")
            } else {
                format!("{input} 高于 {of} 位客户中的 {b}%,计 {score} 分")
            }
        }
        Why::Mapped => {
            if en {
                format!("{input} counts {score}")
            } else {
                format!("{input} 对应 {score} 分")
            }
        }
        Why::Deducted {
            points,
            max,
            events,
        } => {
            let (p, m) = (number(*points), number(*max));
            if en {
                format!("{events} events deducted {p} of {m} points: {score}")
            } else {
                format!("{events} 次扣 {p} 分(满分 {m}),计 {score} 分")
            }
        }
    };
    let share = format!(
        "{} × {} / {} = {}",
        score,
        number(l.weight),
        number(total_weight),
        number(l.weighted)
    );
    format!("{rule}; {share}")
}

// ---------------------------------------------------------------- models and runs

#[derive(askama::Template)]
#[template(path = "grading.html")]
struct GradingPage {
    shell: Shell,
    models: Vec<ModelSummary>,
    runs: Vec<Run>,
    period: String,
    error: Option<String>,
}

impl GradingPage {
    fn model_name(&self, m: &ModelSummary) -> String {
        match &m.template {
            Some(t) => format!(
                "{} ({})",
                m.name,
                self.shell.t(&format!("grading.template_{t}"))
            ),
            None => m.name.clone(),
        }
    }
}

fn this_month() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m")
        .to_string()
}

pub async fn page(State(state): State<AppState>, caller: PageCaller) -> Response {
    draw(&state, &caller, None).await
}

async fn draw(state: &AppState, caller: &PageCaller, error: Option<String>) -> Response {
    let shell = Shell::new(caller, "grading").crumb("nav.grading", "/grading");
    let models = match store::list_models(&state.db, &caller.scope).await {
        Ok(m) => m,
        Err(e) => return error_page(shell, e),
    };
    let runs = store::list_runs(&state.db, &caller.scope, &RunFilter::default(), 20, None)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = GradingPage {
        shell,
        models,
        runs,
        period: this_month(),
        error,
    };
    crate::pages::render_status(&page, status)
}

#[derive(Deserialize)]
pub struct RunFields {
    model_id: i64,
    #[serde(default)]
    period: String,
}

pub async fn start_run(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<RunFields>,
) -> Response {
    match store::run(
        &state.db,
        &caller.scope,
        RunRequest {
            model_id: f.model_id,
            period: f.period,
            org_id: None,
            trigger: "manual",
        },
    )
    .await
    {
        Ok(run) => Redirect::to(&format!("/grading/runs/{}", run.id)).into_response(),
        Err(e) => {
            let e: crate::error::ApiError = e.into();
            let text = crate::pages::error_text(caller.locale, &e);
            draw(&state, &caller, Some(text)).await
        }
    }
}

#[derive(askama::Template)]
#[template(path = "grading_run.html")]
struct RunPage {
    shell: Shell,
    run: Run,
    results: Vec<RunResult>,
    diff: RunDiff,
    /// JSON for the distribution chart: [[grade, count]…]
    chart: String,
}

pub async fn run_page(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    let shell = Shell::new(&caller, "grading").crumb("nav.grading", "/grading");
    let run = match store::get_run(&state.db, &caller.scope, id).await {
        Ok(r) => r,
        Err(e) => return error_page(shell, e),
    };
    let results = store::run_results(&state.db, &caller.scope, id, None, 200, None)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let diff = match store::run_diff(&state.db, &caller.scope, id, None).await {
        Ok(d) => d,
        Err(e) => return error_page(shell, e),
    };
    let chart = serde_json::to_string(
        &run.distribution
            .iter()
            .map(|(g, n)| (g.clone(), *n))
            .collect::<Vec<_>>(),
    )
    .expect("counts serialise");
    let shell = shell.crumb(
        &format!("{} · {}", run.model_name, run.period),
        &format!("/grading/runs/{id}"),
    );
    render(&RunPage {
        shell,
        run,
        results,
        diff,
        chart,
    })
}

pub async fn export_run(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match store::export_xlsx(&state.db, &caller.scope, id).await {
        Ok(bytes) => crate::api::customers::xlsx_response(bytes, &format!("grades-{id}.xlsx")),
        Err(e) => error_page(Shell::new(&caller, "grading"), e),
    }
}

// ---------------------------------------------------------------- the model editor

#[derive(askama::Template)]
#[template(path = "grading_model.html")]
struct ModelPage {
    shell: Shell,
    model: ModelVersion,
    definition: String,
    samples: String,
    error: Option<String>,
}

const SAMPLES: &str = r#"[
  {"name": "甲", "values": {"sales_amount": 2000000, "sales_growth_yoy": 25, "collection_rate": 92, "return_rate": 6, "manager": 80}},
  {"name": "乙", "values": {"sales_amount": 500000, "sales_growth_yoy": 5, "collection_rate": 99, "return_rate": 1, "manager": 60}}
]"#;

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<i64>,
}

pub async fn model_page(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Query(q): Query<VersionQuery>,
) -> Response {
    let shell = Shell::new(&caller, "grading").crumb("nav.grading", "/grading");
    match store::get_model(&state.db, &caller.scope, id, q.version).await {
        Ok(model) => {
            let definition =
                serde_json::to_string_pretty(&model.definition()).expect("models serialise");
            draw_model(shell, model, definition, None)
        }
        Err(e) => error_page(shell, e),
    }
}

fn draw_model(
    shell: Shell,
    model: ModelVersion,
    definition: String,
    error: Option<String>,
) -> Response {
    let shell = shell.crumb(
        &model.name.clone(),
        &format!("/grading/models/{}", model.id),
    );
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    crate::pages::render_status(
        &ModelPage {
            shell,
            model,
            definition,
            samples: SAMPLES.to_string(),
            error,
        },
        status,
    )
}

#[derive(Deserialize)]
pub struct ModelFields {
    #[serde(default)]
    definition: String,
    #[serde(default)]
    samples: String,
}

fn parse_model(locale: Locale, json: &str) -> Result<ScoringModel, String> {
    let model: ScoringModel = serde_json::from_str(json).map_err(|e| {
        format!(
            "{}: {e}",
            locale.pick(
                "模型格式有误",
                "the model is not valid JSON of the model format"
            )
        )
    })?;
    model
        .check()
        .map_err(|e| format!("{}: {}", e.field, e.message))?;
    Ok(model)
}

/// Saves the edited definition as a new version (or, for a template, as a new model).
pub async fn save_model(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<ModelFields>,
) -> Response {
    let shell = Shell::new(&caller, "grading").crumb("nav.grading", "/grading");
    let current = match store::get_model(&state.db, &caller.scope, id, None).await {
        Ok(m) => m,
        Err(e) => return error_page(shell, e),
    };
    let model = match parse_model(caller.locale, &f.definition) {
        Ok(m) => m,
        Err(text) => return draw_model(shell, current, f.definition, Some(text)),
    };
    let saved = if current.template.is_some() {
        store::create_model(&state.db, &caller.scope, None, model).await
    } else {
        store::update_model(&state.db, &caller.scope, id, model).await
    };
    match saved {
        Ok(m) => Redirect::to(&format!("/grading/models/{}", m.id)).into_response(),
        Err(e) => {
            let e: crate::error::ApiError = e.into();
            let text = crate::pages::error_text(caller.locale, &e);
            draw_model(shell, current, f.definition, Some(text))
        }
    }
}

#[derive(Deserialize)]
struct SampleInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    values: Values,
    #[serde(default)]
    events: HashMap<String, u32>,
}

#[derive(askama::Template)]
#[template(path = "grading_preview.html")]
struct PreviewFragment {
    locale: Locale,
    error: Option<String>,
    criteria: Vec<String>,
    rows: Vec<(String, String, String, Vec<String>)>,
}

/// The editor's live preview: the definition as typed, scored over the sample customers.
pub async fn preview(caller: PageCaller, Form(f): Form<ModelFields>) -> Response {
    let locale = caller.locale;
    let fragment = |error: Option<String>, criteria, rows| PreviewFragment {
        locale,
        error,
        criteria,
        rows,
    };
    let model = match parse_model(locale, &f.definition) {
        Ok(m) => m,
        Err(text) => return render(&fragment(Some(text), vec![], vec![])),
    };
    let samples: Vec<SampleInput> = match serde_json::from_str(&f.samples) {
        Ok(s) => s,
        Err(e) => {
            return render(&fragment(
                Some(format!(
                    "{}: {e}",
                    locale.pick("样例客户格式有误", "samples")
                )),
                vec![],
                vec![],
            ))
        }
    };
    let inputs: Vec<Inputs> = samples
        .iter()
        .take(200)
        .map(|s| Inputs {
            values: s.values.clone(),
            events: s.events.clone(),
        })
        .collect();
    let refs: Vec<&Inputs> = inputs.iter().collect();
    let scored = rules::score_all(&model, &refs);
    let rows = samples
        .iter()
        .zip(scored)
        .enumerate()
        .map(|(i, (s, r))| {
            (
                s.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                number(r.score),
                r.grade.clone(),
                r.breakdown.iter().map(|l| number(l.weighted)).collect(),
            )
        })
        .collect();
    render(&fragment(
        None,
        model.criteria.iter().map(|c| c.name.clone()).collect(),
        rows,
    ))
}

// ---------------------------------------------------------------- the grade card

#[derive(askama::Template)]
#[template(path = "grade_card.html")]
struct GradeCard {
    shell: Shell,
    customer_id: i64,
    customer_name: String,
    models: Vec<ModelSummary>,
    model_id: Option<i64>,
    grade: Option<Grade>,
    explanations: Vec<String>,
    history: Vec<HistoryPoint>,
    /// JSON for the history chart: [[period, score]…]
    chart: String,
}

impl GradeCard {
    fn is_selected(&self, id: &i64) -> bool {
        self.model_id == Some(*id)
    }
}

#[derive(Deserialize)]
pub struct CardQuery {
    model_id: Option<i64>,
    period: Option<String>,
}

pub async fn grade_card(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Query(q): Query<CardQuery>,
) -> Response {
    let shell = Shell::new(&caller, "customers").crumb("nav.customers", "/customers");
    let customer = match keping_store::customers::get(&state.db, &caller.scope, id).await {
        Ok(c) => c,
        Err(e) => return error_page(shell, e),
    };
    let models = match store::list_models(&state.db, &caller.scope).await {
        Ok(m) => m,
        Err(e) => return error_page(shell, e),
    };
    let grade = store::customer_grade(
        &state.db,
        &caller.scope,
        id,
        q.model_id,
        q.period.as_deref().filter(|p| !p.is_empty()),
    )
    .await
    .ok();
    let model_id = grade.as_ref().map(|g| g.model_id).or(q.model_id);
    let history = match model_id {
        Some(m) => store::grade_history(&state.db, &caller.scope, id, m)
            .await
            .unwrap_or_default(),
        None => vec![],
    };
    let explanations = grade
        .as_ref()
        .map(|g| {
            let total: f64 = g.breakdown.iter().map(|l| l.weight).sum();
            g.breakdown
                .iter()
                .map(|l| explain(caller.locale, l, total))
                .collect()
        })
        .unwrap_or_default();
    let chart = serde_json::to_string(
        &history
            .iter()
            .map(|h| (h.period.clone(), h.score))
            .collect::<Vec<_>>(),
    )
    .expect("points serialise");
    let shell = shell
        .crumb(&customer.name, &format!("/customers/{id}"))
        .crumb("grading.card", &format!("/customers/{id}/grades"));
    render(&GradeCard {
        shell,
        customer_id: id,
        customer_name: customer.name,
        models,
        model_id,
        grade,
        explanations,
        history,
        chart,
    })
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_group_thousands_and_keep_their_fraction() {
        assert_eq!(number(2_000_000.0), "2,000,000");
        assert_eq!(number(100_000.0), "100,000");
        assert_eq!(number(999.0), "999");
        assert_eq!(number(1234.5), "1,234.5");
        assert_eq!(number(-12_345.25), "-12,345.25");
        assert_eq!(number(0.0), "0");
    }
}
