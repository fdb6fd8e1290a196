//! Email messages (lettre lives here): multipart text + HTML, optional CSV attachment.

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

/// One email, rendered and addressed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `(file name, bytes)` of a CSV attachment.
    pub attachment: Option<(String, Vec<u8>)>,
    /// `<id@host>`; `None` generates a random one.
    pub message_id: Option<String>,
}

/// Why an email could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("{field} address {value:?} is not a valid mailbox: {source}")]
    Address {
        field: &'static str,
        value: String,
        source: lettre::address::AddressError,
    },
    #[error("the email has no recipient (to is empty after rendering)")]
    NoRecipient,
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, EmailError> {
    value.trim().parse().map_err(|source| EmailError::Address {
        field,
        value: value.to_string(),
        source,
    })
}

impl Email {
    /// The MIME message: `multipart/mixed` (when there is an attachment)
    /// around `multipart/alternative` (text first, then HTML). lettre sets
    /// `Date` and `Message-ID`.
    pub fn to_message(&self) -> Result<Message, EmailError> {
        let mut builder = Message::builder()
            .from(mailbox("from", &self.from)?)
            .subject(self.subject.clone())
            .message_id(self.message_id.clone());
        let mut recipients = 0;
        for to in self.to.iter().filter(|a| !a.trim().is_empty()) {
            builder = builder.to(mailbox("to", to)?);
            recipients += 1;
        }
        if recipients == 0 {
            return Err(EmailError::NoRecipient);
        }
        for cc in self.cc.iter().filter(|a| !a.trim().is_empty()) {
            builder = builder.cc(mailbox("cc", cc)?);
        }
        for bcc in self.bcc.iter().filter(|a| !a.trim().is_empty()) {
            builder = builder.bcc(mailbox("bcc", bcc)?);
        }
        let alternative = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(self.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(self.html.clone()),
            );
        let body = match &self.attachment {
            None => alternative,
            Some((name, bytes)) => MultiPart::mixed().multipart(alternative).singlepart(
                Attachment::new(name.clone()).body(
                    bytes.clone(),
                    ContentType::parse("text/csv; charset=utf-8").expect("a valid content type"),
                ),
            ),
        };
        Ok(builder.multipart(body)?)
    }

    /// The message as RFC 5322 bytes (what an `.eml` file holds).
    pub fn to_eml(&self) -> Result<Vec<u8>, EmailError> {
        Ok(self.to_message()?.formatted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            from: "Training Reports <training@example.com>".into(),
            to: vec!["Dana Ortiz <dana.ortiz@example.com>".into()],
            cc: vec![],
            bcc: vec!["audit@example.com".into()],
            subject: "Overdue training, north-yard: 3".into(),
            text: "3 overdue".into(),
            html: "<p>3 overdue</p>".into(),
            attachment: None,
            message_id: None,
        }
    }

    #[test]
    fn a_message_has_both_parts_date_and_message_id_and_no_bcc_header() {
        let eml = String::from_utf8(email().to_eml().unwrap()).unwrap();
        assert!(eml.contains("multipart/alternative"), "{eml}");
        assert!(eml.contains("text/plain") && eml.contains("text/html"));
        assert!(eml.contains("\r\nDate: "));
        assert!(eml.contains("\r\nMessage-ID: "));
        assert!(
            eml.contains("To: \"Dana Ortiz\" <dana.ortiz@example.com>"),
            "{eml}"
        );
        assert!(
            !eml.contains("audit@example.com"),
            "Bcc is never in the headers"
        );
        let envelope = email().to_message().unwrap().envelope().to().len();
        assert_eq!(envelope, 2, "but Bcc is a recipient");
    }

    #[test]
    fn an_attachment_makes_it_multipart_mixed() {
        let mut e = email();
        e.attachment = Some(("assignments.csv".into(), b"a,b\r\n1,2\r\n".to_vec()));
        let eml = String::from_utf8(e.to_eml().unwrap()).unwrap();
        assert!(eml.contains("multipart/mixed"));
        assert!(eml.contains("filename=\"assignments.csv\""), "{eml}");
    }

    #[test]
    fn an_empty_rendered_recipient_is_an_error_not_a_silent_drop() {
        let mut e = email();
        e.to = vec!["  ".into()];
        assert!(matches!(e.to_message(), Err(EmailError::NoRecipient)));
        e.to = vec!["not an address".into()];
        let err = e.to_message().unwrap_err().to_string();
        assert!(err.contains("to address \"not an address\""), "{err}");
    }
}
