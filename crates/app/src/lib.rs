//! Wiring for the `keping` binary, also used by the end-to-end tests to start a real server.

pub mod bench;
pub mod bench_customers;
pub mod bench_stats;
pub mod config;
pub mod demo;
pub mod generate;
pub mod notify;
pub mod simulate;

use anyhow::Context;
use config::Config;
use keping_domain::auth;
use keping_store::{accounts, Db};
use keping_web::AppState;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Connects, migrates and makes sure an administrator exists. Returns the state and, when the
/// administrator was created now with a generated password, that password (to show once).
pub async fn prepare(config: &Config) -> anyhow::Result<(AppState, Option<String>)> {
    let db = Db::connect_serving(&config.database_url())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                config.database_url_for_display()
            )
        })?;
    let (password, generated) = match &config.admin_password {
        Some(p) => {
            keping_domain::validate::password("KEPING_ADMIN_PASSWORD", p)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (p.clone(), false)
        }
        None => (auth::generate_password(), true),
    };
    let hash =
        tokio::task::spawn_blocking(move || (auth::hash_password(&password), password)).await?;
    let created = accounts::bootstrap(&db, &hash.0).await?;
    let shown = (created && generated).then_some(hash.1);
    Ok((AppState::new(db), shown))
}

/// A server and its workers running in the background: its address and a switch to stop them.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stop_workers: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.stop_workers.send(true);
        // live streams (SSE) never end by themselves: give connections a moment, then cut them
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        for w in self.workers.drain(..) {
            let _ = w.await;
        }
    }
}

/// Binds (port 0 picks a free one), serves and runs the workers until stopped.
pub async fn start(state: AppState, config: &Config) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = keping_web::app(state.clone());
    let task = tokio::spawn(async move {
        // the peer address reaches handlers: QR pages limit presses per visitor
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "server stopped with an error");
        }
    });
    let mailer = match (&config.smtp_url, &config.smtp_from) {
        (Some(url), Some(from)) => Some(
            notify::Mailer::new(url, from)
                .context("KEPING_SMTP_URL or KEPING_SMTP_FROM is not valid")?,
        ),
        _ => None,
    };
    let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
    let outbox = notify::Worker {
        db: state.db.clone(),
        wake: state.outbox_wake.clone(),
        mailer,
    };
    let mut workers = vec![
        tokio::spawn(state.db.clone().checkpoint_loop(workers_stopped.clone())),
        tokio::spawn(outbox.run(workers_stopped.clone())),
        tokio::spawn(housekeeping(state.db.clone(), workers_stopped.clone())),
        tokio::spawn(data_worker(state.db.clone(), workers_stopped.clone())),
        tokio::spawn(scheduler(
            state.db.clone(),
            state.outbox_wake.clone(),
            config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}")),
            workers_stopped.clone(),
        )),
    ];
    if state.db.backend == keping_store::Backend::Postgres {
        workers.push(tokio::spawn(
            state
                .live
                .clone()
                .forward_to_postgres(state.db.clone(), workers_stopped.clone()),
        ));
        workers.push(tokio::spawn(listen(
            state.db.url.clone(),
            state.live.clone(),
            workers_stopped,
        )));
    }
    Ok(Running {
        addr,
        state,
        stop: Some(stop),
        stop_workers,
        task,
        workers,
    })
}

/// Hears live events published by any instance on the same PostgreSQL database (NOTIFY) and hands
/// them to this instance's subscribers. Reconnects when the connection drops.
async fn listen(
    url: String,
    live: keping_web::live::Live,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use keping_web::live::{CallEvent, LiveEvent, CALLS_CHANNEL, CHANNEL};
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for live events; retrying");
                tokio::select! { _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue, _ = stop.changed() => return }
            }
        };
        if let Err(e) = listener.listen_all([CHANNEL, CALLS_CHANNEL]).await {
            tracing::warn!(error = %e, "cannot listen for live events; retrying");
            continue;
        }
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) if n.channel() == CALLS_CHANNEL => {
                        if let Some(event) = CallEvent::parse(n.payload()) {
                            live.deliver_call(event);
                        }
                    }
                    Ok(n) => {
                        for event in LiveEvent::parse_all(n.payload()) {
                            live.deliver(event);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live events connection lost; reconnecting");
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// Chores that keep data honest over time, once a minute: stale duty sessions end, customers
/// nobody followed up return to the public pool.
async fn housekeeping(db: keping_store::Db, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match keping_store::evaluation::end_stale_duties(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(ended = n, "stale duty sessions ended"),
            Err(e) => tracing::warn!(error = %e, "cannot end stale duty sessions"),
        }
        match keping_store::customers::return_idle_to_pool(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(returned = n, "idle customers returned to the public pool"),
            Err(e) => tracing::warn!(error = %e, "cannot return idle customers to the pool"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Scheduled notices, once a minute: reports whose period closed are built and queued (each
/// once per period; see `keping_store::reports::run_due`), monthly grading runs with their
/// warnings (`keping_store::grading_notices::run_due`), each rep's reminder e-mail once a day
/// (`keping_store::customers::reminders::send_digests`), and the outbox worker is woken.
async fn scheduler(
    db: keping_store::Db,
    wake: std::sync::Arc<tokio::sync::Notify>,
    base_url: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = keping_store::reports::run_due(&db, keping_domain::now_millis(), &base_url) => match r {
                Ok(sent) if !sent.is_empty() => {
                    tracing::info!(reports = sent.len(), "scheduled reports queued");
                    wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot run scheduled reports"),
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            r = keping_store::grading_notices::run_due(&db, keping_domain::now_millis(), &base_url) => match r {
                Ok(ran) if !ran.is_empty() => {
                    tracing::info!(runs = ran.len(), "scheduled grading runs done");
                    wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot run scheduled grading"),
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            r = keping_store::customers::reminders::send_digests(&db, keping_domain::now_millis(), &base_url) => match r {
                Ok(n) if n > 0 => {
                    tracing::info!(emails = n, "reminder e-mails queued");
                    wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot send reminder e-mails"),
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Data management on schedule, every ten minutes: resumes cleanups a restart interrupted and
/// applies the orgs' retention settings (each org once a day; see `keping_store::data::apply_retention`).
async fn data_worker(db: keping_store::Db, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        // a little after start, so that a restarting server first serves
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
            _ = stop.changed() => return,
        }
        // stopping mid-chunk is safe: the chunk rolls back and the run is resumed later
        tokio::select! {
            r = keping_store::data::apply_retention(&db) => if let Err(e) = r {
                tracing::warn!(error = %e, "cannot apply data retention");
            },
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(570)) => {}
            _ = stop.changed() => return,
        }
    }
}
