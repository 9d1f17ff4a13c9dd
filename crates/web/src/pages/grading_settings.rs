//! 分级规则: the lifecycle rules and star thresholds an org classifies its customers with (its
//! own or inherited), and 定期分级: the monthly grading schedules and where their warnings go.

use super::deliveries::{channel_from, targets, CHANNELS};
use super::{
    choices, error_page, org_choices, render_status, Choice, FormError, Saved, Shell, TreeRow,
};
use crate::auth::PageCaller;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use keping_domain::grading::{Condition, GradingSettings, LifecycleRule, MAX_STARS};
use keping_domain::Invalid;
use keping_store::grading::{self, ModelSummary};
use keping_store::grading_notices::{self, GradingSchedule, GradingScheduleInput};
use keping_store::grading_settings;
use serde::Deserialize;
use std::collections::HashMap;

/// The figures a lifecycle condition can test, in the editor's order.
const FIELDS: [&str; 8] = [
    "sales_amount",
    "sales_change_pct",
    "batches",
    "collection_rate",
    "collection_change_points",
    "return_rate",
    "arrears",
    "new_this_year",
];
/// Comparisons as stored, and as shown.
const OPS: [(&str, &str); 5] = [("<", "<"), ("<=", "≤"), (">", ">"), (">=", "≥"), ("=", "=")];
/// The built-in categories (SPEC §4.4); others may be typed in.
const CATEGORIES: [&str; 9] = [
    "no_business",
    "dormant",
    "pending",
    "deteriorating",
    "new_effective",
    "new_ineffective",
    "new",
    "normal",
    "abnormal",
];
/// Condition slots per rule in the editor ("all of" and "any of"), and empty rules offered.
const ALL_SLOTS: usize = 4;
const ANY_SLOTS: usize = 3;
const BLANK_RULES: usize = 2;

#[derive(Default, Clone)]
struct Slot {
    field: String,
    op: String,
    value: String,
}

struct RuleRow {
    order: String,
    category: String,
    /// The "all of" and the "any of" conditions, under their form names.
    groups: [(&'static str, Vec<Slot>); 2],
}

fn code_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn slots(conditions: &[Condition], n: usize) -> Vec<Slot> {
    let mut out: Vec<Slot> = conditions
        .iter()
        .map(|c| Slot {
            field: code_of(&c.field),
            op: code_of(&c.op),
            value: c.value.to_string(),
        })
        .collect();
    out.resize(n.max(out.len()), Slot::default());
    out
}

/// A built-in category's name in the page's language; others as they were typed.
fn category_label(locale: Locale, code: &str) -> String {
    locale
        .try_t(&format!("grading.lifecycle_{code}"))
        .unwrap_or_else(|| code.to_string())
}

/// The code of a category typed or picked on the page: a built-in one's name in either language
/// gives its code.
fn category_code(typed: &str) -> String {
    let typed = typed.trim();
    CATEGORIES
        .iter()
        .find(|code| {
            **code == typed
                || [Locale::Zh, Locale::En].iter().any(|l| {
                    l.try_t(&format!("grading.lifecycle_{code}")).as_deref() == Some(typed)
                })
        })
        .map_or_else(|| typed.to_string(), |code| code.to_string())
}

fn rows_of(settings: &GradingSettings, locale: Locale) -> Vec<RuleRow> {
    let mut rows: Vec<RuleRow> = settings
        .lifecycle_rules
        .iter()
        .enumerate()
        .map(|(i, r)| RuleRow {
            order: (i + 1).to_string(),
            category: category_label(locale, &r.category),
            groups: [
                ("all", slots(&r.all, ALL_SLOTS)),
                ("any", slots(&r.any, ANY_SLOTS)),
            ],
        })
        .collect();
    let n = rows.len();
    rows.extend((0..BLANK_RULES).map(|i| RuleRow {
        order: (n + i + 1).to_string(),
        category: String::new(),
        groups: [
            ("all", slots(&[], ALL_SLOTS)),
            ("any", slots(&[], ANY_SLOTS)),
        ],
    }));
    rows
}

/// The editor's rows as posted (`r{i}_category`, `r{i}_all{j}_field`, …).
fn rows_posted(form: &HashMap<String, String>) -> Vec<RuleRow> {
    let get = |k: String| form.get(&k).cloned().unwrap_or_default();
    let slot = |i: usize, kind: &str, j: usize| Slot {
        field: get(format!("r{i}_{kind}{j}_field")),
        op: get(format!("r{i}_{kind}{j}_op")),
        value: get(format!("r{i}_{kind}{j}_value")),
    };
    (0..)
        .take_while(|i| form.contains_key(&format!("r{i}_category")))
        .map(|i| RuleRow {
            order: get(format!("r{i}_order")),
            category: get(format!("r{i}_category")),
            groups: [
                ("all", (0..ALL_SLOTS).map(|j| slot(i, "all", j)).collect()),
                ("any", (0..ANY_SLOTS).map(|j| slot(i, "any", j)).collect()),
            ],
        })
        .collect()
}

/// Settings from the editor: empty rows and conditions without a value are left out; rules go in
/// the order of their order numbers (ties keep the page's order).
fn settings_posted(rows: &[RuleRow], stars: &[String]) -> Result<GradingSettings, Invalid> {
    let mut rules: Vec<(f64, LifecycleRule)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let conditions = |list: &[Slot], kind: &str| -> Result<Vec<Condition>, Invalid> {
            list.iter()
                .filter(|s| !s.value.trim().is_empty())
                .map(|s| {
                    let at = format!("lifecycle_rules[{i}].{kind}");
                    let value: f64 = s.value.trim().parse().map_err(|_| {
                        Invalid::new(
                            &at,
                            "invalid_number",
                            format!("rule {}: '{}' is not a number", i + 1, s.value.trim()),
                        )
                    })?;
                    serde_json::from_value(serde_json::json!({
                        "field": s.field, "op": s.op, "value": value
                    }))
                    .map_err(|_| {
                        Invalid::new(
                            &at,
                            "invalid",
                            format!("rule {}: choose a figure and a comparison", i + 1),
                        )
                    })
                })
                .collect()
        };
        let all = conditions(&r.groups[0].1, "all")?;
        let any = conditions(&r.groups[1].1, "any")?;
        if r.category.trim().is_empty() && all.is_empty() && any.is_empty() {
            continue;
        }
        let order = r.order.trim().parse::<f64>().unwrap_or((i + 1) as f64);
        rules.push((
            order,
            LifecycleRule {
                category: category_code(&r.category),
                all,
                any,
            },
        ));
    }
    rules.sort_by(|a, b| a.0.total_cmp(&b.0));
    let star_thresholds = stars
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.trim().is_empty())
        .map(|(i, s)| {
            s.trim().parse::<f64>().map_err(|_| {
                Invalid::new(
                    &format!("star_thresholds[{i}]"),
                    "invalid_number",
                    format!("{} stars: '{}' is not a number", i + 1, s.trim()),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GradingSettings {
        lifecycle_rules: rules.into_iter().map(|(_, r)| r).collect(),
        star_thresholds,
    })
}

#[derive(askama::Template)]
#[template(path = "grading_settings.html")]
struct SettingsPage {
    shell: Shell,
    notice: Option<String>,
    error: FormError,
    orgs: Vec<TreeRow>,
    org_id: i64,
    /// Where the settings in force come from, in words.
    source: String,
    own: bool,
    rows: Vec<RuleRow>,
    stars: Vec<String>,
    fields: Vec<Choice>,
    ops: [(&'static str, &'static str); 5],
    categories: Vec<Choice>,
}

#[derive(Deserialize)]
pub struct OrgQuery {
    org_id: Option<i64>,
    saved: Option<String>,
}

fn own_org(caller: &PageCaller) -> i64 {
    caller
        .scope
        .org_path
        .ids()
        .last()
        .copied()
        .unwrap_or_default()
}

async fn draw_settings(
    state: &AppState,
    caller: &PageCaller,
    org_id: i64,
    notice: Option<String>,
    posted: Option<(FormError, Vec<RuleRow>, Vec<String>)>,
) -> Response {
    let shell = Shell::new(caller, "grading")
        .crumb("nav.grading", "/grading")
        .crumb("nav.grading_settings", "/grading/settings");
    let in_force = match grading_settings::get(&state.db, &caller.scope, org_id).await {
        Ok(s) => s,
        Err(e) => return error_page(shell, e),
    };
    let orgs = match org_choices(&state.db, &caller.scope).await {
        Ok(o) => o,
        Err(e) => return error_page(shell, e),
    };
    let source = match (&in_force.from_org_name, in_force.own) {
        (_, true) => shell.t("grading_settings.source_own"),
        (Some(name), false) => shell
            .t("grading_settings.source_inherited")
            .replace("{org}", name),
        (None, _) => shell.t("grading_settings.source_default"),
    };
    let (error, rows, mut stars) = posted.unwrap_or_else(|| {
        (
            FormError::default(),
            rows_of(&in_force.settings, caller.locale),
            in_force
                .settings
                .star_thresholds
                .iter()
                .map(f64::to_string)
                .collect(),
        )
    });
    stars.resize(MAX_STARS, String::new());
    let status = error.status();
    let page = SettingsPage {
        fields: choices(caller.locale, "grading.lifecycle_field", &FIELDS),
        categories: CATEGORIES
            .iter()
            .map(|code| Choice {
                code,
                label: caller.locale.t(&format!("grading.lifecycle_{code}")),
            })
            .collect(),
        ops: OPS,
        shell,
        notice,
        error,
        orgs,
        org_id,
        source,
        own: in_force.own,
        rows,
        stars,
    };
    render_status(&page, status)
}

pub async fn settings_page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<OrgQuery>,
) -> Response {
    let notice = super::notice(caller.locale, q.saved.as_deref());
    let org_id = q.org_id.unwrap_or_else(|| own_org(&caller));
    draw_settings(&state, &caller, org_id, notice, None).await
}

pub async fn save_settings(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form: HashMap<String, String> = form.into_iter().collect();
    let org_id = form
        .get("org_id")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| own_org(&caller));
    let rows = rows_posted(&form);
    let stars: Vec<String> = (1..=MAX_STARS)
        .map(|n| form.get(&format!("star{n}")).cloned().unwrap_or_default())
        .collect();
    let saved = match settings_posted(&rows, &stars) {
        Ok(s) => grading_settings::put(&state.db, &caller.scope, org_id, Some(&s)).await,
        Err(e) => Err(e.into()),
    };
    match saved {
        Ok(_) => Redirect::to(&format!(
            "/grading/settings?org_id={org_id}&saved=grading_settings_saved"
        ))
        .into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "settings", e);
            draw_settings(&state, &caller, org_id, None, Some((error, rows, stars))).await
        }
    }
}

#[derive(Deserialize)]
pub struct OrgForm {
    org_id: i64,
}

pub async fn inherit_settings(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<OrgForm>,
) -> Response {
    match grading_settings::put(&state.db, &caller.scope, f.org_id, None).await {
        Ok(_) => Redirect::to(&format!(
            "/grading/settings?org_id={}&saved=grading_settings_inherited",
            f.org_id
        ))
        .into_response(),
        Err(e) => error_page(Shell::new(&caller, "grading"), e),
    }
}

// ---------------------------------------------------------------- schedules

#[derive(Deserialize, Default)]
pub struct ScheduleForm {
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    model_id: String,
    #[serde(default)]
    idle_days: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    target: String,
}

impl ScheduleForm {
    fn input(&self) -> Result<GradingScheduleInput, Invalid> {
        let number = |field: &str, v: &str, what: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| Invalid::new(field, "required", what.to_string()))
        };
        Ok(GradingScheduleInput {
            org_id: number(
                "org_id",
                &self.org_id,
                "choose the org whose customers are graded",
            )?,
            model_id: number("model_id", &self.model_id, "choose a scoring model")?,
            idle_days: number("idle_days", &self.idle_days, "idle days is a whole number")?,
            channels: vec![channel_from(&self.channel, &self.target)?],
        })
    }
}

#[derive(askama::Template)]
#[template(path = "grading_schedules.html")]
struct SchedulesPage {
    shell: Shell,
    notice: Option<String>,
    error: FormError,
    form: ScheduleForm,
    orgs: Vec<TreeRow>,
    models: Vec<ModelSummary>,
    channels: Vec<Choice>,
    rows: Vec<(GradingSchedule, String)>,
}

async fn draw_schedules(
    state: &AppState,
    caller: &PageCaller,
    notice: Option<String>,
    error: FormError,
    form: ScheduleForm,
) -> Response {
    let shell = Shell::new(caller, "grading")
        .crumb("nav.grading", "/grading")
        .crumb("nav.grading_schedules", "/grading/schedules");
    let list = match grading_notices::list(&state.db, &caller.scope).await {
        Ok(l) => l,
        Err(e) => return error_page(shell, e),
    };
    let models = match grading::list_models(&state.db, &caller.scope).await {
        Ok(m) => m,
        Err(e) => return error_page(shell, e),
    };
    let orgs = match org_choices(&state.db, &caller.scope).await {
        Ok(o) => o,
        Err(e) => return error_page(shell, e),
    };
    let rows = list
        .into_iter()
        .map(|s| {
            let to = targets(&s.channels());
            (s, to)
        })
        .collect();
    let status = error.status();
    let page = SchedulesPage {
        channels: choices(caller.locale, "deliveries.channel", &CHANNELS),
        shell,
        notice,
        error,
        form,
        orgs,
        models,
        rows,
    };
    render_status(&page, status)
}

pub async fn schedules_page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<Saved>,
) -> Response {
    let form = ScheduleForm {
        org_id: own_org(&caller).to_string(),
        idle_days: "90".into(),
        channel: "email".into(),
        ..Default::default()
    };
    let notice = q.notice(caller.locale);
    draw_schedules(&state, &caller, notice, FormError::default(), form).await
}

pub async fn create_schedule(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<ScheduleForm>,
) -> Response {
    let created = match f.input() {
        Ok(input) => grading_notices::create(&state.db, &caller.scope, &input).await,
        Err(e) => Err(e.into()),
    };
    match created {
        Ok(_) => Redirect::to("/grading/schedules?saved=grading_schedule_created").into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "schedule", e);
            draw_schedules(&state, &caller, None, error, f).await
        }
    }
}

pub async fn delete_schedule(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match grading_notices::delete(&state.db, &caller.scope, id).await {
        Ok(()) => Redirect::to("/grading/schedules?saved=grading_schedule_deleted").into_response(),
        Err(e) => error_page(Shell::new(&caller, "grading"), e),
    }
}
