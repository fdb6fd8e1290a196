//! [`StoreError`]: what failed under the store, and what it was doing.

use std::path::PathBuf;

/// A store failure, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("state store {path}: {doing}: {source}")]
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        source: rusqlite::Error,
    },
    /// The file system under the SQLite store failed (creating `state_dir`,
    /// a job's lock file).
    #[error("state store {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    /// The database was written by a newer trainwatch: one sentence, no
    /// SQLite error under it, because SQLite did nothing wrong.
    #[error(
        "state store {path} was written by a newer trainwatch (schema version {found}; this one knows versions up to {known}): upgrade trainwatch, or point state_dir at another folder"
    )]
    NewerSchema {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    /// Postgres failed; `url` is the store's URL without its password,
    /// `message` the error and its causes on one line.
    #[error("state store {url}: {doing}: {message}")]
    Postgres {
        url: String,
        doing: &'static str,
        message: String,
    },
    /// The Postgres schema was written by a newer trainwatch.
    #[error(
        "state store {url} was written by a newer trainwatch (schema version {found}; this one knows versions up to {known}): upgrade trainwatch, or point [store] url at another database"
    )]
    PostgresNewerSchema {
        url: String,
        found: usize,
        known: usize,
    },
    /// A store was to be copied into a Postgres database that already has
    /// runs: copying would mix two ledgers.
    #[error(
        "state store {url}: copying a SQLite store in: it already holds {runs} runs: copy into an empty database (a new one, or after DROP of its tables)"
    )]
    NotEmpty { url: String, runs: i64 },
    /// Another process holds the job's lock (SQLite) or lease (Postgres);
    /// `holder` says who and where, as a phrase.
    #[error(
        "job {job} is running in another trainwatch process {holder}; try again when it has finished"
    )]
    JobBusy { job: String, holder: String },
    /// Another process held the job for all of the time a run waited for
    /// it (or until a shutdown stopped the wait).
    #[error(
        "job {job} was running in another trainwatch process {holder} for all of the {waited_s}s this run waited{}",
        if *.shutdown { " before the shutdown" } else { "" }
    )]
    JobWaitedOut {
        job: String,
        holder: String,
        waited_s: u64,
        shutdown: bool,
    },
    /// This replica's lease on the job was taken by another replica (it
    /// stalled past `store.lease`): it must send nothing more for the job.
    #[error(
        "job {job}: this replica ({replica}) lost its lease on the job to another replica; it sends nothing more, the other finishes the run"
    )]
    LostLease { job: String, replica: String },
}
