//! Live events: something changed at a window. Browsers watching the monitor get them through SSE.
//! On SQLite (one instance) events go straight to the local channel; on PostgreSQL they go through
//! NOTIFY so that every instance sharing the database hears them (payloads are ids, well under the
//! 8000-byte limit).

use keping_store::{Backend, Db};
use tokio::sync::broadcast;

pub const CHANNEL: &str = "keping_live";
/// Incoming calls for caller-ID (来电弹屏), to the agent's browser wherever he is connected.
pub const CALLS_CHANNEL: &str = "keping_calls";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    pub window_id: i64,
    pub org_path: String,
}

impl LiveEvent {
    pub fn payload(&self) -> String {
        format!("{}|{}", self.window_id, self.org_path)
    }

    pub fn parse(payload: &str) -> Option<LiveEvent> {
        let (id, path) = payload.split_once('|')?;
        Some(LiveEvent {
            window_id: id.parse().ok()?,
            org_path: path.to_string(),
        })
    }
}

/// A call the telephony system announced for an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    pub agent_id: i64,
    pub call_id: i64,
}

impl CallEvent {
    pub fn payload(&self) -> String {
        format!("{}|{}", self.agent_id, self.call_id)
    }

    pub fn parse(payload: &str) -> Option<CallEvent> {
        let (agent, call) = payload.split_once('|')?;
        Some(CallEvent {
            agent_id: agent.parse().ok()?,
            call_id: call.parse().ok()?,
        })
    }
}

#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<LiveEvent>,
    calls: broadcast::Sender<CallEvent>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            tx: broadcast::channel(1024).0,
            calls: broadcast::channel(256).0,
        }
    }
}

impl Live {
    /// Announces a change; never fails the request that caused it.
    pub async fn publish(&self, db: &Db, event: LiveEvent) {
        if db.backend == Backend::Postgres {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(event.payload())
                .execute(&db.pool)
                .await
            {
                tracing::warn!(error = %e, "cannot publish a live event");
            }
        } else {
            self.deliver(event);
        }
    }

    /// Hands an event to this instance's subscribers (from `publish` or the PostgreSQL listener).
    pub fn deliver(&self, event: LiveEvent) {
        // no subscriber is not an error
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Announces a call to its agent, through NOTIFY on PostgreSQL like window events.
    pub async fn publish_call(&self, db: &Db, event: CallEvent) {
        if db.backend == Backend::Postgres {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CALLS_CHANNEL)
                .bind(event.payload())
                .execute(&db.pool)
                .await
            {
                tracing::warn!(error = %e, "cannot publish a call");
            }
        } else {
            self.deliver_call(event);
        }
    }

    pub fn deliver_call(&self, event: CallEvent) {
        let _ = self.calls.send(event);
    }

    pub fn subscribe_calls(&self) -> broadcast::Receiver<CallEvent> {
        self.calls.subscribe()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn payload_round_trip() {
        let e = super::LiveEvent {
            window_id: 12,
            org_path: "/1/7/".into(),
        };
        assert_eq!(super::LiveEvent::parse(&e.payload()), Some(e));
        assert_eq!(super::LiveEvent::parse("x|/1/"), None);
        let c = super::CallEvent {
            agent_id: 3,
            call_id: 9,
        };
        assert_eq!(super::CallEvent::parse(&c.payload()), Some(c));
    }
}
