//! The stored form of a delivery: what the ledger keeps of an outgoing item
//! (everything but secrets), and the item rebuilt from it.

use std::collections::BTreeMap;

use crate::config::Webhook;
use crate::outbox::{DeliveryKind, Outgoing, Payload};

/// What the ledger keeps of an outgoing item: everything but secrets.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Stored {
    /// [`DeliveryKind::as_str`]: the store's form of the kind.
    kind: String,
    target: String,
    webhook: Option<String>,
    team: Option<String>,
    recipient: String,
    summary: String,
    payload: Payload,
}

impl Stored {
    /// The stored form of `item`.
    pub(crate) fn of(item: &Outgoing) -> Self {
        Self {
            kind: item.kind.as_str().to_string(),
            target: item.target.clone(),
            webhook: item.webhook.clone(),
            team: item.team.clone(),
            recipient: item.recipient.clone(),
            summary: item.summary.clone(),
            payload: item.payload.clone(),
        }
    }

    /// The stored form of `item` as the store's text.
    pub(crate) fn json(item: &Outgoing) -> anyhow::Result<String> {
        Ok(serde_json::to_string(&Self::of(item))?)
    }

    /// The outgoing item rebuilt, its URL and key looked up in the config's
    /// `webhooks` again (they are never stored). A kind this version does not know is
    /// an error: sending it as some other kind could reach the wrong place.
    pub(crate) fn restore(self, webhooks: &BTreeMap<String, Webhook>) -> Result<Outgoing, String> {
        let kind = DeliveryKind::parse(&self.kind).ok_or_else(|| {
            format!(
                "its stored kind `{}` is not one this version sends (written by another version?)",
                self.kind
            )
        })?;
        let hook = self.webhook.as_ref().and_then(|w| webhooks.get(w));
        Ok(Outgoing {
            delivery: 0,
            kind,
            target: self.target,
            webhook: self.webhook,
            team: self.team,
            recipient: self.recipient,
            summary: self.summary,
            payload: self.payload,
            url: hook.map(|h| h.url.clone()),
            secret: hook.and_then(|h| h.secret.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_stored_kind_is_refused_not_guessed() {
        let stored: Stored = serde_json::from_value(serde_json::json!({
            "kind": "pager",
            "target": "webhook pager",
            "webhook": null,
            "team": null,
            "recipient": "pager",
            "summary": "s",
            "payload": {"kind": "json", "data": {}},
        }))
        .unwrap();
        let err = stored.restore(&BTreeMap::new()).unwrap_err();
        assert!(err.contains("`pager`"), "{err}");
    }

    #[test]
    fn every_kind_reads_back_as_itself() {
        for kind in DeliveryKind::all() {
            assert_eq!(DeliveryKind::parse(kind.as_str()), Some(kind));
        }
    }
}
