//! The SQLite schema, every table in `state_dir/trainwatch.db`: the run
//! ledger's and the mirror's (the store owns its database; the mirror's
//! code in `src/mirror/sqlite.rs` reads and writes its tables).

/// Schema migrations, applied in order; `PRAGMA user_version` is the count applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs and the delivery ledger.
    "CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        job         TEXT NOT NULL,
        fire_time   TEXT NOT NULL,
        window_start TEXT,
        window_end  TEXT,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        outcome     TEXT NOT NULL,
        records     INTEGER,
        error       TEXT
    );
    CREATE INDEX runs_by_job ON runs (job, fire_time);
    CREATE TABLE deliveries (
        id          INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL REFERENCES runs (id),
        key         TEXT NOT NULL UNIQUE,
        job         TEXT NOT NULL,
        window_start TEXT NOT NULL,
        window_end  TEXT NOT NULL,
        target      TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        status      TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        payload     TEXT,
        created_at  TEXT NOT NULL,
        sent_at     TEXT
    );
    CREATE INDEX deliveries_by_status ON deliveries (job, status);",
    // 2: how many parts of a multi-part delivery (a split Slack digest) the
    // receiver has confirmed, so a retry never re-sends them.
    "ALTER TABLE deliveries ADD COLUMN parts_done INTEGER NOT NULL DEFAULT 0;",
    // 3: the durable outbox. A delivery stays with the run that created it
    // (`run_id`); `finished_by` names a later run that delivered it.
    // `next_attempt_at` schedules the service's retry of a transient
    // failure, `rounds` counts those retries; `notice` marks on_failure
    // notices. `runs.outboxed` is how many deliveries a run recorded before
    // its first send (NULL: it never got that far).
    "ALTER TABLE deliveries ADD COLUMN finished_by INTEGER;
    ALTER TABLE deliveries ADD COLUMN next_attempt_at TEXT;
    ALTER TABLE deliveries ADD COLUMN rounds INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN outboxed INTEGER;
    CREATE INDEX deliveries_by_run ON deliveries (run_id);
    CREATE INDEX deliveries_by_finisher ON deliveries (finished_by);
    CREATE INDEX deliveries_by_sent ON deliveries (status, sent_at);",
    // 4: the mirror: assignment versions, courses, drivers, tags, syncs (src/mirror/sqlite.rs).
    MIRROR,
    // 5: the replica (hostname:pid or --replica-id) that ran each run.
    "ALTER TABLE runs ADD COLUMN replica TEXT;",
];

/// Migration 4, the mirror's tables (read and written by `src/mirror/sqlite.rs`).
/// The text must never change: databases migrated by it are out there.
const MIRROR: &str = "
    CREATE TABLE mirror_versions (
        id              TEXT NOT NULL,
        updated_at      INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        course_id       TEXT NOT NULL,
        course_revision TEXT,
        learner         TEXT NOT NULL,
        status          TEXT NOT NULL,
        duration_minutes INTEGER NOT NULL,
        created_by      TEXT,
        updated_by      TEXT,
        due_at          INTEGER,
        started_at      INTEGER,
        completed_at    INTEGER,
        deleted_at      INTEGER,
        is_overdue      INTEGER,
        is_completed_late INTEGER,
        score_percent   REAL,
        PRIMARY KEY (id, updated_at)
    ) WITHOUT ROWID;
    CREATE INDEX mirror_versions_by_updated ON mirror_versions (updated_at);
    CREATE INDEX mirror_versions_by_created ON mirror_versions (created_at);
    CREATE TABLE mirror_staging (
        sync_id         INTEGER NOT NULL,
        id              TEXT NOT NULL,
        updated_at      INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        course_id       TEXT NOT NULL,
        course_revision TEXT,
        learner         TEXT NOT NULL,
        status          TEXT NOT NULL,
        duration_minutes INTEGER NOT NULL,
        created_by      TEXT,
        updated_by      TEXT,
        due_at          INTEGER,
        started_at      INTEGER,
        completed_at    INTEGER,
        deleted_at      INTEGER,
        is_overdue      INTEGER,
        is_completed_late INTEGER,
        score_percent   REAL
    );
    CREATE TABLE mirror_courses (
        id              TEXT PRIMARY KEY,
        title           TEXT NOT NULL,
        status          TEXT,
        category_id     TEXT,
        category_name   TEXT,
        minutes         INTEGER,
        seen_at         INTEGER NOT NULL
    );
    CREATE TABLE mirror_drivers (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        username        TEXT,
        activation      TEXT,
        seen_at         INTEGER NOT NULL
    );
    CREATE TABLE mirror_tags (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        parent_tag_id   TEXT,
        seen_at         INTEGER NOT NULL
    );
    CREATE TABLE mirror_driver_tags (
        driver_id       TEXT NOT NULL,
        tag_id          TEXT NOT NULL,
        tag_name        TEXT NOT NULL,
        parent_tag_id   TEXT,
        valid_from      INTEGER NOT NULL,
        valid_to        INTEGER
    );
    CREATE INDEX mirror_driver_tags_by_driver ON mirror_driver_tags (driver_id, valid_from);
    CREATE TABLE mirror_syncs (
        id              INTEGER PRIMARY KEY,
        started_at      TEXT NOT NULL,
        finished_at     TEXT,
        range_start     INTEGER NOT NULL,
        range_end       INTEGER NOT NULL,
        outcome         TEXT NOT NULL,
        versions        INTEGER NOT NULL DEFAULT 0,
        new_versions    INTEGER NOT NULL DEFAULT 0,
        requests        INTEGER NOT NULL DEFAULT 0,
        pages           INTEGER NOT NULL DEFAULT 0,
        seconds         REAL,
        error           TEXT,
        warnings        TEXT
    );
    CREATE TABLE mirror_reach (
        one             INTEGER PRIMARY KEY CHECK (one = 1),
        since           INTEGER NOT NULL,
        reach_end       INTEGER NOT NULL
    );";
