//! 客户资料质量: the completeness rules of the caller's org (editable with settings.manage) and the
//! report per rep and per org over the customers he sees, with its xlsx export.

use crate::auth::PageCaller;
use crate::pages::{error_page, render_status, FormError, FormFields, Saved, Shell};
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::customer_quality::REQUIRABLE_FIELDS;
use keping_store::customers::quality::{
    self as store, check_label, field_name, QualityLine, QualityReport, QualityRules,
};

/// A report line as the page shows it.
struct Line {
    name: String,
    customers: u64,
    average: String,
    complete: u64,
    /// Customers failing each check, in the order of `checks`.
    failures: Vec<u64>,
}

#[derive(askama::Template)]
#[template(path = "customer_quality.html")]
struct QualityPage {
    shell: Shell,
    notice: Option<String>,
    error: FormError,
    rules: QualityRules,
    /// (field, label, required)
    fields: Vec<(&'static str, String, bool)>,
    checks: Vec<String>,
    /// (title key, lines, table id): per rep, per org
    sections: Vec<(&'static str, Vec<Line>, &'static str)>,
    total: Line,
}

fn shell(caller: &PageCaller) -> Shell {
    Shell::new(caller, "customer_quality")
        .crumb("nav.customers", "/customers")
        .crumb("quality.title", "/customers/quality")
}

fn page(
    caller: &PageCaller,
    rules: QualityRules,
    report: QualityReport,
    notice: Option<String>,
    error: FormError,
) -> QualityPage {
    let zh = caller.locale == crate::i18n::Locale::Zh;
    let codes: Vec<String> = report.total.failures.keys().cloned().collect();
    let line = |l: &QualityLine, pool: &str| Line {
        name: l.name.clone().unwrap_or_else(|| pool.to_string()),
        customers: l.customers,
        average: format!("{:.1}", l.average_score),
        complete: l.complete,
        failures: codes
            .iter()
            .map(|c| l.failures.get(c).copied().unwrap_or(0))
            .collect(),
    };
    let pool = caller.locale.t("quality.pool");
    QualityPage {
        shell: shell(caller),
        notice,
        error,
        fields: REQUIRABLE_FIELDS
            .iter()
            .map(|f| {
                (
                    *f,
                    field_name(f, zh),
                    rules.required_fields.iter().any(|r| r == f),
                )
            })
            .collect(),
        rules,
        checks: codes.iter().map(|c| check_label(c, zh)).collect(),
        sections: vec![
            (
                "quality.by_rep",
                report.by_rep.iter().map(|l| line(l, &pool)).collect(),
                "quality-reps",
            ),
            (
                "quality.by_org",
                report.by_org.iter().map(|l| line(l, "")).collect(),
                "quality-orgs",
            ),
        ],
        total: line(&report.total, &caller.locale.t("quality.total")),
    }
}

async fn load(
    state: &AppState,
    caller: &PageCaller,
) -> Result<(QualityRules, QualityReport), keping_store::StoreError> {
    let org = caller.scope.org_path.id();
    let rules = store::rules(&state.db, &caller.scope, org).await?;
    let report = store::report(&state.db, &caller.scope, None).await?;
    Ok((rules, report))
}

pub async fn show(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(saved): Query<Saved>,
) -> Response {
    match load(&state, &caller).await {
        Ok((rules, report)) => {
            let notice = saved.notice(caller.locale);
            render_status(
                &page(&caller, rules, report, notice, FormError::default()),
                axum::http::StatusCode::OK,
            )
        }
        Err(e) => error_page(shell(&caller), e),
    }
}

/// Saves the rules of the caller's own org (its subtree inherits them).
pub async fn save_rules(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = FormFields(form);
    let rules = QualityRules {
        required_fields: form
            .all("required")
            .into_iter()
            .map(str::to_string)
            .collect(),
        phone_area_code: form.checked("phone_area_code"),
        department_head: form.checked("department_head"),
        // unreadable: refused by the rules' check, with the range in the message
        min_contacts: form.text("min_contacts").trim().parse().unwrap_or(101),
    };
    let org = caller.scope.org_path.id();
    match store::put_rules(&state.db, &caller.scope, org, rules.clone()).await {
        Ok(_) => Redirect::to("/customers/quality?saved=saved").into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "rules", e);
            match load(&state, &caller).await {
                Ok((_, report)) => render_status(
                    &page(&caller, rules, report, None, error),
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                ),
                Err(e) => error_page(shell(&caller), e),
            }
        }
    }
}

pub async fn export(State(state): State<AppState>, caller: PageCaller) -> Response {
    if !caller.scope.has("customer.export") {
        return error_page(
            shell(&caller),
            keping_store::StoreError::Forbidden("customer.export"),
        );
    }
    let zh = caller.locale == crate::i18n::Locale::Zh;
    match store::report(&state.db, &caller.scope, None)
        .await
        .and_then(|r| store::report_xlsx(&r, zh))
    {
        Ok(bytes) => crate::api::customers::xlsx_response(bytes, "customer-quality.xlsx"),
        Err(e) => error_page(shell(&caller), e),
    }
}
