//! Wiring for the `keping` binary, also used by the end-to-end tests to start a real server.

pub mod bench;
pub mod config;
pub mod demo;

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
    let db = Db::connect(&config.database_url()).await.with_context(|| {
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

/// A server running in the background: its address and a switch to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds (port 0 picks a free one) and serves until stopped.
pub async fn start(state: AppState, bind: &str) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
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
    Ok(Running {
        addr,
        state,
        stop: Some(stop),
        task,
    })
}
