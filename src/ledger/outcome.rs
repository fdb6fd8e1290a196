//! How deliveries ended, and the one place that puts it into words.

use crate::window::Window;

/// How one delivery of a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// Sent now (after this many attempts).
    Delivered { attempts: u32 },
    /// Already delivered by an earlier run for the same window: not sent again.
    AlreadyDelivered,
    /// The snapshot for this window existed: left untouched.
    AlreadyArchived,
    /// Failed for good (permanent, or out of retries).
    Failed { attempts: u32, error: String },
}

impl DeliveryOutcome {
    /// True when the message is out: sent now, or by an earlier run.
    pub fn went_out(&self) -> bool {
        matches!(
            self,
            Self::Delivered { .. } | Self::AlreadyDelivered | Self::AlreadyArchived
        )
    }

    /// True when it failed for good.
    pub fn failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }

    /// The attempts made now; `None` when nothing was attempted.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Delivered { attempts } | Self::Failed { attempts, .. } => Some(*attempts),
            Self::AlreadyDelivered | Self::AlreadyArchived => None,
        }
    }

    /// Its metrics label: `delivered`, `already_delivered`,
    /// `already_archived` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered { .. } => "delivered",
            Self::AlreadyDelivered => "already_delivered",
            Self::AlreadyArchived => "already_archived",
            Self::Failed { .. } => "failed",
        }
    }
}

/// In words, for people: "delivered", "already delivered", "already
/// archived", "FAILED: why".
impl std::fmt::Display for DeliveryOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Delivered { .. } => f.write_str("delivered"),
            Self::AlreadyDelivered => f.write_str("already delivered"),
            Self::AlreadyArchived => f.write_str("already archived"),
            Self::Failed { error, .. } => write!(f, "FAILED: {error}"),
        }
    }
}

/// One line of a run's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryLine {
    /// The kind's name ([`super::DeliveryKind::as_str`]: `email`, a webhook
    /// kind such as `slack`, or `archive`);
    /// `unknown` for a stored delivery whose kind cannot be read.
    pub kind: String,
    pub target: String,
    pub team: Option<String>,
    pub recipient: String,
    pub outcome: DeliveryOutcome,
    /// True when this finished a delivery an earlier, interrupted run had started.
    pub resumed: bool,
}

impl DeliveryLine {
    /// How it reads in a failure notice: target, recipient and team.
    fn describe(&self) -> String {
        match &self.team {
            Some(team) => format!("{} → {} (team {team})", self.target, self.recipient),
            None => format!("{} → {}", self.target, self.recipient),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub run_id: i64,
    pub window: Option<Window>,
    /// Assignments the reports counted.
    pub records: Option<u64>,
    pub deliveries: Vec<DeliveryLine>,
    pub skipped: Vec<crate::outbox::Skipped>,
    /// Why the run failed before delivering (fetch, render, store), with
    /// causes; or how it failed, or was stopped, while delivering.
    pub error: Option<String>,
    /// Deliveries left pending because a shutdown began (sent at the next start).
    pub left_pending: usize,
    /// Set when the fire was not run here because another replica had
    /// claimed it (its name); `run_id` is then the run that finished what
    /// that replica left pending, or 0 when nothing was.
    pub ran_elsewhere: Option<String>,
}

impl RunSummary {
    /// True when the run failed or any delivery failed for good.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.deliveries.iter().any(|d| d.outcome.failed())
    }
}

/// "1 delivery", "2 deliveries".
pub fn deliveries_count(n: usize) -> String {
    if n == 1 {
        "1 delivery".to_string()
    } else {
        format!("{n} deliveries")
    }
}

/// What a run stopped by a shutdown says about the `left` it did not send.
pub(crate) fn left_pending_note(left: usize) -> String {
    format!(
        "stopped by a shutdown with {} left pending; they are sent at the next start",
        deliveries_count(left)
    )
}

/// One line for history and the log: how many deliveries failed, how many went out.
pub fn failure_headline(lines: &[DeliveryLine]) -> String {
    let failed = lines.iter().filter(|d| d.outcome.failed()).count();
    let sent = lines.iter().filter(|d| d.outcome.went_out()).count();
    format!(
        "{failed} of {} failed, {sent} went out",
        deliveries_count(lines.len())
    )
}

/// What a failure notice says: the headline, then every delivery that did
/// not go out (with its error) and every one that did.
pub fn failure_detail(lines: &[DeliveryLine]) -> String {
    let mut out = failure_headline(lines);
    out.push_str(".\nNot sent:");
    for d in lines {
        if let DeliveryOutcome::Failed { error, .. } = &d.outcome {
            out.push_str(&format!("\n  - {}: {error}", d.describe()));
        }
    }
    let sent: Vec<String> = lines
        .iter()
        .filter(|d| d.outcome.went_out())
        .map(|d| format!("\n  - {}", d.describe()))
        .collect();
    if sent.is_empty() {
        out.push_str("\nSent: none.");
    } else {
        out.push_str("\nSent:");
        out.extend(sent);
    }
    out
}
