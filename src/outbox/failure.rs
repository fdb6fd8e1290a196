//! The `on_failure` messages of a failed run.

use anyhow::Context as _;

use super::email::checked_email;
use super::{Outgoing, Payload, kind_of};
use crate::config::{Config, Delivery, Job};
use crate::render::Renderer;

/// The `on_failure` messages of `job` for a failed run: the `failure` email
/// template, and short, escaped payloads for webhooks. Archives in
/// `on_failure` write nothing (there is no report to archive).
pub fn failure(
    config: &Config,
    job: &Job,
    renderer: &Renderer,
    ctx: &crate::render::FailureContext,
) -> anyhow::Result<Vec<Outgoing>> {
    let mut items = Vec::new();
    let headline = format!("trainwatch: job {} failed", job.name);
    for (index, delivery) in job.on_failure.iter().enumerate() {
        let kind = kind_of(config, delivery);
        let item =
            |target: String, recipient: String, summary: String, payload: Payload| Outgoing {
                delivery: index,
                kind,
                target: format!("on_failure {target}"),
                webhook: None,
                team: None,
                recipient,
                summary,
                payload,
                url: None,
                secret: None,
            };
        match delivery {
            Delivery::Email(e) => {
                let smtp = config
                    .smtp
                    .as_ref()
                    .context("an email delivery needs [smtp]")?;
                let rendered = renderer.failure_email(ctx, e.subject.as_deref())?;
                let email = checked_email(
                    smtp.from.as_str(),
                    [e.to.clone(), e.cc.clone(), e.bcc.clone()],
                    rendered,
                    None,
                )?;
                items.push(item(
                    format!("email {}", e.template),
                    email.to.join(", "),
                    email.subject.clone(),
                    Payload::Email(Box::new(email)),
                ));
            }
            Delivery::Webhook(w) => {
                let hook = config.webhook(&w.webhook)?;
                let payload = Payload::Webhook {
                    kind: hook.kind,
                    parts: vec![hook.kind.failure(
                        &headline,
                        &ctx.error,
                        serde_json::to_value(ctx)?,
                    )],
                };
                items.push(Outgoing {
                    url: Some(hook.url.clone()),
                    secret: hook.secret.clone(),
                    webhook: Some(hook.name.clone()),
                    ..item(
                        format!("webhook {}", hook.name),
                        format!("webhook {}", hook.name),
                        headline.clone(),
                        payload,
                    )
                });
            }
            Delivery::Archive(_) => {}
        }
    }
    Ok(items)
}
