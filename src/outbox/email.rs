//! An email's data as the outbox builds it, its mailboxes parsed and checked
//! ([`Email::addressed`], which `deliver::email` builds its message from:
//! lettre turns it into a message there), and the CSV it may carry.

use anyhow::Context as _;

use crate::mailbox::{Mailbox, MailboxError};
use crate::render::filters::count;
use crate::report::Report;
use crate::report::rows::{Format, write_rows};

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
    /// Images the HTML shows with `cid:` (the trend chart); empty in
    /// payloads stored before there were any.
    #[serde(default)]
    pub inline: Vec<InlineImage>,
}

/// Why an email cannot be addressed.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("{field} address {value:?} is not a valid mailbox: {source}")]
    Invalid {
        field: &'static str,
        value: String,
        source: MailboxError,
    },
    #[error("the email has no recipient (to is empty after rendering)")]
    NoRecipient,
}

/// An email's mailboxes, parsed (blank ones left out).
#[derive(Debug, Clone)]
pub struct Addressed {
    pub from: Mailbox,
    /// At least one.
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
}

impl Email {
    /// Its mailboxes, each parsed, with at least one `to`: what the outbox
    /// checks before anything is sent, and what the sender addresses the
    /// message with, so an email that passes here is one that can be sent.
    pub fn addressed(&self) -> Result<Addressed, AddressError> {
        let parse = |field: &'static str, value: &str| {
            Mailbox::parse(value).map_err(|source| AddressError::Invalid {
                field,
                value: value.to_string(),
                source,
            })
        };
        let list = |field: &'static str, values: &[String]| {
            values
                .iter()
                .filter(|a| !a.trim().is_empty())
                .map(|a| parse(field, a))
                .collect::<Result<Vec<_>, _>>()
        };
        let from = parse("from", &self.from)?;
        let to = list("to", &self.to)?;
        if to.is_empty() {
            return Err(AddressError::NoRecipient);
        }
        Ok(Addressed {
            from,
            to,
            cc: list("cc", &self.cc)?,
            bcc: list("bcc", &self.bcc)?,
        })
    }
}

/// An image carried inside an email and shown by its HTML as `cid:CONTENT_ID`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InlineImage {
    /// The `Content-ID` (without angle brackets), e.g. `trend.png`.
    pub content_id: String,
    /// A MIME type such as `image/png`.
    pub content_type: String,
    /// The image itself.
    pub bytes: Vec<u8>,
}

/// The largest CSV attached to an email: 10 MiB, about 13.4 MiB once
/// base64-encoded, under the 20–25 MB most mail servers accept for a whole
/// message. A larger CSV is left out of an email whose job archives (the
/// email says so and where the archive's copy is); without an archive the
/// delivery is refused (the run fails before anything is sent) with a
/// pointer to the archive, which holds any number of rows.
pub const MAX_CSV_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// The refusal of a CSV attachment of `bytes` bytes and `rows` rows, or `Ok`
/// when it fits [`MAX_CSV_ATTACHMENT_BYTES`].
pub fn check_csv_attachment(bytes: usize, rows: usize) -> anyhow::Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    anyhow::ensure!(
        bytes <= MAX_CSV_ATTACHMENT_BYTES,
        "the CSV attachment would be {:.1} MiB ({}), over the {} MiB an email may carry: \
         set attach_csv = false and read the rows in the job's archive snapshot \
         (an `archive` delivery writes assignments.csv of any size)",
        bytes as f64 / MIB,
        count(rows, "assignment"),
        MAX_CSV_ATTACHMENT_BYTES / (1024 * 1024),
    );
    Ok(())
}

/// The CSV of a report's assignments (RFC 4180, header always present).
pub fn csv_bytes(report: &Report) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_rows(&report.assignments, Format::Csv, &mut out)?;
    Ok(out)
}

/// A report's CSV as an email may carry it: its bytes when it fits
/// [`MAX_CSV_ATTACHMENT_BYTES`], else only its size (never held whole).
#[derive(Debug)]
pub enum EmailCsv {
    /// The CSV, within the limit.
    Fits(Vec<u8>),
    /// Too large to attach: `bytes` bytes of `rows` rows.
    Over { bytes: u64, rows: usize },
}

impl EmailCsv {
    /// Writes the CSV of `rows` (`count` of them, held or read again from
    /// the job's state), keeping its bytes only while they fit.
    pub fn of_rows<R: std::borrow::Borrow<crate::report::rows::Row>>(
        rows: impl IntoIterator<Item = R>,
        count: usize,
    ) -> anyhow::Result<Self> {
        let mut out = Capped {
            buf: Some(Vec::new()),
            bytes: 0,
        };
        write_rows(rows, Format::Csv, &mut out)?;
        Ok(match out.buf {
            Some(bytes) => Self::Fits(bytes),
            None => Self::Over {
                bytes: out.bytes,
                rows: count,
            },
        })
    }
}

/// A buffer that lets go of its bytes once they pass the attachment limit
/// and only counts the rest.
struct Capped {
    buf: Option<Vec<u8>>,
    bytes: u64,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.bytes += data.len() as u64;
        if self.bytes > MAX_CSV_ATTACHMENT_BYTES as u64 {
            self.buf = None;
        } else if let Some(buf) = &mut self.buf {
            // Grown by doubling, but never past the limit: a 10 MiB CSV
            // would otherwise sit in a 16 MiB buffer before it is let go.
            let want = buf.len() + data.len();
            if want > buf.capacity() {
                let grown = want
                    .max(buf.capacity().saturating_mul(2))
                    .min(MAX_CSV_ATTACHMENT_BYTES);
                buf.reserve_exact(grown - buf.len());
            }
            buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The sentence an email carries instead of a CSV over the limit:
/// its rows and size, and where the archive's copy is.
pub fn csv_left_out(bytes: u64, rows: usize, archive: &std::path::Path) -> String {
    format!(
        "The CSV of this report ({}, {:.1} MiB) is over the {} MiB an email may carry, \
         so it is not attached: it is in the archive snapshot {}",
        count(rows, "assignment"),
        bytes as f64 / (1024.0 * 1024.0),
        MAX_CSV_ATTACHMENT_BYTES / (1024 * 1024),
        archive.join("assignments.csv").display(),
    )
}

/// `csv` (RFC 4180 as [`csv_bytes`] writes it) the way Excel opens it
/// right: a UTF-8 byte order mark first (without it, Excel on Windows reads
/// "Zoë Ångström" as "ZoÃ« Ã…ngstrÃ¶m") and CRLF between records. Read back
/// and rewritten record by record, so line breaks inside a quoted value are
/// kept as they were.
pub fn excel_csv(csv: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(&mut out);
    for record in reader.byte_records() {
        writer.write_byte_record(&record.context("re-reading the CSV for Excel")?)?;
    }
    writer.flush()?;
    drop(writer);
    Ok(out)
}

/// The images an email's HTML shows by `cid:`: the trend chart when the
/// HTML refers to it (the built-in templates do when there are two or more
/// trend points). A reference without a trend is left to the template.
pub(super) fn inline_images(html: &str, report: &Report) -> anyhow::Result<Vec<InlineImage>> {
    use crate::render::chart;
    if report.trend.is_empty() || !html.contains(&format!("cid:{}", chart::CONTENT_ID)) {
        return Ok(Vec::new());
    }
    Ok(vec![InlineImage {
        content_id: chart::CONTENT_ID.to_string(),
        content_type: "image/png".to_string(),
        bytes: chart::trend_png(&report.trend)?,
    }])
}

/// An email from `rendered`, addressed `[to, cc, bcc]`, every address
/// checked now rather than at send time.
pub(super) fn checked_email(
    from: &str,
    [to, cc, bcc]: [Vec<String>; 3],
    rendered: crate::render::RenderedEmail,
    attachment: Option<(String, Vec<u8>)>,
) -> anyhow::Result<Email> {
    let email = Email {
        from: from.to_string(),
        to,
        cc,
        bcc,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        attachment,
        message_id: None,
        inline: Vec::new(),
    };
    email.addressed()?;
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_attachment_over_the_limit_is_refused_pointing_to_the_archive() {
        assert!(check_csv_attachment(MAX_CSV_ATTACHMENT_BYTES, 70_000).is_ok());
        let err = check_csv_attachment(MAX_CSV_ATTACHMENT_BYTES + 1, 70_001)
            .unwrap_err()
            .to_string();
        assert!(err.contains("10.0 MiB (70001 assignments)"), "{err}");
        assert!(err.contains("over the 10 MiB"), "{err}");
        assert!(err.contains("archive"), "{err}");
    }

    #[test]
    fn the_csv_buffer_never_grows_past_the_limit_and_lets_go_over_it() {
        use std::io::Write as _;
        let mut out = Capped {
            buf: Some(Vec::new()),
            bytes: 0,
        };
        let line = [b'x'; 1000];
        while out.bytes + 1000 <= MAX_CSV_ATTACHMENT_BYTES as u64 {
            out.write_all(&line).unwrap();
        }
        let buf = out.buf.as_ref().expect("still within the limit");
        assert!(buf.len() > MAX_CSV_ATTACHMENT_BYTES - 1000);
        assert!(
            buf.capacity() <= MAX_CSV_ATTACHMENT_BYTES,
            "{}",
            buf.capacity()
        );
        out.write_all(&line).unwrap();
        assert!(out.buf.is_none(), "let go once over the limit");
        assert_eq!(out.bytes, buf_len_after(MAX_CSV_ATTACHMENT_BYTES as u64));
    }

    /// The bytes counted once the loop above passed the limit by one line.
    fn buf_len_after(limit: u64) -> u64 {
        (limit / 1000 + 1) * 1000
    }

    #[test]
    fn the_excel_csv_starts_with_a_bom_ends_records_with_crlf_and_keeps_values() {
        let rfc4180 = "learner_name,note\nZoë Ångström,\"two\nlines, quoted\"\n";

        let excel = excel_csv(rfc4180.as_bytes()).unwrap();

        assert_eq!(
            String::from_utf8(excel).unwrap(),
            "\u{feff}learner_name,note\r\nZoë Ångström,\"two\nlines, quoted\"\r\n"
        );
    }

    #[test]
    fn an_email_is_addressed_by_the_outbox_blank_recipients_left_out() {
        let email = |to: &[&str], cc: &[&str]| Email {
            from: "trainwatch <tw@example.com>".into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            cc: cc.iter().map(|s| s.to_string()).collect(),
            bcc: Vec::new(),
            subject: String::new(),
            text: String::new(),
            html: String::new(),
            attachment: None,
            message_id: None,
            inline: Vec::new(),
        };
        let ok = email(&["Dana <dana@example.com>", " "], &[])
            .addressed()
            .unwrap();
        assert_eq!(ok.to.len(), 1);
        assert_eq!(ok.from.as_str(), "trainwatch <tw@example.com>");
        assert!(matches!(
            email(&[" "], &["not an address"]).addressed(),
            Err(AddressError::NoRecipient)
        ));
        let err = email(&["dana@example.com"], &["not an address"])
            .addressed()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cc address \"not an address\""), "{err}");
    }
}
