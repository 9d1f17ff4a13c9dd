//! Live events: something changed at a window. Browsers watching the monitor get them through SSE.
//! On SQLite (one instance) events go straight to the local channel; on PostgreSQL they go through
//! NOTIFY so that every instance sharing the database hears them. Under load a NOTIFY per press
//! would double the database's round trips, so window events are gathered for a moment
//! ([`GATHER`]), one per window, and sent several to a NOTIFY (`;`-separated, under the
//! 8000-byte payload limit) by [`Live::forward_to_postgres`].

use keping_store::{Backend, Db};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};

pub const CHANNEL: &str = "keping_live";
/// Incoming calls for caller-ID (来电弹屏), to the agent's browser wherever he is connected.
pub const CALLS_CHANNEL: &str = "keping_calls";
/// How long window events wait to share a NOTIFY.
pub const GATHER: Duration = Duration::from_millis(25);
/// A NOTIFY payload stays below PostgreSQL's 8000 bytes.
const MAX_PAYLOAD: usize = 7_900;

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

    /// The events of one NOTIFY payload (one or more, `;`-separated); malformed parts are skipped.
    pub fn parse_all(payload: &str) -> Vec<LiveEvent> {
        payload.split(';').filter_map(LiveEvent::parse).collect()
    }

    /// Payloads for `events`: one event per window (the last), as few payloads as fit.
    pub fn payloads(events: Vec<LiveEvent>) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut unique: Vec<LiveEvent> = events
            .into_iter()
            .rev()
            .filter(|e| seen.insert(e.window_id))
            .collect();
        unique.reverse();
        let mut out: Vec<String> = Vec::new();
        for e in unique {
            let p = e.payload();
            match out.last_mut() {
                Some(last) if last.len() + 1 + p.len() <= MAX_PAYLOAD => {
                    last.push(';');
                    last.push_str(&p);
                }
                _ => out.push(p),
            }
        }
        out
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
    /// Window events waiting for their NOTIFY (PostgreSQL).
    pending: Arc<Mutex<Vec<LiveEvent>>>,
    wake: Arc<Notify>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            tx: broadcast::channel(1024).0,
            calls: broadcast::channel(256).0,
            pending: Arc::default(),
            wake: Arc::default(),
        }
    }
}

impl Live {
    /// Announces a change; never fails the request that caused it. On PostgreSQL the event waits
    /// for [`Live::forward_to_postgres`] to send it with the others of the moment.
    pub fn publish(&self, db: &Db, event: LiveEvent) {
        if db.backend == Backend::Postgres {
            self.pending
                .lock()
                .expect("the pending list is never poisoned")
                .push(event);
            self.wake.notify_one();
        } else {
            self.deliver(event);
        }
    }

    /// Sends the published window events to every instance through NOTIFY, gathered for
    /// [`GATHER`] at a time, until `stop`; what is waiting then is sent before it returns.
    pub async fn forward_to_postgres(self, db: Db, mut stop: watch::Receiver<bool>) {
        loop {
            let stopping = tokio::select! {
                _ = self.wake.notified() => false,
                _ = stop.changed() => true,
            };
            if !stopping {
                tokio::time::sleep(GATHER).await;
            }
            let events = std::mem::take(
                &mut *self
                    .pending
                    .lock()
                    .expect("the pending list is never poisoned"),
            );
            for payload in LiveEvent::payloads(events) {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(&db.pool)
                    .await
                {
                    tracing::warn!(error = %e, "cannot publish live events");
                }
            }
            if stopping {
                return;
            }
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

    use super::LiveEvent;

    fn at(window_id: i64) -> LiveEvent {
        LiveEvent {
            window_id,
            org_path: format!("/1/{window_id}/"),
        }
    }

    #[test]
    fn events_share_payloads_one_per_window() {
        let payloads = LiveEvent::payloads(vec![at(1), at(2), at(1), at(3)]);
        assert_eq!(payloads, ["2|/1/2/;1|/1/1/;3|/1/3/"]);
        assert_eq!(
            LiveEvent::parse_all(&payloads[0]),
            vec![at(2), at(1), at(3)]
        );
        assert_eq!(LiveEvent::parse_all("5|/1/5/;junk;"), vec![at(5)]);
        // a thousand windows do not fit one payload: each payload stays under the limit
        let many = LiveEvent::payloads((0..1000).map(at).collect());
        assert!(many.len() > 1);
        assert!(many.iter().all(|p| p.len() <= super::MAX_PAYLOAD));
        let back: usize = many.iter().map(|p| LiveEvent::parse_all(p).len()).sum();
        assert_eq!(back, 1000);
    }
}
