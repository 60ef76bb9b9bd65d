//! The sender: one task that delivers the outbox's rows to `notify.webhook_url`.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;

use super::{
    config::{NotifyFormat, NotifySettings},
    formats::{body, signature},
};
use crate::{auth::Auth, store::outbox::OutboxRow};

/// The longest a delivery may take, from connecting to the receiver's answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause after a failure; each failure in a row doubles it...
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// ...up to this.
const MAX_PAUSE: Duration = Duration::from_secs(600);
/// A delivery that fails after waiting this long is dropped.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the outbox is read for deliveries queued by another process (the command line).
const LOOK_EVERY: Duration = Duration::from_secs(10);
/// The name of the sender's lease, where several nodes share the database.
pub const TASK: &str = "notify";
/// How long the sender's lease lasts unrenewed: a node that stopped is replaced within it.
const LEASE: Duration = Duration::from_secs(30);
/// How often tokens are checked for coming within an expiry warning.
const EXPIRY_LOOK_EVERY: Duration = Duration::from_secs(60);
/// Deliveries read from the outbox at once.
const READ_AT_ONCE: i64 = 50;

/// How deliveries are made: where to, signed with what, in which form.
pub struct Webhook {
    agent: ureq::Agent,
    url: String,
    secret: Option<Vec<u8>>,
    format: NotifyFormat,
}

impl Webhook {
    /// The webhook `notify` describes, or `None` when `notify.webhook_url` is empty; an
    /// unreadable `notify.ca_file` is an error naming it (at start, not at the first event).
    pub fn from_settings(settings: &NotifySettings) -> anyhow::Result<Option<Self>> {
        let Some(url) = settings.webhook_url.0.clone() else {
            return Ok(None);
        };
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            // A redirect would turn the POST into a GET elsewhere: a failure to fix instead.
            .max_redirects(0)
            .user_agent(concat!("Lodge/", env!("CARGO_PKG_VERSION")));
        if !settings.ca_file.as_os_str().is_empty() {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&authorities(
                        &settings.ca_file,
                    )?))
                    .build(),
            );
        }
        Ok(Some(Self {
            agent: config.build().into(),
            url,
            secret: (!settings.webhook_secret.is_empty())
                .then(|| settings.webhook_secret.as_bytes().to_vec()),
            format: settings.format,
        }))
    }

    /// Posts one delivery; `Err` says why it was not acknowledged, in words that never hold
    /// the URL (a Slack webhook's path is its secret).
    fn post(&self, row: &OutboxRow) -> Result<(), String> {
        let body = body(self.format, row);
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Lodge-Event", &row.event)
            .header("X-Lodge-Delivery", &row.id);
        if let Some(secret) = &self.secret {
            request = request.header("X-Lodge-Signature", signature(secret, &body));
        }
        match request.send(&body[..]) {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(format!("the receiver answered {}", answer.status())),
            Err(e) => Err(failure(&e)),
        }
    }
}

/// The certificates of `notify.ca_file` (PEM), at least one.
fn authorities(path: &std::path::Path) -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    let text = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read notify.ca_file {}: {e}", path.display()))?;
    let certificates: Vec<_> = ureq::tls::parse_pem(&text)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect();
    if certificates.is_empty() {
        anyhow::bail!("notify.ca_file {} holds no PEM certificate", path.display());
    }
    Ok(certificates)
}

/// What went wrong with a request, without its URL.
fn failure(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
        ureq::Error::Io(e) => format!("cannot reach the receiver: {e}"),
        ureq::Error::HostNotFound => "the receiver's host name is not found".to_owned(),
        ureq::Error::ConnectionFailed => "cannot connect to the receiver".to_owned(),
        ureq::Error::Tls(why) => format!("TLS: {why}"),
        ureq::Error::Rustls(e) => format!("TLS: {e}"),
        ureq::Error::Protocol(e) => format!("the receiver broke HTTP: {e}"),
        _ => "the request failed".to_owned(),
    }
}

/// The pause after `failures` failures in a row.
fn pause_after(failures: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_PAUSE)
}

/// Delivers to `webhook` until the task is dropped.
pub async fn deliver(auth: Auth, webhook: Webhook) {
    let webhook = Arc::new(webhook);
    let mut failures = 0_u32;
    let mut expiry_looked: Option<std::time::Instant> = None;
    loop {
        // One node of several delivers; the others look again now and then, to take over.
        if !auth.runs(TASK, LEASE).await {
            tokio::time::sleep(LOOK_EVERY).await;
            continue;
        }
        if expiry_looked.is_none_or(|at| at.elapsed() >= EXPIRY_LOOK_EVERY) {
            expiry_looked = Some(std::time::Instant::now());
            if let Err(e) = auth.notices().warn_of_expiring_tokens().await {
                tracing::warn!("cannot look for expiring tokens: {e}");
            }
        }
        let waiting = auth.notices().waiting(READ_AT_ONCE).await;
        let waiting = match waiting {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!("cannot read the notifications waiting: {e:#}");
                tokio::time::sleep(LOOK_EVERY).await;
                continue;
            }
        };
        // A full read may have left more behind; anything this process queued meanwhile has
        // woken the wait below already.
        let more = waiting.len() as i64 == READ_AT_ONCE;
        let mut failed = false;
        for row in waiting {
            let sent = {
                let (webhook, row) = (webhook.clone(), row.clone());
                tokio::task::spawn_blocking(move || webhook.post(&row))
                    .await
                    .unwrap_or_else(|e| Err(format!("the delivery failed: {e}")))
            };
            match sent {
                Ok(()) => {
                    failures = 0;
                    tracing::info!(id = row.id, event = row.event, "notification delivered");
                    settle(&auth, &row, true).await;
                }
                Err(why) => {
                    failures += 1;
                    failed = true;
                    // Never negative: a clock set back must not make a row look old.
                    let waited = Timestamp::now()
                        .duration_since(
                            Timestamp::from_microsecond(row.queued_at)
                                .unwrap_or(Timestamp::UNIX_EPOCH),
                        )
                        .max(jiff::SignedDuration::ZERO)
                        .unsigned_abs();
                    let give_up = waited >= GIVE_UP_AFTER;
                    if give_up {
                        tracing::error!(
                            id = row.id,
                            event = row.event,
                            attempts = row.attempts + 1,
                            "notification dropped after a day of failures: {why}"
                        );
                    } else {
                        tracing::warn!(
                            id = row.id,
                            event = row.event,
                            attempt = row.attempts + 1,
                            retry_in = %format_args!("{:?}", pause_after(failures)),
                            "notification not delivered: {why}"
                        );
                    }
                    settle(&auth, &row, give_up).await;
                    break;
                }
            }
        }
        if failed {
            // The receiver is down or failing: new events wait with the others.
            tokio::time::sleep(pause_after(failures)).await;
            continue;
        }
        if more {
            continue;
        }
        let wait = LOOK_EVERY.min(
            EXPIRY_LOOK_EVERY
                .saturating_sub(expiry_looked.map_or(Duration::ZERO, |at| at.elapsed())),
        );
        let notices = auth.notices();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = notices.delivery_queued() => {}
        }
    }
}

/// Removes an acknowledged (or given up) delivery, or counts its failed attempt.
async fn settle(auth: &Auth, row: &OutboxRow, done: bool) {
    let seq = row.seq;
    let written = auth.notices().settle(seq, done).await;
    if let Err(e) = written {
        tracing::warn!(
            id = row.id,
            "cannot record a notification's delivery: {e:#}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_most() {
        let pauses: Vec<u64> = (1..=12).map(|n| pause_after(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(pause_after(u32::MAX), MAX_PAUSE);
    }
}
