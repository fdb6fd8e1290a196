//! The real [`Sender`]: each outgoing item to its sender — SMTP, webhook or
//! archive — retried by one [`RetryPolicy`].

use anyhow::Context as _;

use super::archive::{Archived, write_snapshot};
use super::email::SmtpSender;
use super::webhook::WebhookSender;
use super::{Attempted, Dispatched, SendError, Sender, Sent, with_retries};
use crate::config::Config;
use crate::outbox::{Outgoing, Payload};
use crate::retry::RetryPolicy;

/// Routes outgoing items to the senders of one run. The SMTP connection is
/// opened on the first email and shared by every email of the run.
pub struct Dispatcher {
    smtp: Option<SmtpSender>,
    webhooks: WebhookSender,
    policy: RetryPolicy,
    /// A refused connection fails at once (`run-once`) instead of being retried (the service).
    refused_is_final: bool,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Senders for `config`: SMTP when `[smtp]` is set, webhooks always.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Self::with_parts(
            config,
            None,
            WebhookSender::new().context("creating the webhook client")?,
            RetryPolicy::default(),
        )
    }

    /// Senders with a trusted extra root CA for SMTP (PEM), a given webhook
    /// sender and retry policy: for tests against local servers.
    pub fn with_parts(
        config: &Config,
        smtp_root: Option<&[u8]>,
        webhooks: WebhookSender,
        policy: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let smtp = match &config.smtp {
            Some(c) => Some(SmtpSender::new(c, smtp_root).context("setting up SMTP")?),
            None => None,
        };
        Ok(Self {
            smtp,
            webhooks,
            policy,
            refused_is_final: false,
        })
    }

    /// This dispatcher, failing a delivery at once when nothing accepts its
    /// connection (no mail server, no webhook receiver), instead of retrying
    /// for up to 2 minutes: for `run-once`, where someone waits at a
    /// terminal. The service keeps retrying: a server it has reached before
    /// may be restarting.
    pub fn refused_is_final(mut self, yes: bool) -> Self {
        self.refused_is_final = yes;
        self.webhooks = self.webhooks.refused_is_final(yes);
        self
    }

    /// Closes the SMTP connection (at the end of a run).
    pub async fn close(&self) {
        if let Some(smtp) = &self.smtp {
            smtp.close().await;
        }
    }
}

fn done(attempted: Attempted, sent: Sent, parts: u32, before: u32) -> Dispatched {
    let ok = attempted.result.is_ok();
    Dispatched {
        attempted: Attempted {
            attempts: attempted.attempts,
            result: attempted.result.map(|()| sent),
        },
        parts_done: if ok { parts } else { before },
    }
}

/// A delivery that could not even be attempted.
fn refused(reason: SendError, parts_done: u32) -> Dispatched {
    Dispatched {
        attempted: Attempted {
            attempts: 0,
            result: Err(reason),
        },
        parts_done,
    }
}

impl Sender for Dispatcher {
    async fn send(&self, item: &Outgoing, key: &str, parts_done: u32) -> Dispatched {
        let label = item.webhook.as_deref().unwrap_or(&item.target);
        match (&item.payload, &item.url) {
            (Payload::Email(email), _) => {
                let Some(smtp) = &self.smtp else {
                    return refused(
                        SendError::permanent("an email delivery needs [smtp]"),
                        parts_done,
                    );
                };
                // A Message-ID derived from the idempotency key: if a crash
                // makes us send it twice, mail clients see one message.
                let mut email = (**email).clone();
                email.message_id = Some(format!("<{}@trainwatch>", &key[..key.len().min(40)]));
                let attempted = with_retries(&self.policy, |_| async {
                    smtp.send(&email)
                        .await
                        .map_err(|e| e.final_if_refused(self.refused_is_final))
                })
                .await;
                done(attempted, Sent::Delivered, 1, parts_done)
            }
            (
                Payload::Archive {
                    folder,
                    files,
                    manifest,
                },
                _,
            ) => {
                let written = write_snapshot(folder, files, manifest.clone());
                if written.is_ok() {
                    // Delivered (or already there): the staged copies have done their work.
                    files.iter().for_each(|f| f.remove());
                }
                let sent = match written {
                    Ok(Archived::AlreadyArchived(_)) => Sent::AlreadyArchived,
                    _ => Sent::Delivered,
                };
                done(
                    Attempted {
                        attempts: 1,
                        result: written.map(|_| ()),
                    },
                    sent,
                    1,
                    parts_done,
                )
            }
            // Webhook URLs are never stored; one that left the config cannot be sent to.
            (_, None) => refused(
                SendError::permanent(format!("webhook {label:?} is no longer in the config")),
                parts_done,
            ),
            (Payload::Webhook { kind, parts }, Some(url)) => {
                let first = (parts_done as usize).min(parts.len());
                let posted = self
                    .webhooks
                    .post(
                        *kind,
                        label,
                        url,
                        item.secret.as_ref(),
                        parts,
                        first,
                        key,
                        &self.policy,
                    )
                    .await;
                Dispatched {
                    attempted: Attempted {
                        attempts: posted.attempts,
                        result: posted.result.map(|()| Sent::Delivered),
                    },
                    parts_done: posted.parts_sent as u32,
                }
            }
        }
    }
}
