//! What `preview` writes for an outbox: which files, named how. The
//! command writes them (an `.eml` and a snapshot with the senders' own code).

use std::borrow::Cow;
use std::path::PathBuf;

use serde_json::Value;

use super::{Email, Outgoing, Payload, StagedFile};

/// One file (or folder) of a preview, its path relative to the job's folder.
#[derive(Debug)]
pub enum PreviewFile<'a> {
    /// These bytes in this file.
    Bytes(PathBuf, Cow<'a, [u8]>),
    /// The email as a whole message (`email.eml`, inline images in place).
    Eml(PathBuf, &'a Email),
    /// A snapshot folder (manifest and `SHA256SUMS` included).
    Snapshot {
        folder: PathBuf,
        files: &'a [StagedFile],
        manifest: &'a Value,
    },
}

/// The files of a preview of `items`, each under `[<team>/]`: an email as
/// `email.html`, `email.txt`, `email.eml` (and its attachment and inline
/// images, such as `trend.png`), a webhook's body as
/// `<preview name>.json` ([`crate::sink::Sink::preview_name`]: `slack.json`,
/// `msteams.json`, `body.json` for json), each part of a multi-part one
/// numbered (`slack-1.json`, `slack-2.json`, … for a split digest), and an
/// archive as the snapshot folder `archive/`. Numbered `N-` (the delivery's
/// place in the job) only when one team gets several deliveries of one kind.
/// Kinds the job does not deliver get no file.
pub fn preview_files(items: &[Outgoing]) -> anyhow::Result<Vec<PreviewFile<'_>>> {
    let mut out = Vec::new();
    let json = |value: &Value| -> anyhow::Result<Cow<'_, [u8]>> {
        let mut bytes = serde_json::to_vec_pretty(value)?;
        bytes.push(b'\n');
        Ok(Cow::Owned(bytes))
    };
    for item in items {
        let dir = match &item.team {
            // Config team names are checked at load; names from data are not.
            Some(t) => PathBuf::from(crate::names::path_component(t)),
            None => PathBuf::new(),
        };
        let repeated = items
            .iter()
            .filter(|i| i.team == item.team && i.kind == item.kind)
            .count()
            > 1;
        let name = |file: &str| match repeated {
            true => dir.join(format!("{}-{file}", item.delivery + 1)),
            false => dir.join(file),
        };
        let bytes =
            |file: &str, b: &'_ [u8]| PreviewFile::Bytes(name(file), Cow::Owned(b.to_vec()));
        match &item.payload {
            Payload::Email(email) => {
                out.push(bytes("email.html", email.html.as_bytes()));
                out.push(bytes("email.txt", email.text.as_bytes()));
                out.push(PreviewFile::Eml(name("email.eml"), email));
                if let Some((file, b)) = &email.attachment {
                    out.push(PreviewFile::Bytes(name(file), Cow::Borrowed(b)));
                }
                // The inline images (the trend chart) beside it, named by
                // their Content-ID; `email.eml` shows them in place.
                for image in &email.inline {
                    out.push(PreviewFile::Bytes(
                        name(&crate::names::path_component(&image.content_id)),
                        Cow::Borrowed(&image.bytes),
                    ));
                }
            }
            Payload::Webhook { kind, parts } if parts.len() == 1 => {
                let file = format!("{}.json", kind.preview_name());
                out.push(PreviewFile::Bytes(name(&file), json(&parts[0])?));
            }
            Payload::Webhook { kind, parts } => {
                for (part, message) in parts.iter().enumerate() {
                    out.push(PreviewFile::Bytes(
                        name(&format!("{}-{}.json", kind.preview_name(), part + 1)),
                        json(message)?,
                    ));
                }
            }
            Payload::Archive {
                files, manifest, ..
            } => out.push(PreviewFile::Snapshot {
                folder: name("archive"),
                files,
                manifest,
            }),
        }
    }
    Ok(out)
}
