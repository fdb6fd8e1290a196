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

/// Writes `files` and a manifest (`manifest` plus a `files` list with sizes
/// and SHA-256) as the snapshot `folder`, unless it exists.
pub fn write_snapshot(
    folder: &Path,
    files: &[(String, Vec<u8>)],
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
        for (file, bytes) in files {
            write_synced(&tmp.join(file), bytes)?;
            let sha = sha256_hex(bytes);
            sums.push_str(&format!("{sha}  {file}\n"));
            listed.push(json!({"name": file, "bytes": bytes.len(), "sha256": sha}));
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

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            (
                "assignments.csv".into(),
                b"assignment_id\r\na1\r\n".to_vec(),
            ),
            (
                "assignments.json".into(),
                b"[{\"assignment_id\":\"a1\"}]".to_vec(),
            ),
            ("report.html".into(), b"<p>1</p>".to_vec()),
        ]
    }

    #[test]
    fn a_snapshot_is_written_whole_with_checksums_that_sha256sum_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join("audit/monthly/20261001T050000Z_20261101T050000Z");
        let out = write_snapshot(&folder, &files(), json!({"job": "monthly"})).unwrap();
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
        write_snapshot(&folder, &files(), json!({})).unwrap();
        let before = fs::read(folder.join("assignments.csv")).unwrap();
        let changed = vec![("assignments.csv".to_string(), b"different".to_vec())];
        let out = write_snapshot(&folder, &changed, json!({})).unwrap();
        assert_eq!(out, Archived::AlreadyArchived(folder.clone()));
        assert_eq!(fs::read(folder.join("assignments.csv")).unwrap(), before);
    }

    #[test]
    fn a_snapshot_that_cannot_be_written_is_a_permanent_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("audit");
        fs::write(&blocker, b"a file where a folder should be").unwrap();
        let err = write_snapshot(&blocker.join("m/w"), &files(), json!({})).unwrap_err();
        assert!(!err.is_transient());
        assert!(err.to_string().contains("archive: creating"), "{err}");
    }
}
