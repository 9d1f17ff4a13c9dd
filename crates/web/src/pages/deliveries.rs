//! 发送记录: each outbox delivery in the caller's subtree and how it fared, with "retry now" for
//! failed ones; and 定期报表: the report schedules, set up here.

use super::{
    choices, error_page, notice, org_choices, render, Choice, FormError, Pager, Shell, TreeRow,
};
use crate::auth::PageCaller;
use crate::AppState;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use keping_domain::notify::Channel;
use keping_domain::reports::{Frequency, ScheduleInput};
use keping_store::notify::{self, Delivery};
use keping_store::reports::{self, Schedule};
use serde::Deserialize;

const PAGE_SIZE: i64 = 50;
const STATUSES: [&str; 4] = ["pending", "sending", "delivered", "failed"];
const FREQUENCIES: [&str; 3] = ["daily", "weekly", "monthly"];

#[derive(Deserialize)]
pub struct DeliveryQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    cursor: Option<String>,
    saved: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    shell: Shell,
    q: DeliveryQuery,
    notice: Option<String>,
    statuses: Vec<Choice>,
    kinds: Vec<(String, String)>,
    rows: Vec<Line>,
    pager: Pager,
}

struct Line {
    d: Delivery,
    status: String,
    kind: String,
    channel: String,
}

fn kind_label(shell: &Shell, kind: &str) -> String {
    shell
        .locale
        .try_t(&format!("deliveries.kind.{kind}"))
        .unwrap_or_else(|| kind.to_string())
}

pub async fn list(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<DeliveryQuery>,
) -> Response {
    let shell = Shell::new(&caller, "deliveries").crumb("nav.deliveries", "/deliveries");
    let found = match notify::deliveries(
        &state.db,
        &caller.scope,
        Some(q.status.as_str()),
        Some(q.kind.as_str()),
        PAGE_SIZE,
        q.cursor.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return error_page(shell, e),
    };
    let kinds = match notify::delivery_kinds(&state.db, &caller.scope).await {
        Ok(k) => k
            .into_iter()
            .map(|k| {
                let label = kind_label(&shell, &k);
                (k, label)
            })
            .collect(),
        Err(e) => return error_page(shell, e),
    };
    let pager = Pager::new(
        "/deliveries",
        &[("status", q.status.as_str()), ("kind", q.kind.as_str())],
        q.cursor.as_deref(),
        found.next_cursor.as_deref(),
    );
    let rows = found
        .items
        .into_iter()
        .map(|d| Line {
            status: shell
                .locale
                .try_t(&format!("deliveries.status.{}", d.status))
                .unwrap_or_else(|| d.status.clone()),
            kind: kind_label(&shell, &d.topic),
            channel: shell
                .locale
                .try_t(&format!("deliveries.channel.{}", d.channel))
                .unwrap_or_else(|| d.channel.clone()),
            d,
        })
        .collect();
    render(&DeliveriesPage {
        notice: notice(caller.locale, q.saved.as_deref()),
        statuses: choices(caller.locale, "deliveries.status", &STATUSES),
        shell,
        q,
        kinds,
        rows,
        pager,
    })
}

pub async fn retry(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match notify::retry(&state.db, &caller.scope, id).await {
        Ok(()) => {
            state.outbox_wake.notify_one();
            Redirect::to("/deliveries?saved=retried").into_response()
        }
        Err(e) => error_page(Shell::new(&caller, "deliveries"), e),
    }
}

// ---------------------------------------------------------------- report schedules

/// The channels a schedule form offers.
pub(super) const CHANNELS: [&str; 5] = ["email", "webhook", "dingtalk", "wecom", "feishu"];

/// A channel from a schedule form's kind and target (address or URL).
pub(super) fn channel_from(kind: &str, target: &str) -> Result<Channel, keping_domain::Invalid> {
    let target = target.trim().to_string();
    Ok(match kind {
        "email" => Channel::Email { to: target },
        "webhook" => Channel::Webhook { url: target },
        "dingtalk" => Channel::Dingtalk { url: target },
        "wecom" => Channel::Wecom { url: target },
        "feishu" => Channel::Feishu { url: target },
        other => {
            return Err(keping_domain::Invalid::new(
                "channel",
                "invalid_channel",
                format!("'{other}' is not a channel"),
            ))
        }
    })
}

/// Where channels send to, for a list.
pub(super) fn targets(channels: &[Channel]) -> String {
    channels
        .iter()
        .map(|c| match c {
            Channel::Email { to } => to.clone(),
            Channel::Webhook { url }
            | Channel::Dingtalk { url }
            | Channel::Wecom { url }
            | Channel::Feishu { url } => url.clone(),
            Channel::Sms { phone, .. } => phone.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize, Default)]
pub struct ScheduleForm {
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    frequency: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    target: String,
}

impl ScheduleForm {
    fn input(&self) -> Result<ScheduleInput, keping_domain::Invalid> {
        let org_id = self.org_id.trim().parse().map_err(|_| {
            keping_domain::Invalid::new("org_id", "required", "choose the org to report on")
        })?;
        let frequency = Frequency::parse("frequency", &self.frequency)?;
        Ok(ScheduleInput {
            org_id,
            frequency,
            channels: vec![channel_from(&self.channel, &self.target)?],
            enabled: true,
        })
    }
}

#[derive(askama::Template)]
#[template(path = "report_schedules.html")]
struct SchedulesPage {
    shell: Shell,
    notice: Option<String>,
    error: FormError,
    form: ScheduleForm,
    orgs: Vec<TreeRow>,
    frequencies: Vec<Choice>,
    channels: Vec<Choice>,
    rows: Vec<ScheduleLine>,
}

struct ScheduleLine {
    s: Schedule,
    frequency: String,
    targets: String,
}

async fn show_schedules(
    state: &AppState,
    caller: &PageCaller,
    notice: Option<String>,
    error: FormError,
    form: ScheduleForm,
) -> Response {
    let shell =
        Shell::new(caller, "report_schedules").crumb("nav.report_schedules", "/report-schedules");
    let list = match reports::list(&state.db, &caller.scope).await {
        Ok(l) => l,
        Err(e) => return error_page(shell, e),
    };
    let orgs = match org_choices(&state.db, &caller.scope).await {
        Ok(o) => o,
        Err(e) => return error_page(shell, e),
    };
    let rows = list
        .into_iter()
        .map(|s| ScheduleLine {
            frequency: shell.t(&format!("reports.frequency.{}", s.frequency)),
            targets: targets(&s.channels),
            s,
        })
        .collect();
    render(&SchedulesPage {
        frequencies: choices(caller.locale, "reports.frequency", &FREQUENCIES),
        channels: choices(caller.locale, "deliveries.channel", &CHANNELS),
        shell,
        notice,
        error,
        form,
        orgs,
        rows,
    })
}

#[derive(Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

pub async fn schedules(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<SavedQuery>,
) -> Response {
    let notice = notice(caller.locale, q.saved.as_deref());
    show_schedules(
        &state,
        &caller,
        notice,
        FormError::default(),
        ScheduleForm {
            frequency: "daily".into(),
            channel: "email".into(),
            ..Default::default()
        },
    )
    .await
}

pub async fn create_schedule(
    State(state): State<AppState>,
    caller: PageCaller,
    Form(f): Form<ScheduleForm>,
) -> Response {
    let result = match f.input() {
        Ok(input) => reports::create(&state.db, &caller.scope, &input).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(_) => Redirect::to("/report-schedules?saved=schedule_created").into_response(),
        Err(e) => {
            let error = FormError::new(caller.locale, "schedule", e);
            show_schedules(&state, &caller, None, error, f).await
        }
    }
}

#[derive(Deserialize)]
pub struct ToggleForm {
    enabled: String,
}

pub async fn toggle_schedule(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
    Form(f): Form<ToggleForm>,
) -> Response {
    let result = async {
        let s = reports::get(&state.db, &caller.scope, id).await?;
        let input = ScheduleInput {
            org_id: s.org_id,
            frequency: Frequency::parse("frequency", &s.frequency)?,
            channels: s.channels,
            enabled: f.enabled == "1",
        };
        reports::update(&state.db, &caller.scope, id, &input).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/report-schedules?saved=saved").into_response(),
        Err(e) => error_page(Shell::new(&caller, "report_schedules"), e),
    }
}

pub async fn delete_schedule(
    State(state): State<AppState>,
    caller: PageCaller,
    Path(id): Path<i64>,
) -> Response {
    match reports::delete(&state.db, &caller.scope, id).await {
        Ok(()) => Redirect::to("/report-schedules?saved=schedule_deleted").into_response(),
        Err(e) => error_page(Shell::new(&caller, "report_schedules"), e),
    }
}
