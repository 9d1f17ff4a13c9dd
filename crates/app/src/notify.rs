//! The outbox worker: takes due deliveries, sends them, records the result. Woken at once when a
//! press queues an alert, and every second otherwise (for retries and other instances' rows).

use base64::Engine;
use keping_domain::notify::{render, render_notice, Outgoing};
use keping_store::notify::{self, Claimed};
use keping_store::Db;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// SMTP settings for e-mail channels; without them e-mail deliveries fail with a clear error.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `url` like `smtps://user:password@smtp.example.cn:465`; `from` like `客评 <alerts@example.cn>`.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Mailer> {
        Ok(Mailer {
            transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build(),
            from: from.parse()?,
        })
    }
}

pub struct Worker {
    pub db: Db,
    pub wake: Arc<Notify>,
    pub mailer: Option<Mailer>,
}

impl Worker {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client with defaults builds");
        loop {
            let batch = match notify::claim(&self.db, 20).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim deliveries");
                    Vec::new()
                }
            };
            let idle = batch.is_empty();
            for item in batch {
                let result = self.deliver(&http, &item).await;
                let recorded = match &result {
                    Ok(()) => notify::delivered(&self.db, item.id).await,
                    Err(e) => notify::failed(&self.db, &item, e).await,
                };
                if let Err(e) = recorded {
                    // the lease runs out and the delivery is tried again: at least once, never lost
                    tracing::warn!(error = %e, id = item.id, "cannot record a delivery's result");
                }
                if let Err(e) = result {
                    tracing::info!(id = item.id, attempt = item.attempts + 1, error = %e, "delivery failed; will retry");
                }
            }
            if idle {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            } else if *stop.borrow() {
                return;
            }
        }
    }

    async fn deliver(&self, http: &reqwest::Client, item: &Claimed) -> Result<(), String> {
        let Some(channel) = item.channel() else {
            return Err("the stored delivery cannot be read".into());
        };
        let outgoing = if item.topic == notify::NEGATIVE_RATING {
            item.alert().map(|a| render(&channel, &a))
        } else {
            item.notice().map(|n| render_notice(&channel, &n))
        };
        let Some(outgoing) = outgoing else {
            return Err("the stored delivery cannot be read".into());
        };
        match outgoing {
            Outgoing::Http { url, body } => {
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json; charset=utf-8")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(format!(
                        "{url} answered {status}: {}",
                        text.chars().take(200).collect::<String>()
                    ));
                }
                // DingTalk, WeCom and Feishu answer 200 with a non-zero code when they refuse
                let refused = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| {
                        v.get("errcode")
                            .or_else(|| v.get("code"))
                            .and_then(|c| c.as_i64())
                    })
                    .filter(|c| *c != 0);
                match refused {
                    Some(code) => Err(format!(
                        "{url} refused the message with code {code}: {}",
                        text.chars().take(200).collect::<String>()
                    )),
                    None => Ok(()),
                }
            }
            Outgoing::Email {
                to,
                subject,
                body,
                attachment,
            } => {
                let mailer = self
                    .mailer
                    .as_ref()
                    .ok_or("no SMTP server is configured (KEPING_SMTP_URL, KEPING_SMTP_FROM)")?;
                let to: Mailbox = to.parse().map_err(|e| format!("{to}: {e}"))?;
                let builder = Message::builder()
                    .from(mailer.from.clone())
                    .to(to)
                    .subject(subject);
                let message = match attachment {
                    None => builder.body(body),
                    Some(a) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(&a.base64)
                            .map_err(|e| format!("the attachment cannot be read: {e}"))?;
                        let kind = ContentType::parse(&a.content_type)
                            .map_err(|e| format!("{}: {e}", a.content_type))?;
                        builder.multipart(
                            MultiPart::mixed()
                                .singlepart(SinglePart::plain(body))
                                .singlepart(
                                    lettre::message::Attachment::new(a.filename).body(bytes, kind),
                                ),
                        )
                    }
                }
                .map_err(|e| e.to_string())?;
                mailer
                    .transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}
