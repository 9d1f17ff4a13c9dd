//! 实时监控: every window in the caller's reach, updated through SSE within a second of an event.

use super::{error_page, render, Shell};
use crate::auth::PageCaller;
use crate::i18n::Locale;
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use keping_domain::org::OrgPath;
use keping_store::evaluation::{self as store, WindowLive};
use keping_store::org::{self, OrgFilter};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

#[derive(Deserialize)]
pub struct MonitorQuery {
    org_id: Option<i64>,
}

#[derive(askama::Template)]
#[template(path = "monitor.html")]
struct MonitorPage {
    shell: Shell,
    windows: Vec<Card>,
    orgs: Vec<(i64, String, bool)>,
    org_id: Option<i64>,
}

/// One window's card, drawn for the page and for each live update.
#[derive(askama::Template)]
#[template(path = "monitor_card.html")]
pub struct Card {
    locale: Locale,
    w: WindowLive,
}

impl Card {
    fn t(&self, key: &str) -> String {
        self.locale.t(key)
    }

    fn state_label(&self) -> String {
        self.locale.t(&format!("monitor.state.{}", self.w.state))
    }

    fn state_class(&self) -> &'static str {
        match self.w.state.as_str() {
            "serving" => "primary",
            "awaiting_rating" => "warning",
            "idle" => "success",
            "paused" => "secondary",
            _ => "dark",
        }
    }

    /// How long the current service has run (mm:ss), as drawn; the browser counts on from there.
    fn elapsed(&self, since: &i64) -> String {
        let s = ((keping_domain::now_millis() - since) / 1000).max(0);
        format!("{:02}:{:02}", s / 60, s % 60)
    }

    /// 参评率 today: services with a counted rating / services ended.
    fn rate(&self) -> String {
        match self.w.today_services {
            0 => "—".into(),
            n => format!("{:.0}%", self.w.today_rated as f64 * 100.0 / n as f64),
        }
    }

    fn polarity_class(p: &str) -> &'static str {
        match p {
            "positive" => "text-bg-success",
            "negative" => "text-bg-danger",
            _ => "text-bg-secondary",
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<MonitorQuery>,
) -> Response {
    let shell = Shell::new(&caller, "monitor").crumb("nav.monitor", "/monitor");
    let windows = match store::monitor(&state.db, &caller.scope, q.org_id, None).await {
        Ok(w) => w,
        Err(e) => return error_page(shell, e),
    };
    let orgs = org::list(
        &state.db,
        &caller.scope,
        &OrgFilter {
            enabled: Some(true),
            ..Default::default()
        },
        500,
        None,
    )
    .await
    .map(|p| {
        p.items
            .into_iter()
            .map(|o| {
                (
                    o.id,
                    format!("{}{}", "　".repeat(o.depth as usize), o.name),
                    Some(o.id) == q.org_id,
                )
            })
            .collect()
    })
    .unwrap_or_default();
    let windows = windows
        .into_iter()
        .map(|w| Card {
            locale: caller.locale,
            w,
        })
        .collect();
    render(&MonitorPage {
        shell,
        windows,
        orgs,
        org_id: q.org_id,
    })
}

/// The SSE stream behind the page: one event `window-<id>` with the card's new HTML per change at
/// a window the caller may watch (and, with `org_id`, inside that subtree).
pub async fn events(
    State(state): State<AppState>,
    caller: PageCaller,
    Query(q): Query<MonitorQuery>,
) -> Response {
    if !caller.scope.has("monitor.view") {
        return error_page(
            Shell::new(&caller, "monitor"),
            keping_store::StoreError::Forbidden("monitor.view"),
        );
    }
    let reach = caller.scope.reach("monitor.view");
    let within = match q.org_id {
        Some(id) => match org::get(&state.db, &caller.scope, id).await {
            Ok(o) => Some(o.org_path()),
            Err(e) => return error_page(Shell::new(&caller, "monitor"), e),
        },
        None => None,
    };
    // subscribe before the snapshot, so nothing that happens in between is missed; a browser that
    // (re)connects starts from the current state of every card, then gets the changes
    let changes = BroadcastStream::new(state.live.subscribe());
    let snapshot = store::monitor(&state.db, &caller.scope, q.org_id, None)
        .await
        .unwrap_or_default();
    let locale = caller.locale;
    let first = futures_util::stream::iter(
        snapshot
            .into_iter()
            .filter_map(move |w| card_event(locale, w))
            .map(Ok),
    );
    let stream = first.chain(cards(changes, state, caller, reach, within));
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The `window-<id>` event carrying a card's HTML.
fn card_event(locale: Locale, w: WindowLive) -> Option<Event> {
    let id = w.window.id;
    let html = askama::Template::render(&Card { locale, w }).ok()?;
    Some(Event::default().event(format!("window-{id}")).data(html))
}

fn cards(
    changes: BroadcastStream<crate::live::LiveEvent>,
    state: AppState,
    caller: PageCaller,
    reach: keping_domain::scope::Reach,
    within: Option<OrgPath>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    changes
        .filter_map(move |event| {
            let event = event.ok()?;
            let path = OrgPath::parse(&event.org_path)?;
            (reach.contains(&path) && within.as_ref().is_none_or(|w| w.contains(&path)))
                .then_some(event.window_id)
        })
        .then(move |window_id| {
            let (state, scope, locale) = (state.clone(), caller.scope.clone(), caller.locale);
            async move {
                card_event(
                    locale,
                    store::monitor(&state.db, &scope, None, Some(window_id))
                        .await
                        .ok()?
                        .pop()?,
                )
            }
        })
        .filter_map(|e| e.map(Ok))
}
