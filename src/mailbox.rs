//! A mailbox (`Name <address>` or a bare address), parsed once.
//!
//! The configuration checks its mailboxes with [`Mailbox::parse`] and the
//! email sender builds its messages from the same parse, so an address that
//! validates is an address that sends. lettre's parser is behind it; apart
//! from the email sink this is the only module that imports lettre.

use std::fmt;

/// A parsed mailbox: an optional display name and an address, with the
/// text it was parsed from (trimmed), which is how it is shown and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    text: String,
    parsed: lettre::message::Mailbox,
}

/// Why a text is not a mailbox.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct MailboxError(#[from] lettre::address::AddressError);

impl Mailbox {
    /// Parses `Name <address>` or a bare address; surrounding whitespace is
    /// ignored. Checked structurally only (no DNS).
    pub fn parse(text: &str) -> Result<Self, MailboxError> {
        let text = text.trim();
        Ok(Self {
            parsed: text.parse()?,
            text: text.to_string(),
        })
    }

    /// The mailbox as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::str::FromStr for Mailbox {
    type Err = MailboxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Mailbox> for lettre::message::Mailbox {
    fn from(mailbox: Mailbox) -> Self {
        mailbox.parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_with_and_without_a_name_are_accepted() {
        for ok in [
            "ops@example.com",
            "Dana Ortiz <dana.ortiz@example.com>",
            "\"Ortiz, Dana\" <dana@example.com>",
            "<root@localhost>",
            "  training@mail.example.co.uk ",
        ] {
            let mailbox = Mailbox::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(mailbox.as_str(), ok.trim());
        }
    }

    #[test]
    fn things_that_are_not_mailboxes_are_rejected() {
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "a b@example.com",
            "Dana <dana@example.com",
            "dana@example..com",
            "a@b@c",
            "a@example.com, b@example.com",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad}");
        }
    }
}
