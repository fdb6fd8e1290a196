//! The kinds of delivery.

use crate::sink::WebhookKind;

/// What a delivery is sent by: the kinds a delivery (and the ledger) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    Email,
    /// A webhook, of one of the kinds in [`crate::sink::SINKS`].
    Webhook(WebhookKind),
    Archive,
}

impl DeliveryKind {
    /// Every kind, in the order they are listed to people: email, the
    /// webhook kinds, archive.
    pub fn all() -> impl Iterator<Item = DeliveryKind> {
        std::iter::once(DeliveryKind::Email)
            .chain(WebhookKind::all().map(DeliveryKind::Webhook))
            .chain(std::iter::once(DeliveryKind::Archive))
    }

    /// Its name in the ledger, metrics and output: `email`, a webhook
    /// kind's name (`slack`, `msteams`, `json`, …) or `archive`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Email => "email",
            DeliveryKind::Webhook(kind) => kind.as_str(),
            DeliveryKind::Archive => "archive",
        }
    }

    /// The kind named `name` ([`DeliveryKind::as_str`]); `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::all().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for DeliveryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
