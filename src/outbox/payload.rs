//! What one delivery sends, in the form the ledger stores:
//! `{"kind": "<kind>", "data": …}`, the kind being a [`DeliveryKind`]'s
//! name. A webhook's data is its one part as it is, or, for a kind that
//! sends several ([`crate::sink::Sink::multi_part`]), the array of them.

use std::path::PathBuf;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{DeliveryKind, Email, StagedFile, staged};
use crate::sink::WebhookKind;

/// What one delivery will send. Serializable so the ledger can keep it (it
/// holds no secret: URLs and keys stay in the config).
#[derive(Debug, Clone)]
pub enum Payload {
    Email(Box<Email>),
    /// A webhook's body, in parts sent in order, each within its
    /// receiver's limits (several only for Slack's long digests).
    Webhook {
        kind: WebhookKind,
        parts: Vec<Value>,
    },
    /// A snapshot folder: its files, staged under `state_dir/staging/`
    /// (their bytes are never in the payload), and the manifest's fields
    /// (the writer adds each file's size and SHA-256).
    Archive {
        folder: PathBuf,
        files: Vec<StagedFile>,
        manifest: Value,
    },
}

impl Payload {
    /// The kind that sends it.
    pub fn kind(&self) -> DeliveryKind {
        match self {
            Payload::Email(_) => DeliveryKind::Email,
            Payload::Webhook { kind, .. } => DeliveryKind::Webhook(*kind),
            Payload::Archive { .. } => DeliveryKind::Archive,
        }
    }
}

#[derive(Serialize)]
struct ArchiveRef<'a> {
    folder: &'a PathBuf,
    files: &'a [StagedFile],
    manifest: &'a Value,
}

#[derive(Deserialize)]
struct ArchiveData {
    folder: PathBuf,
    #[serde(deserialize_with = "staged::files_of_any_age")]
    files: Vec<StagedFile>,
    manifest: Value,
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Payload", 2)?;
        out.serialize_field("kind", self.kind().as_str())?;
        match self {
            Payload::Email(email) => out.serialize_field("data", email)?,
            Payload::Webhook { kind, parts } => match parts.as_slice() {
                [one] if !kind.multi_part() => out.serialize_field("data", one)?,
                parts => out.serialize_field("data", parts)?,
            },
            Payload::Archive {
                folder,
                files,
                manifest,
            } => out.serialize_field(
                "data",
                &ArchiveRef {
                    folder,
                    files,
                    manifest,
                },
            )?,
        }
        out.end()
    }
}

/// The `data` of a payload of kind `kind`.
fn data<'de, D: Deserializer<'de>>(kind: &str, data: D) -> Result<Payload, D::Error> {
    Ok(match DeliveryKind::parse(kind) {
        Some(DeliveryKind::Email) => Payload::Email(Box::deserialize(data)?),
        Some(DeliveryKind::Archive) => {
            let ArchiveData {
                folder,
                files,
                manifest,
            } = ArchiveData::deserialize(data)?;
            Payload::Archive {
                folder,
                files,
                manifest,
            }
        }
        Some(DeliveryKind::Webhook(kind)) => {
            let parts = match Value::deserialize(data)? {
                Value::Array(parts) if kind.multi_part() => parts,
                _ if kind.multi_part() => {
                    return Err(de::Error::custom(format!(
                        "a {kind} payload is an array of messages"
                    )));
                }
                one => vec![one],
            };
            Payload::Webhook { kind, parts }
        }
        None => {
            let known: Vec<String> = DeliveryKind::all().map(|k| format!("`{k}`")).collect();
            return Err(de::Error::custom(format!(
                "unknown variant `{kind}`, expected one of {}",
                known.join(", ")
            )));
        }
    })
}

struct Data<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for Data<'_> {
    type Value = Payload;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Payload, D::Error> {
        data(self.0, deserializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Tagged;
        impl<'de> Visitor<'de> for Tagged {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a payload {\"kind\": …, \"data\": …}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
                let mut kind: Option<String> = None;
                let mut payload = None;
                // `data` before `kind` (never written so, but valid JSON).
                let mut early: Option<Value> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match (key.as_str(), &kind) {
                        ("kind", _) => kind = Some(map.next_value()?),
                        ("data", Some(k)) => payload = Some(map.next_value_seed(Data(k))?),
                        ("data", None) => early = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
                match (payload, early) {
                    (Some(payload), _) => Ok(payload),
                    (None, Some(value)) => data(&kind, value).map_err(de::Error::custom),
                    (None, None) => Err(de::Error::missing_field("data")),
                }
            }
        }
        deserializer.deserialize_struct("Payload", &["kind", "data"], Tagged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_payloads_are_stored_as_before() {
        for stored in [
            r#"{"kind":"slack","data":[{"text":"a"},{"text":"b"}]}"#,
            r#"{"kind":"slack","data":[{"text":"a"}]}"#,
            r#"{"kind":"msteams","data":{"type":"message"}}"#,
            r#"{"kind":"json","data":{"totals":{"overdue":3}}}"#,
            r#"{"kind":"json","data":[1,2]}"#,
        ] {
            let payload: Payload = serde_json::from_str(stored).unwrap();
            assert_eq!(serde_json::to_string(&payload).unwrap(), stored);
        }
        let slack: Payload =
            serde_json::from_str(r#"{"data":[{"text":"a"},{"text":"b"}],"kind":"slack"}"#).unwrap();
        assert!(matches!(slack, Payload::Webhook { parts, .. } if parts.len() == 2));
    }

    #[test]
    fn an_unknown_or_malformed_payload_is_an_error() {
        let err = serde_json::from_str::<Payload>(r#"{"kind":"pager","data":{}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `pager`"), "{err}");
        assert!(serde_json::from_str::<Payload>(r#"{"kind":"slack","data":{}}"#).is_err());
        assert!(serde_json::from_str::<Payload>(r#"{"kind":"json"}"#).is_err());
    }
}
