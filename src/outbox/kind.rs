//! The kinds of delivery.

/// What a delivery is sent by: the kinds a delivery (and the ledger) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    Email,
    Slack,
    MsTeams,
    Json,
    Archive,
}

impl DeliveryKind {
    /// Every kind, in the order they are listed to people.
    pub const ALL: [DeliveryKind; 5] = [
        DeliveryKind::Email,
        DeliveryKind::Slack,
        DeliveryKind::MsTeams,
        DeliveryKind::Json,
        DeliveryKind::Archive,
    ];

    /// Its name in the ledger, metrics and output: `email`, `slack`,
    /// `msteams`, `json` or `archive`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Email => "email",
            DeliveryKind::Slack => "slack",
            DeliveryKind::MsTeams => "msteams",
            DeliveryKind::Json => "json",
            DeliveryKind::Archive => "archive",
        }
    }

    /// The kind named `name` ([`DeliveryKind::as_str`]); `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for DeliveryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
