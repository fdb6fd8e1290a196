//! The SQLite store's job locks: one lock file per job in `state_dir/locks`,
//! which the OS releases when the process dies.

use std::path::{Path, PathBuf};

use super::SqliteStore;
use crate::store::{JobLock, StoreError};

/// How often a waiting run tries the lock again.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);

impl SqliteStore {
    /// `job`'s lock file, created if missing, and its path.
    fn lock_file(&self, job: &str) -> Result<(std::fs::File, PathBuf), StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new(".")).join("locks");
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            doing: "creating the folder of job locks",
            source,
        })?;
        let path = dir.join(format!("{job}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                doing: "opening a job's lock file",
                source,
            })?;
        Ok((file, path))
    }

    /// Tries the lock on `file` (at `path`): the lock, `None` when another
    /// process holds it.
    fn try_file(file: std::fs::File, path: &Path) -> Result<Option<JobLock>, StoreError> {
        match file.try_lock() {
            Ok(()) => Ok(Some(JobLock::file(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
                path: path.to_path_buf(),
                doing: "locking a job",
                source,
            }),
        }
    }

    /// Who holds a job's lock, for [`StoreError::JobBusy`] and
    /// [`StoreError::JobWaitedOut`].
    fn holder(path: &Path) -> String {
        format!("using the same state_dir ({} is locked)", path.display())
    }

    /// Takes `job`'s run lock (`state_dir/locks/JOB.lock`), so that two
    /// processes (the service and a manual `run-once`, say) never deliver
    /// the same job at once. An error when another process holds it.
    pub fn lock_job(&self, job: &str) -> Result<JobLock, StoreError> {
        let (file, path) = self.lock_file(job)?;
        Self::try_file(file, &path)?.ok_or_else(|| StoreError::JobBusy {
            job: job.to_string(),
            holder: Self::holder(&path),
        })
    }

    /// Takes `job`'s run lock if it is free; `None` when another run holds it.
    pub fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>, StoreError> {
        let (file, path) = self.lock_file(job)?;
        Self::try_file(file, &path)
    }

    /// Takes `job`'s run lock, waiting up to `max_wait` (on tokio's clock)
    /// while another process holds it, or until `stop` turns true. An error
    /// saying how long it waited when it could not.
    pub async fn lock_job_waiting(
        &self,
        job: &str,
        max_wait: std::time::Duration,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<JobLock, StoreError> {
        let (file, path) = self.lock_file(job)?;
        let started = tokio::time::Instant::now();
        let mut said = false;
        loop {
            // The same open file each time: a lock is taken on it, not on the path.
            match file.try_lock() {
                Ok(()) => return Ok(JobLock::file(file)),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(StoreError::Io {
                        path,
                        doing: "locking a job",
                        source,
                    });
                }
            }
            let waited = started.elapsed();
            if waited >= max_wait || *stop.borrow() {
                return Err(StoreError::JobWaitedOut {
                    job: job.to_string(),
                    holder: Self::holder(&path),
                    waited_s: waited.as_secs(),
                    shutdown: *stop.borrow(),
                });
            }
            if !said {
                tracing::warn!(
                    job,
                    max_wait_s = max_wait.as_secs(),
                    "the job is running in another trainwatch process; waiting for it"
                );
                said = true;
            }
            tokio::time::sleep(POLL.min(max_wait - waited)).await;
        }
    }
}
