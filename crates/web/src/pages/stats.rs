//! 统计信息: the statistics page (filters, the table with its comparisons, ECharts charts, the
//! fair staff ranking, drill-down to the individual ratings), a staff member's own page and the
//! ratings list behind a cell. Everything is read through the store, which applies the scope.

use super::{day_start, error_page, error_text, link, render, Pager, Shell};
use crate::auth::PageCaller;
use crate::error::ApiError;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use keping_domain::now_millis;
use keping_domain::stats::{self as rules, GroupBy};
use keping_store::evaluation::{self as eval, Rating, RatingFilter};
use keping_store::stats::{self as store, StatsAnswer, StatsQuery, StatsRow};
use keping_store::StoreError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The groupings the table offers (weekday × hour is the heat map's).
const GROUPS: [&str; 10] = [
    "org",
    "outlet",
    "window",
    "staff",
    "business_type",
    "day",
    "week",
    "month",
    "hour",
    "weekday",
];
const MY_GROUPS: [&str; 4] = ["day", "week", "month", "hour"];
const RATINGS_PAGE: i64 = 50;
const DAY_MS: i64 = 86_400_000;

#[derive(Deserialize, Default, Clone)]
pub struct StatsForm {
    #[serde(default, deserialize_with = "super::empty_none")]
    org_id: Option<i64>,
    /// today, week, month, quarter, year or custom
    #[serde(default)]
    period: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    group_by: String,
    #[serde(default, deserialize_with = "super::empty_none")]
    window_id: Option<i64>,
}

pub struct Opt {
    pub code: String,
    pub label: String,
}

/// A change against a compared period, ready to show.
pub struct Delta {
    pub value: String,
    pub text: String,
    /// text-success, text-danger or text-secondary
    pub class: &'static str,
    /// bi-arrow-up, bi-arrow-down, bi-dash, or "" when there is nothing to compare with
    pub icon: &'static str,
}

pub struct Line {
    pub label: String,
    pub href: Option<String>,
    pub ratings_href: Option<String>,
    pub services: i64,
    pub rated: i64,
    pub positive: i64,
    pub neutral: i64,
    pub negative: i64,
    pub rating_rate: String,
    pub satisfaction: String,
    pub prompt_coverage: String,
    pub avg_handle: String,
    pub p90: String,
    pub duty_hours: String,
    pub per_hour: String,
    pub busyness: String,
    pub prev_services: Delta,
    pub prev_satisfaction: Delta,
    pub ly_services: Delta,
    pub ly_satisfaction: Delta,
}

pub struct RankLine {
    pub rank: i64,
    pub label: String,
    pub ratings: i64,
    pub positive: i64,
    pub satisfaction: String,
    pub lower_bound: String,
    pub ratings_href: String,
}

#[derive(askama::Template)]
#[template(path = "stats.html")]
struct StatsPage {
    shell: Shell,
    /// The staff member's own page.
    me: bool,
    form: StatsForm,
    /// The org picked ("": none).
    selected_org: String,
    orgs: Vec<Opt>,
    periods: Vec<Opt>,
    groups: Vec<Opt>,
    error: Option<String>,
    /// Title of what is shown: the org (and window) and the range.
    heading: String,
    range: String,
    compare_ranges: (String, String),
    lines: Vec<Line>,
    total: Option<Line>,
    ranking: Vec<RankLine>,
    charts: String,
    export_href: Option<String>,
    ratings_href: Option<String>,
    empty: bool,
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.digits$}"))
}

/// Services against a compared count: the change in per cent.
fn count_delta(now: i64, before: Option<i64>) -> Delta {
    match before {
        Some(b) if b > 0 => {
            let change = (now - b) as f64 / b as f64 * 100.0;
            arrow(b.to_string(), change, format!("{change:+.1}%"))
        }
        Some(b) => arrow(b.to_string(), 0.0, String::new()),
        None => arrow("0".into(), 0.0, String::new()),
    }
}

/// A rate against a compared rate: the change in percentage points.
fn rate_delta(now: Option<f64>, before: Option<f64>) -> Delta {
    match (now, before) {
        (Some(n), Some(b)) => {
            let change = (n - b) * 100.0;
            arrow(pct(Some(b)), change, format!("{change:+.1}"))
        }
        (_, b) => arrow(pct(b), 0.0, String::new()),
    }
}

fn arrow(value: String, change: f64, text: String) -> Delta {
    let (class, icon) = if text.is_empty() {
        ("text-secondary", "")
    } else if change.abs() < 0.05 {
        ("text-secondary", "bi-dash")
    } else if change > 0.0 {
        ("text-success", "bi-arrow-up")
    } else {
        ("text-danger", "bi-arrow-down")
    };
    Delta {
        value,
        text,
        class,
        icon,
    }
}

fn key_of(r: &StatsRow) -> String {
    r.key.to_string()
}

/// The query string of the page's current filters, with some replaced.
fn params(form: &StatsForm, from: &str, to: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "org_id",
            form.org_id.map(|i| i.to_string()).unwrap_or_default(),
        ),
        ("period", "custom".to_string()),
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("group_by", form.group_by.clone()),
        (
            "window_id",
            form.window_id.map(|i| i.to_string()).unwrap_or_default(),
        ),
    ]
}

fn href(path: &str, p: &[(&'static str, String)], set: &[(&'static str, String)]) -> String {
    let mut all: Vec<(&str, String)> = p
        .iter()
        .filter(|(k, _)| !set.iter().any(|(s, _)| s == k))
        .cloned()
        .collect();
    all.extend(set.iter().cloned());
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    link(path, &refs)
}

/// The range asked for: a preset (in the org's time zone) or the custom dates.
fn range(form: &StatsForm, timezone: &str) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let today = rules::today_in(timezone, now_millis());
    if form.period != "custom" {
        let preset = if form.period.is_empty() {
            "month"
        } else {
            &form.period
        };
        return rules::preset_range(preset, today).ok_or_else(|| {
            ApiError::from(keping_domain::Invalid::new(
                "period",
                "unknown_period",
                format!(
                    "unknown period '{preset}': use one of {}, custom",
                    rules::PRESETS.join(", ")
                ),
            ))
        });
    }
    let from = rules::parse_date("from", form.from.trim())?;
    let to = rules::parse_date("to", form.to.trim())?;
    Ok((from, to))
}

fn options(locale: Locale, prefix: &str, codes: &[&str]) -> Vec<Opt> {
    codes
        .iter()
        .map(|c| Opt {
            code: c.to_string(),
            label: locale.t(&format!("{prefix}.{c}")),
        })
        .collect()
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(form): Query<StatsForm>,
) -> Response {
    show(state, caller, form, false).await
}

pub async fn me(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(form): Query<StatsForm>,
) -> Response {
    show(state, caller, form, true).await
}

async fn show(state: AppState, caller: PageCaller, mut form: StatsForm, me: bool) -> Response {
    let locale = caller.locale;
    let shell = if me {
        Shell::new(&caller, "stats_me").crumb("nav.stats_me", "/stats/me")
    } else {
        Shell::new(&caller, "stats").crumb("nav.stats", "/stats")
    };
    if !caller.scope.has("stats.view") {
        return error_page(shell, StoreError::Forbidden("stats.view"));
    }
    let db = &state.db;
    let orgs = if me {
        Vec::new()
    } else {
        match store::orgs_in_reach(db, &caller.scope).await {
            Ok(o) => o
                .into_iter()
                .map(|(id, name, depth)| Opt {
                    code: id.to_string(),
                    label: if depth == 0 {
                        name
                    } else {
                        format!("{}└ {name}", "\u{3000}".repeat(depth - 1))
                    },
                })
                .collect(),
            Err(e) => return error_page(shell, e),
        }
    };
    if !me && form.org_id.is_none() {
        form.org_id = orgs.first().and_then(|o| o.code.parse().ok());
    }
    if form.period.is_empty() {
        form.period = "month".into();
    }
    let allowed: &[&str] = if me { &MY_GROUPS } else { &GROUPS };
    if !allowed.contains(&form.group_by.as_str()) {
        form.group_by = if me { "day" } else { "outlet" }.into();
    }
    let mut page = StatsPage {
        shell,
        me,
        selected_org: form.org_id.map(|i| i.to_string()).unwrap_or_default(),
        form: form.clone(),
        orgs,
        periods: options(
            locale,
            "stats.period",
            &["today", "week", "month", "quarter", "year", "custom"],
        ),
        groups: options(locale, "stats.group", allowed),
        error: None,
        heading: String::new(),
        range: String::new(),
        compare_ranges: (String::new(), String::new()),
        lines: Vec::new(),
        total: None,
        ranking: Vec::new(),
        charts: "{}".into(),
        export_href: None,
        ratings_href: None,
        empty: true,
    };
    if let Err(e) = fill(&state, &caller, &form, &mut page).await {
        // the filters stay; the message says what is wrong with them
        if matches!(
            e.status,
            axum::http::StatusCode::NOT_FOUND | axum::http::StatusCode::FORBIDDEN
        ) {
            return error_page(page.shell, e);
        }
        page.error = Some(error_text(locale, &e));
    }
    render(&page)
}

async fn fill(
    state: &AppState,
    caller: &PageCaller,
    form: &StatsForm,
    page: &mut StatsPage,
) -> Result<(), ApiError> {
    let db = &state.db;
    let locale = caller.locale;
    let scope = &caller.scope;
    let me = page.me;
    let (timezone, path) = if me {
        ("Asia/Shanghai".to_string(), None)
    } else {
        let org_id = form.org_id.ok_or(StoreError::NotFound)?;
        let (path, _, tz) = store::org_in_reach(db, scope, "stats.view", org_id).await?;
        (tz, Some(path))
    };
    let (from, to) = range(form, &timezone)?;
    page.form.from = from.to_string();
    page.form.to = to.to_string();
    let group_by = GroupBy::parse(&form.group_by)?;
    let q = |group_by: GroupBy, compare: bool| StatsQuery {
        org_id: form.org_id.unwrap_or(0),
        from,
        to,
        group_by,
        compare,
        window_id: form.window_id,
        staff_id: None,
    };
    let ask = |q: StatsQuery| async move {
        if me {
            store::own(db, scope, &q).await
        } else {
            store::evaluation(db, scope, &q).await
        }
    };
    let main: StatsAnswer = ask(q(group_by, true)).await?;
    let days = (to - from).num_days() + 1;
    let trend_by = if days <= 62 {
        GroupBy::Day
    } else if days <= 366 {
        GroupBy::Week
    } else {
        GroupBy::Month
    };
    let trend = ask(q(trend_by, false)).await?;
    let heat = ask(q(GroupBy::WeekdayHour, false)).await?;
    page.heading = if me {
        main.org_name.clone()
    } else {
        let mut h = main.org_name.clone();
        if let Some(w) = form.window_id {
            let name: Option<(String,)> =
                keping_store::Sql::new("SELECT name FROM windows WHERE id = ")
                    .arg(w)
                    .fetch_optional(&db.pool)
                    .await?;
            h = format!("{h} · {}", name.map_or_else(|| format!("#{w}"), |n| n.0));
        }
        h
    };
    page.range = format!("{from} – {to}");
    page.empty = main.total.services == 0
        && main.total.ratings == 0
        && main.total.on_duty_hours == 0.0
        && main.total.removed.is_empty();

    let p = params(form, &main.from, &main.to);
    let (prev, ly) = match &main.compare {
        Some(c) => (Some(&c.previous), Some(&c.last_year)),
        None => (None, None),
    };
    if let (Some(pr), Some(l)) = (prev, ly) {
        page.compare_ranges = (
            format!("{} – {}", pr.from, pr.to),
            format!("{} – {}", l.from, l.to),
        );
    }
    let index = |rows: Option<&Vec<StatsRow>>| -> HashMap<String, StatsRow> {
        rows.map(|rs| rs.iter().map(|r| (key_of(r), r.clone())).collect())
            .unwrap_or_default()
    };
    let prev_rows = index(prev.map(|p| &p.rows));
    let ly_rows = index(ly.map(|p| &p.rows));
    let ratings_base = |staff: Option<i64>| {
        let mut set = vec![
            ("from", main.from.clone()),
            ("to", main.to.clone()),
            ("staff_id", staff.map(|s| s.to_string()).unwrap_or_default()),
        ];
        if me {
            set.push(("org_id", String::new()));
        }
        href(
            if me {
                "/stats/me/ratings"
            } else {
                "/stats/ratings"
            },
            &p,
            &set,
        )
    };
    let line = |r: &StatsRow, pr: Option<&StatsRow>, l: Option<&StatsRow>, drill: bool| {
        let id = r.key.as_i64().filter(|i| *i != 0);
        let (link_to, ratings_href) = match (group_by, id, drill && !me) {
            (GroupBy::Org | GroupBy::Outlet, Some(id), true) => (
                Some(href(
                    "/stats",
                    &p,
                    &[
                        ("org_id", id.to_string()),
                        (
                            "group_by",
                            if group_by == GroupBy::Org {
                                "outlet"
                            } else {
                                "window"
                            }
                            .into(),
                        ),
                        ("window_id", String::new()),
                    ],
                )),
                None,
            ),
            (GroupBy::Window, Some(id), true) => (
                Some(href(
                    "/stats",
                    &p,
                    &[("window_id", id.to_string()), ("group_by", "staff".into())],
                )),
                None,
            ),
            (GroupBy::Staff, Some(id), true) => (None, Some(ratings_base(Some(id)))),
            _ => (None, None),
        };
        Line {
            label: r.label.clone(),
            href: link_to,
            ratings_href,
            services: r.services,
            rated: r.rated,
            positive: r.positive,
            neutral: r.neutral,
            negative: r.negative,
            rating_rate: pct(r.rating_rate),
            satisfaction: pct(r.satisfaction_rate),
            prompt_coverage: pct(r.prompt_coverage),
            avg_handle: num(r.avg_handle_seconds, 0),
            p90: num(r.p90_handle_seconds, 0),
            duty_hours: num(Some(r.on_duty_hours), 1),
            per_hour: num(r.services_per_hour, 1),
            busyness: pct(r.busyness),
            prev_services: count_delta(r.services, pr.map(|x| x.services)),
            prev_satisfaction: rate_delta(
                r.satisfaction_rate,
                pr.and_then(|x| x.satisfaction_rate),
            ),
            ly_services: count_delta(r.services, l.map(|x| x.services)),
            ly_satisfaction: rate_delta(r.satisfaction_rate, l.and_then(|x| x.satisfaction_rate)),
        }
    };
    page.lines = main
        .rows
        .iter()
        .map(|r| {
            let k = key_of(r);
            line(r, prev_rows.get(&k), ly_rows.get(&k), true)
        })
        .collect();
    let mut total = line(
        &main.total,
        prev.map(|p| &p.total),
        ly.map(|p| &p.total),
        false,
    );
    total.label = locale.t("stats.total");
    page.total = Some(total);
    page.ratings_href = Some(ratings_base(None));

    // the option labels as configured for the org
    let settings = match &path {
        Some(path) => eval::settings_for(&db.pool, path).await?,
        None => Default::default(),
    };
    let mut keys: Vec<(String, String)> = settings
        .options
        .iter()
        .map(|o| {
            let label = if locale.is_en() {
                o.label_en.clone().unwrap_or_else(|| o.label.clone())
            } else {
                o.label.clone()
            };
            (o.key.clone(), label)
        })
        .collect();
    for k in main.total.counts.keys() {
        if !keys.iter().any(|(x, _)| x == k) {
            keys.push((k.clone(), k.clone()));
        }
    }
    let option_rows: Vec<&StatsRow> = main.rows.iter().filter(|r| r.ratings > 0).collect();
    let option_series: Vec<Value> = keys
        .iter()
        .map(|(k, label)| {
            json!({
                "name": label,
                "data": option_rows.iter().map(|r| r.counts.get(k).copied().unwrap_or(0)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let heat_points: Vec<Value> = heat
        .rows
        .iter()
        .filter_map(|r| {
            let k = r.key.as_str()?;
            let (d, h) = k.split_once('-')?;
            let d: i64 = d.parse().ok()?;
            let h: i64 = h.parse().ok()?;
            Some(json!([h, d - 1, r.services]))
        })
        .collect();
    let mut charts = json!({
        "labels": {
            "services": locale.t("stats.services"),
            "satisfaction": locale.t("stats.satisfaction_rate"),
            "weekdays": (1..=7).map(|d| locale.t(&format!("stats.weekday.{d}"))).collect::<Vec<_>>(),
        },
        "trend": {
            "labels": trend.rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            "services": trend.rows.iter().map(|r| r.services).collect::<Vec<_>>(),
            "satisfaction": trend.rows.iter().map(|r| r.satisfaction_rate.map(|v| (v * 1000.0).round() / 10.0)).collect::<Vec<_>>(),
        },
        "options": {
            "labels": option_rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            "series": option_series,
        },
        "heat": heat_points,
    });

    if !me {
        let outlets = ask(q(GroupBy::Outlet, false)).await?;
        let rows: Vec<&StatsRow> = outlets.rows.iter().filter(|r| r.key != json!(0)).collect();
        charts["outlets"] = json!({
            "labels": rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            "services": rows.iter().map(|r| r.services).collect::<Vec<_>>(),
            "satisfaction": rows.iter().map(|r| r.satisfaction_rate.map(|v| (v * 1000.0).round() / 10.0)).collect::<Vec<_>>(),
        });
        let staff = ask(q(GroupBy::Staff, false)).await?;
        page.ranking = staff
            .rows
            .iter()
            .filter(|r| r.key != json!(0))
            .filter_map(|r| {
                Some(RankLine {
                    rank: r.rank?,
                    label: r.label.clone(),
                    ratings: r.ratings,
                    positive: r.positive,
                    satisfaction: pct(r.satisfaction_rate),
                    lower_bound: pct(r.satisfaction_lower_bound),
                    ratings_href: ratings_base(r.key.as_i64()),
                })
            })
            .collect();
        if scope.has("stats.export") {
            page.export_href = Some(href("/stats/export", &p, &[]));
        }
    }
    page.charts = charts.to_string();
    Ok(())
}

/// 输出Excel: the table as shown, through the store's export (stats.export, audited).
pub async fn export(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(form): Query<StatsForm>,
) -> Response {
    let shell = Shell::new(&caller, "stats").crumb("nav.stats", "/stats");
    let result: Result<Response, ApiError> = async {
        let org_id = form.org_id.ok_or(StoreError::NotFound)?;
        let (_, _, tz) =
            store::org_in_reach(&state.db, &caller.scope, "stats.view", org_id).await?;
        let (from, to) = range(&form, &tz)?;
        let q = StatsQuery {
            org_id,
            from,
            to,
            group_by: GroupBy::parse(if form.group_by.is_empty() {
                "outlet"
            } else {
                &form.group_by
            })?,
            compare: false,
            window_id: form.window_id,
            staff_id: None,
        };
        let (a, bytes) = store::export_xlsx(&state.db, &caller.scope, &q).await?;
        Ok(crate::api::customers::xlsx_response(
            bytes,
            &format!("stats-{}-{}-{}.xlsx", a.org_id, a.from, a.to),
        ))
    }
    .await;
    result.unwrap_or_else(|e| error_page(shell, e))
}

#[derive(Deserialize, Default)]
pub struct RatingsForm {
    #[serde(default, deserialize_with = "super::empty_none")]
    org_id: Option<i64>,
    #[serde(default, deserialize_with = "super::empty_none")]
    window_id: Option<i64>,
    #[serde(default, deserialize_with = "super::empty_none")]
    staff_id: Option<i64>,
    #[serde(default)]
    polarity: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    cursor: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "stats_ratings.html")]
struct RatingsPage {
    shell: Shell,
    form: RatingsForm,
    back: String,
    polarities: Vec<Opt>,
    ratings: Vec<Rating>,
    pager: Pager,
    details: bool,
    /// 输出Excel of every page, for roles with stats.export (not on his own page).
    export_href: Option<String>,
}

/// The individual ratings behind a cell of the statistics (the end of the drill-down), newest
/// first; negative details only for roles with negative.view (the store blanks them otherwise).
pub async fn ratings(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(form): Query<RatingsForm>,
) -> Response {
    ratings_list(state, caller, form, false).await
}

/// His own ratings, from his page.
pub async fn my_ratings(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(mut form): Query<RatingsForm>,
) -> Response {
    form.org_id = None;
    form.window_id = None;
    form.staff_id = Some(caller.scope.user_id);
    ratings_list(state, caller, form, true).await
}

async fn ratings_list(
    state: AppState,
    caller: PageCaller,
    form: RatingsForm,
    me: bool,
) -> Response {
    let locale = caller.locale;
    let (back, shell) = if me {
        let back = link(
            "/stats/me",
            &[("period", "custom"), ("from", &form.from), ("to", &form.to)],
        );
        let s = Shell::new(&caller, "stats_me")
            .crumb("nav.stats_me", &back)
            .crumb("stats.ratings", "");
        (back, s)
    } else {
        let org = form.org_id.map(|i| i.to_string()).unwrap_or_default();
        let back = link(
            "/stats",
            &[
                ("org_id", &org),
                ("period", "custom"),
                ("from", &form.from),
                ("to", &form.to),
            ],
        );
        let s = Shell::new(&caller, "stats")
            .crumb("nav.stats", &back)
            .crumb("stats.ratings", "");
        (back, s)
    };
    let filter = match rating_filter(&form) {
        Ok(f) => f,
        Err(e) => return error_page(shell, e),
    };
    let scope = if me {
        // his own ratings wherever he served: stats.view at any level is enough
        if !caller.scope.has("stats.view") {
            return error_page(shell, StoreError::Forbidden("stats.view"));
        }
        everywhere(&caller.scope)
    } else {
        caller.scope.clone()
    };
    let found = match eval::ratings(
        &state.db,
        &scope,
        &filter,
        RATINGS_PAGE,
        form.cursor.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return error_page(shell, e),
    };
    let ids = |v: Option<i64>| v.map(|i| i.to_string()).unwrap_or_default();
    let (org, window, staff) = (ids(form.org_id), ids(form.window_id), ids(form.staff_id));
    let params = [
        ("org_id", org.as_str()),
        ("window_id", window.as_str()),
        ("staff_id", staff.as_str()),
        ("polarity", form.polarity.as_str()),
        ("from", form.from.as_str()),
        ("to", form.to.as_str()),
    ];
    let pager = Pager::new(
        if me {
            "/stats/me/ratings"
        } else {
            "/stats/ratings"
        },
        &params,
        form.cursor.as_deref(),
        found.next_cursor.as_deref(),
    );
    let export_href =
        (!me && caller.scope.has("stats.export")).then(|| link("/stats/ratings/export", &params));
    render(&RatingsPage {
        export_href,
        details: caller.scope.has("negative.view"),
        shell,
        polarities: options(
            locale,
            "stats.polarity",
            &["positive", "neutral", "negative"],
        ),
        form,
        back,
        ratings: found.items,
        pager,
    })
}

/// 输出Excel of the ratings behind a cell: every page of /stats/ratings with its filters, through
/// the store's streaming export (stats.export, audited).
pub async fn ratings_export(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(form): Query<RatingsForm>,
) -> Response {
    let shell = Shell::new(&caller, "stats")
        .crumb("nav.stats", "/stats")
        .crumb("stats.ratings", "");
    let filter = match rating_filter(&form) {
        Ok(f) => f,
        Err(e) => return error_page(shell, e),
    };
    match store::export_ratings_xlsx(&state.db, &caller.scope, &filter).await {
        Ok((_, bytes)) => crate::api::customers::xlsx_response(
            bytes,
            &format!(
                "ratings-{}-{}-{}.xlsx",
                form.org_id.map(|i| i.to_string()).unwrap_or_default(),
                form.from,
                form.to
            ),
        ),
        Err(e) => error_page(shell, e),
    }
}

/// The page's filters; an unknown polarity is refused.
fn rating_filter(form: &RatingsForm) -> Result<RatingFilter, keping_domain::Invalid> {
    let polarity = Some(form.polarity.clone()).filter(|p| !p.is_empty());
    if let Some(p) = &polarity {
        if !["positive", "neutral", "negative"].contains(&p.as_str()) {
            return Err(keping_domain::Invalid::new(
                "polarity",
                "invalid_polarity",
                "polarity must be positive, neutral or negative",
            ));
        }
    }
    Ok(RatingFilter {
        org_id: form.org_id,
        window_id: form.window_id,
        staff_id: form.staff_id,
        polarity,
        from_ms: day_start(&form.from),
        to_ms: day_start(&form.to).map(|t| t + DAY_MS),
    })
}

/// The caller's scope with stats.view reaching every org: only for reading his own ratings, the
/// filter naming him as the staff member.
fn everywhere(scope: &keping_domain::scope::Scope) -> keping_domain::scope::Scope {
    let mut s = scope.clone();
    for g in &mut s.grants {
        if g.permissions.contains("stats.view") {
            g.level = keping_domain::auth::DataLevel::All;
        }
    }
    s
}
