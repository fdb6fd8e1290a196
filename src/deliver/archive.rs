//! Archive snapshots: a folder per job and window, written once.
//!
//! Files go into a temporary folder beside the target, each fsynced, then a
//! `manifest.json` (with the SHA-256 of every file) and a `SHA256SUMS`
//! (`sha256sum -c SHA256SUMS` checks the folder), then the folder is renamed
//! into place and its parent fsynced. A snapshot that exists is never
//! touched: a second run for the same window records "already archived".
//! Files are left read-only.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::SendError;
use crate::outbox::StagedFile;

/// What writing a snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archived {
    /// Written now.
    Written(PathBuf),
    /// A snapshot for this job and window was already there; left untouched.
    AlreadyArchived(PathBuf),
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn io(what: &str, path: &Path, e: std::io::Error) -> SendError {
    SendError::permanent(format!("archive: {what} {}: {e}", path.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SendError> {
    let mut f = File::create(path).map_err(|e| io("creating", path, e))?;
    f.write_all(bytes).map_err(|e| io("writing", path, e))?;
    f.sync_all().map_err(|e| io("syncing", path, e))
}

fn sync_dir(path: &Path) -> Result<(), SendError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing folder", path, e))
}

/// Copies the staged file into `path`, checked against its staged size and
/// SHA-256 on the way, and fsyncs it.
fn copy_synced(path: &Path, file: &StagedFile) -> Result<(), SendError> {
    let out = File::create(path).map_err(|e| io("creating", path, e))?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
    file.copy_checked(&mut out)
        .map_err(|e| SendError::permanent(format!("archive: {e}")))?;
    let out = out
        .into_inner()
        .map_err(|e| io("writing", path, e.into_error()))?;
    out.sync_all().map_err(|e| io("syncing", path, e))
}

/// Copies the staged `files` and writes a manifest (`manifest` plus a
/// `files` list with sizes and SHA-256) as the snapshot `folder`, unless it
/// exists. A staged file that is missing or no longer has its SHA-256 is a
/// permanent failure, and nothing is published.
pub fn write_snapshot(
    folder: &Path,
    files: &[StagedFile],
    mut manifest: Value,
) -> Result<Archived, SendError> {
    if folder.exists() {
        return Ok(Archived::AlreadyArchived(folder.to_path_buf()));
    }
    let parent = folder.parent().ok_or_else(|| {
        SendError::permanent(format!(
            "archive: {} has no parent folder",
            folder.display()
        ))
    })?;
    fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        // Left by an earlier attempt of this process id that died: never published, safe to drop.
        fs::remove_dir_all(&tmp).map_err(|e| io("removing stale", &tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| io("creating", &tmp, e))?;
    let result = (|| {
        let mut listed = Vec::new();
        let mut sums = String::new();
        for file in files {
            copy_synced(&tmp.join(&file.name), file)?;
            let (name, sha) = (&file.name, &file.sha256);
            sums.push_str(&format!("{sha}  {name}\n"));
            listed.push(json!({"name": name, "bytes": file.bytes, "sha256": sha}));
        }
        if let Some(m) = manifest.as_object_mut() {
            m.insert("files".into(), Value::Array(listed));
        }
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| SendError::permanent(format!("archive: manifest: {e}")))?;
        write_synced(&tmp.join("manifest.json"), &manifest_bytes)?;
        sums.push_str(&format!("{}  manifest.json\n", sha256_hex(&manifest_bytes)));
        write_synced(&tmp.join("SHA256SUMS"), sums.as_bytes())?;
        for entry in fs::read_dir(&tmp).map_err(|e| io("listing", &tmp, e))? {
            let path = entry.map_err(|e| io("listing", &tmp, e))?.path();
            let mut perms = fs::metadata(&path)
                .map_err(|e| io("reading", &path, e))?
                .permissions();
            perms.set_readonly(true);
            fs::set_permissions(&path, perms).map_err(|e| io("protecting", &path, e))?;
        }
        sync_dir(&tmp)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, folder) {
        Ok(()) => {}
        // Another writer published the same snapshot first: keep theirs.
        Err(_) if folder.exists() => {
            let _ = fs::remove_dir_all(&tmp);
            return Ok(Archived::AlreadyArchived(folder.to_path_buf()));
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(io("publishing", folder, e));
        }
    }
    sync_dir(parent)?;
    Ok(Archived::Written(folder.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(dir: &Path, files: &[(&str, &[u8])]) -> Vec<StagedFile> {
        let staging = crate::outbox::Staging::create(dir, "monthly").unwrap();
        files
            .iter()
            .map(|(name, bytes)| {
                staging
                    .write(name, |out| Ok(out.write_all(bytes)?))
                    .unwrap()
            })
            .collect()
    }

    fn files(dir: &Path) -> Vec<StagedFile> {
        stage(
            dir,
            &[
                ("assignments.csv", b"assignment_id\r\na1\r\n"),
                ("assignments.json", b"[{\"assignment_id\":\"a1\"}]"),
                ("report.html", b"<p>1</p>"),
            ],
        )
    }

    #[test]
    fn a_snapshot_is_written_whole_with_checksums_that_sha256sum_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join("audit/monthly/20261001T050000Z_20261101T050000Z");
        let state = tempfile::tempdir().unwrap();
        let out = write_snapshot(&folder, &files(state.path()), json!({"job": "monthly"})).unwrap();
        assert_eq!(out, Archived::Written(folder.clone()));
        let manifest: Value =
            serde_json::from_slice(&fs::read(folder.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["job"], "monthly");
        assert_eq!(manifest["files"].as_array().unwrap().len(), 3);
        for f in manifest["files"].as_array().unwrap() {
            let bytes = fs::read(folder.join(f["name"].as_str().unwrap())).unwrap();
            assert_eq!(f["sha256"].as_str().unwrap(), sha256_hex(&bytes));
        }
        let check = std::process::Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&folder)
            .output()
            .expect("sha256sum is installed");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        assert_eq!(
            String::from_utf8_lossy(&check.stdout)
                .matches(": OK")
                .count(),
            4
        );
        assert!(
            fs::metadata(folder.join("report.html"))
                .unwrap()
                .permissions()
                .readonly()
        );
        let leftovers: Vec<_> = fs::read_dir(folder.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary folder left");
    }

    #[test]
    fn an_existing_snapshot_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("audit/m/w");
        let state = tempfile::tempdir().unwrap();
        write_snapshot(&folder, &files(state.path()), json!({})).unwrap();
        let before = fs::read(folder.join("assignments.csv")).unwrap();
        let changed = stage(state.path(), &[("assignments.csv", b"different")]);
        let out = write_snapshot(&folder, &changed, json!({})).unwrap();
        assert_eq!(out, Archived::AlreadyArchived(folder.clone()));
        assert_eq!(fs::read(folder.join("assignments.csv")).unwrap(), before);
    }

    #[test]
    fn a_snapshot_that_cannot_be_written_is_a_permanent_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("audit");
        fs::write(&blocker, b"a file where a folder should be").unwrap();
        let state = tempfile::tempdir().unwrap();
        let err =
            write_snapshot(&blocker.join("m/w"), &files(state.path()), json!({})).unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("archive: creating"), "{err}");
    }

    #[test]
    fn a_staged_file_missing_or_changed_at_send_time_fails_for_good_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let staged = files(state.path());
        let folder = dir.path().join("audit/m/w");

        fs::write(&staged[1].path, b"[]").unwrap();
        let err = write_snapshot(&folder, &staged, json!({})).unwrap_err();
        assert!(!err.is_transient());
        assert!(
            err.to_string().contains("changed since it was written"),
            "{err}"
        );

        fs::remove_file(&staged[0].path).unwrap();
        let err = write_snapshot(&folder, &staged, json!({})).unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("cannot be read"), "{err}");

        assert!(!folder.exists());
        let left: Vec<_> = fs::read_dir(folder.parent().unwrap()).unwrap().collect();
        assert!(left.is_empty(), "no temporary folder left");
    }
}
