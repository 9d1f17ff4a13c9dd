//! 数据管理: cleanup of raw evaluation data (a preview with the counts, then a confirmation), the
//! retention setting per org, the runs with their progress, and the backup download.

use super::{
    choices, empty_none, error_page, notice, org_choices, render, render_status, Choice, FormError,
    Shell, TreeRow,
};
use crate::api::data::{backup_response, may_back_up, start_cleanup};
use crate::auth::PageCaller;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keping_domain::data::{OlderThan, Retention};
use keping_store::data::{self as store, CleanupPreview, CleanupRun, OwnRetention};
use serde::Deserialize;

#[derive(askama::Template)]
#[template(path = "data.html")]
struct DataPage {
    shell: Shell,
    orgs: Vec<TreeRow>,
    can_clean: bool,
    can_back_up: bool,
    /// The cleanup form as chosen.
    org_id: Option<i64>,
    older_than: String,
    keep_rollups: bool,
    ages: Vec<Choice>,
    /// The confirmation step: what the chosen cleanup would remove.
    preview: Option<CleanupPreview>,
    retentions: Vec<OwnRetention>,
    runs: Vec<CleanupRun>,
    notice: Option<String>,
    error: FormError,
}

impl DataPage {
    fn chosen(&self, id: &i64) -> bool {
        self.org_id == Some(*id)
    }

    fn months(&self, m: &Option<u32>) -> String {
        match m {
            Some(m) => self
                .shell
                .t("data.keep_months_n")
                .replace("{n}", &m.to_string()),
            None => self.shell.t("data.keep_forever"),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct DataQuery {
    #[serde(default, deserialize_with = "empty_none")]
    org_id: Option<i64>,
    older_than: Option<String>,
    /// A ticked box arrives as "on"; the preview link carries "true"/"false".
    keep_rollups: Option<String>,
    saved: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<DataQuery>,
) -> Response {
    let notice = notice(caller.locale, q.saved.as_deref());
    // a sent form (it always has an age) without the ticked box drops roll-ups; a first visit keeps them
    let keep_rollups = match (&q.older_than, q.keep_rollups.as_deref()) {
        (None, _) => true,
        (Some(_), v) => v.is_some_and(|v| v != "false"),
    };
    let mut error = FormError::default();
    let mut preview = None;
    if let (Some(org_id), Some(age)) = (q.org_id, q.older_than.as_deref()) {
        let result = match OlderThan::parse("older_than", age) {
            Ok(age) => store::preview(&state.db, &caller.scope, org_id, age, keep_rollups)
                .await
                .map_err(crate::error::ApiError::from),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(p) => preview = Some(p),
            Err(e) => error = FormError::new(caller.locale, "cleanup", e),
        }
    }
    show(&state, &caller, q, keep_rollups, preview, notice, error).await
}

async fn show(
    state: &AppState,
    caller: &PageCaller,
    q: DataQuery,
    keep_rollups: bool,
    preview: Option<CleanupPreview>,
    notice: Option<String>,
    error: FormError,
) -> Response {
    let shell = Shell::new(caller, "data").crumb("nav.data", "/data");
    let can_clean = caller.scope.has("data.cleanup");
    let can_back_up = may_back_up(&caller.scope).is_ok();
    if !can_clean && !can_back_up {
        return error_page(shell, keping_store::StoreError::Forbidden("data.cleanup"));
    }
    let (orgs, retentions, runs) = if can_clean {
        let orgs = match org_choices(&state.db, &caller.scope).await {
            Ok(o) => o,
            Err(e) => return error_page(shell, e),
        };
        let retentions = match store::own_retentions(&state.db, &caller.scope).await {
            Ok(r) => r,
            Err(e) => return error_page(shell, e),
        };
        let runs = match store::runs(&state.db, &caller.scope, 10, None).await {
            Ok(p) => p.items,
            Err(e) => return error_page(shell, e),
        };
        (orgs, retentions, runs)
    } else {
        Default::default()
    };
    let page = DataPage {
        ages: choices(
            caller.locale,
            "data.older_than",
            &OlderThan::ALL.map(OlderThan::code),
        ),
        org_id: q.org_id.or(orgs.first().map(|r| r.org.id)),
        older_than: q.older_than.unwrap_or_else(|| "year".into()),
        keep_rollups,
        shell,
        orgs,
        can_clean,
        can_back_up,
        preview,
        retentions,
        runs,
        notice,
        error,
    };
    render_status(&page, page.error.status())
}

#[derive(Deserialize)]
pub struct CleanupForm {
    org_id: i64,
    older_than: String,
    keep_rollups: Option<String>,
    /// The confirmation box of the preview step.
    confirm: Option<String>,
}

/// The confirmed cleanup: starts the run and shows its progress.
pub async fn start(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<CleanupForm>,
) -> Response {
    let keep_rollups = f.keep_rollups.as_deref().is_some_and(|v| v != "false");
    let back = |e: crate::error::ApiError| {
        let q = DataQuery {
            org_id: Some(f.org_id),
            older_than: Some(f.older_than.clone()),
            keep_rollups: Some(keep_rollups.to_string()),
            saved: None,
        };
        (q, FormError::new(caller.locale, "cleanup", e))
    };
    let age = match OlderThan::parse("older_than", &f.older_than) {
        Ok(a) => a,
        Err(e) => {
            let (q, error) = back(e.into());
            return show(&state, &caller, q, keep_rollups, None, None, error).await;
        }
    };
    if f.confirm.is_none() {
        let (q, error) = back(crate::error::ApiError::invalid(
            "confirm",
            "confirmation_required",
            "tick the confirmation first",
        ));
        let preview = store::preview(&state.db, &caller.scope, f.org_id, age, keep_rollups)
            .await
            .ok();
        return show(&state, &caller, q, keep_rollups, preview, None, error).await;
    }
    match start_cleanup(&state.db, &caller.scope, f.org_id, age, keep_rollups).await {
        Ok(run) => Redirect::to(&format!("/data/cleanups/{}", run.id)).into_response(),
        Err(e) => {
            let (q, error) = back(e);
            show(&state, &caller, q, keep_rollups, None, None, error).await
        }
    }
}

#[derive(askama::Template)]
#[template(path = "data_run.html")]
struct RunPage {
    shell: Shell,
    run: CleanupRun,
}

impl RunPage {
    fn status(&self) -> String {
        self.shell.t(&format!("data.status.{}", self.run.status))
    }

    fn age(&self) -> String {
        self.shell
            .locale
            .try_t(&format!("data.older_than.{}", self.run.older_than))
            .unwrap_or_else(|| {
                self.shell
                    .t("data.retention_period")
                    .replace("{n}", self.run.older_than.trim_end_matches('m'))
            })
    }
}

/// One run and its progress; the page re-reads itself while the run is going.
pub async fn run_page(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    let shell = Shell::new(&caller, "data")
        .crumb("nav.data", "/data")
        .crumb("data.run", &format!("/data/cleanups/{id}"));
    match store::run(&state.db, &caller.scope, id).await {
        Ok(run) => render(&RunPage { shell, run }),
        Err(e) => error_page(shell, e),
    }
}

#[derive(Deserialize)]
pub struct RetentionForm {
    org_id: i64,
    #[serde(default, deserialize_with = "empty_none")]
    keep_months: Option<u32>,
    /// save (own setting; empty months = keep for ever) or inherit (drop the own setting)
    action: String,
}

pub async fn save_retention(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<RetentionForm>,
) -> Response {
    let setting = (f.action != "inherit").then_some(Retention {
        keep_months: f.keep_months,
    });
    match store::put_retention(&state.db, &caller.scope, f.org_id, setting).await {
        Ok(_) => Redirect::to("/data?saved=saved").into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "retention", e);
            show(
                &state,
                &caller,
                DataQuery::default(),
                true,
                None,
                None,
                error,
            )
            .await
        }
    }
}

/// The backup download (data.backup with the data level all).
pub async fn backup(State(state): State<AppState>, caller: PageCaller) -> Response {
    match backup_response(&state.db, &caller.scope).await {
        Ok(r) => r,
        Err(e) => error_page(Shell::new(&caller, "data"), e),
    }
}
