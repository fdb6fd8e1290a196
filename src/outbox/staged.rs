//! Files staged under `state_dir/staging/` for a delivery: an archive's
//! files and a CSV attachment, written once while the outbox is built and
//! read when the delivery is sent. The ledger keeps their paths, sizes and
//! SHA-256, never their bytes, so a payload's size no longer grows with the
//! rows and a delivery resumed after a crash finds its files (each is
//! fsynced before the outbox is recorded).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

/// A staged file: what it will be called, where it is, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagedFile {
    /// The file's name in the delivery (`assignments.csv`).
    pub name: String,
    /// Where it is staged.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its hex SHA-256, computed while it was written.
    pub sha256: String,
    /// The bytes themselves, only for a delivery recorded by a trainwatch
    /// that kept an archive's files in the ledger (before files were
    /// staged): read from an old ledger so an upgrade loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<Vec<u8>>,
}

/// An archive's files as a ledger holds them: staged files, or the
/// `(name, bytes)` pairs of a delivery recorded before files were staged.
pub(super) fn files_of_any_age<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<StagedFile>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Form {
        Staged(StagedFile),
        Inline(String, Vec<u8>),
    }
    let forms = <Vec<Form> as serde::Deserialize>::deserialize(d)?;
    Ok(forms
        .into_iter()
        .map(|form| match form {
            Form::Staged(file) => file,
            Form::Inline(name, bytes) => {
                let mut hashing = Hashing::new(io::sink());
                // Writing to a sink cannot fail.
                let _ = hashing.write_all(&bytes);
                let (size, sha256, _) = hashing.finish();
                StagedFile {
                    name,
                    path: PathBuf::new(),
                    bytes: size,
                    sha256,
                    inline: Some(bytes),
                }
            }
        })
        .collect())
}

/// A folder of staged files for one delivery of one run.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// A new, empty folder `state_dir/staging/<job>-<random>`.
    pub fn create(state_dir: &Path, job: &str) -> anyhow::Result<Self> {
        let root = state_dir.join("staging");
        let dir = root.join(format!(
            "{}-{:016x}",
            crate::names::path_component(job),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// Writes the file `name` through `write` (buffered, hashed as it goes),
    /// and fsyncs it.
    pub fn write(
        &self,
        name: &str,
        write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
    ) -> anyhow::Result<StagedFile> {
        let path = self.dir.join(name);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = Hashing::new(BufWriter::with_capacity(256 * 1024, file));
        write(&mut out).with_context(|| format!("writing {}", path.display()))?;
        let (bytes, sha256, writer) = out.finish();
        let file = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
        Ok(StagedFile {
            name: name.to_string(),
            path,
            bytes,
            sha256,
            inline: None,
        })
    }

    /// Deletes the folder and what was written in it (files a failed
    /// delivery will never send).
    pub fn discard(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// Makes the folder's entries durable (after its files are written).
    pub fn sync(&self) -> anyhow::Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", self.dir.display()))
    }
}

/// A writer that counts and hashes what goes through it.
pub struct Hashing<W> {
    inner: W,
    bytes: u64,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    /// Counts and hashes what is written to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            bytes: 0,
            hash: Sha256::new(),
        }
    }

    /// The byte count, the hex SHA-256 and the writer (flushed).
    pub fn finish(mut self) -> (u64, String, W) {
        let _ = self.inner.flush();
        (self.bytes, hex::encode(self.hash.finalize()), self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl StagedFile {
    /// Copies the staged file into `out`, checking on the way that it is
    /// still there and still the file that was staged. The error says
    /// which, for a permanent failure: a staged file is written once.
    pub fn copy_checked(&self, out: &mut dyn Write) -> Result<(), String> {
        if let Some(bytes) = &self.inline {
            return out
                .write_all(bytes)
                .map_err(|e| format!("writing {}: {e}", self.name));
        }
        let mut file = File::open(&self.path).map_err(|e| {
            format!(
                "the staged file {} ({}) cannot be read: {e}; run the job again for this window",
                self.path.display(),
                self.name
            )
        })?;
        let mut hashing = Hashing::new(out);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("reading the staged file {}: {e}", self.path.display()))?;
            if n == 0 {
                break;
            }
            hashing
                .write_all(&buf[..n])
                .map_err(|e| format!("copying the staged file {}: {e}", self.path.display()))?;
        }
        let (bytes, sha256, _) = hashing.finish();
        if bytes != self.bytes || sha256 != self.sha256 {
            return Err(format!(
                "the staged file {} ({}) changed since it was written \
                 ({bytes} bytes, SHA-256 {sha256}; staged as {} bytes, SHA-256 {}); \
                 run the job again for this window",
                self.path.display(),
                self.name,
                self.bytes,
                self.sha256
            ));
        }
        Ok(())
    }

    /// The staged file's bytes, checked as [`StagedFile::copy_checked`] does.
    pub fn read_checked(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.bytes as usize);
        self.copy_checked(&mut out)?;
        Ok(out)
    }

    /// Deletes the staged file, and its folder once empty.
    pub fn remove(&self) {
        if self.inline.is_some() {
            return;
        }
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Deletes staging folders under `state_dir/staging` last modified before
/// `before` (those of deliveries that were never sent: a dry run, a
/// preview, a run that failed before sending). Returns how many went.
pub fn prune_staging(state_dir: &Path, before: std::time::SystemTime) -> io::Result<usize> {
    let root = state_dir.join("staging");
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut pruned = 0;
    for entry in entries {
        let entry = entry?;
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < before);
        if old && fs::remove_dir_all(entry.path()).is_ok() {
            pruned += 1;
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_file_knows_its_size_and_sha256_and_refuses_a_changed_copy() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::create(dir.path(), "audit").unwrap();
        let file = staging
            .write("a.csv", |out: &mut dyn Write| {
                out.write_all(b"a,b\n1,2\n")?;
                Ok(())
            })
            .unwrap();
        assert_eq!(file.bytes, 8);
        assert_eq!(
            file.sha256,
            hex::encode(Sha256::digest(b"a,b\n1,2\n".as_slice()))
        );
        assert_eq!(file.read_checked().unwrap(), b"a,b\n1,2\n");

        fs::write(&file.path, b"a,b\n1,3\n").unwrap();
        let err = file.read_checked().unwrap_err();
        assert!(err.contains("changed since it was written"), "{err}");

        file.remove();
        let err = file.read_checked().unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
        assert!(!file.path.parent().unwrap().exists());
    }
}

#[cfg(test)]
mod upgrade {
    use super::super::Payload;

    #[test]
    fn an_archive_recorded_with_its_bytes_by_an_older_trainwatch_still_reads_and_copies() {
        // The form an archive delivery had in the ledger before staging.
        let old = r#"{"kind":"archive","data":{"folder":"/srv/audit/2026-11","files":[["assignments.csv",[97,44,98,10]]],"manifest":{}}}"#;
        let Payload::Archive { files, .. } = serde_json::from_str::<Payload>(old).unwrap() else {
            panic!("not an archive");
        };
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "assignments.csv");
        assert_eq!(files[0].bytes, 4);
        let mut out = Vec::new();
        files[0].copy_checked(&mut out).unwrap();
        assert_eq!(out, b"a,b\n");
        // And today's form still round-trips, without an `inline` field.
        let now = serde_json::to_string(&Payload::Archive {
            folder: "/srv".into(),
            files: vec![super::StagedFile {
                name: "x".into(),
                path: "/tmp/x".into(),
                bytes: 1,
                sha256: "00".into(),
                inline: None,
            }],
            manifest: serde_json::json!({}),
        })
        .unwrap();
        assert!(!now.contains("inline"), "{now}");
        assert!(matches!(
            serde_json::from_str::<Payload>(&now).unwrap(),
            Payload::Archive { .. }
        ));
    }
}
