//! The Postgres schema, every table in the store's database: the run
//! ledger's, leases and fire claims, and the mirror's (the store owns its
//! database; the mirror's code in `src/mirror/postgres.rs` uses its tables).

/// Postgres schema migrations, applied in order under an advisory lock;
/// `trainwatch_schema.version` is the count applied. Its own list, not
/// SQLite's: the two schemas evolve together but number apart.
pub const PG_MIGRATIONS: &[&str] = &[
    // 1: runs (with the replica that ran each and the lease generation it
    // ran under), the delivery ledger, job leases and fire claims.
    "CREATE TABLE runs (
        id           BIGSERIAL PRIMARY KEY,
        job          TEXT NOT NULL,
        fire_time    TIMESTAMPTZ NOT NULL,
        window_start TIMESTAMPTZ,
        window_end   TIMESTAMPTZ,
        started_at   TIMESTAMPTZ NOT NULL,
        finished_at  TIMESTAMPTZ,
        outcome      TEXT NOT NULL,
        records      BIGINT,
        error        TEXT,
        outboxed     BIGINT,
        replica      TEXT,
        lease_generation BIGINT
    );
    CREATE INDEX runs_by_job ON runs (job, fire_time);
    CREATE TABLE deliveries (
        id           BIGSERIAL PRIMARY KEY,
        run_id       BIGINT NOT NULL REFERENCES runs (id),
        key          TEXT NOT NULL UNIQUE,
        job          TEXT NOT NULL,
        window_start TIMESTAMPTZ NOT NULL,
        window_end   TIMESTAMPTZ NOT NULL,
        target       TEXT NOT NULL,
        recipient    TEXT NOT NULL,
        status       TEXT NOT NULL,
        attempts     BIGINT NOT NULL DEFAULT 0,
        parts_done   BIGINT NOT NULL DEFAULT 0,
        last_error   TEXT,
        payload      TEXT,
        created_at   TIMESTAMPTZ NOT NULL,
        sent_at      TIMESTAMPTZ,
        finished_by  BIGINT,
        next_attempt_at TIMESTAMPTZ,
        rounds       BIGINT NOT NULL DEFAULT 0,
        notice       BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX deliveries_by_status ON deliveries (job, status);
    CREATE INDEX deliveries_by_run ON deliveries (run_id);
    CREATE INDEX deliveries_by_finisher ON deliveries (finished_by);
    CREATE INDEX deliveries_by_sent ON deliveries (status, sent_at);
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        generation BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE fires (
        job        TEXT NOT NULL,
        fire_time  TIMESTAMPTZ NOT NULL,
        replica    TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (job, fire_time)
    );",
    // 2: the mirror (src/mirror/postgres.rs): times in nanoseconds since
    // the epoch as in SQLite, exact for what the API sends and ordered.
    MIRROR,
];

/// Migration 2, the mirror's tables (read and written by `src/mirror/postgres.rs`).
/// The text must never change: databases migrated by it are out there.
const MIRROR: &str = "
    CREATE TABLE mirror_versions (
        id              TEXT NOT NULL,
        updated_at      BIGINT NOT NULL,
        created_at      BIGINT NOT NULL,
        course_id       TEXT NOT NULL,
        course_revision TEXT,
        learner         TEXT NOT NULL,
        status          TEXT NOT NULL,
        duration_minutes BIGINT NOT NULL,
        created_by      TEXT,
        updated_by      TEXT,
        due_at          BIGINT,
        started_at      BIGINT,
        completed_at    BIGINT,
        deleted_at      BIGINT,
        is_overdue      BOOLEAN,
        is_completed_late BOOLEAN,
        score_percent   DOUBLE PRECISION,
        PRIMARY KEY (id, updated_at)
    );
    CREATE INDEX mirror_versions_by_updated ON mirror_versions (updated_at);
    CREATE INDEX mirror_versions_by_created ON mirror_versions (created_at);
    CREATE TABLE mirror_staging (
        seq             BIGSERIAL PRIMARY KEY,
        sync_id         BIGINT NOT NULL,
        id              TEXT NOT NULL,
        updated_at      BIGINT NOT NULL,
        created_at      BIGINT NOT NULL,
        course_id       TEXT NOT NULL,
        course_revision TEXT,
        learner         TEXT NOT NULL,
        status          TEXT NOT NULL,
        duration_minutes BIGINT NOT NULL,
        created_by      TEXT,
        updated_by      TEXT,
        due_at          BIGINT,
        started_at      BIGINT,
        completed_at    BIGINT,
        deleted_at      BIGINT,
        is_overdue      BOOLEAN,
        is_completed_late BOOLEAN,
        score_percent   DOUBLE PRECISION
    );
    CREATE INDEX mirror_staging_by_sync ON mirror_staging (sync_id);
    CREATE TABLE mirror_courses (
        id TEXT PRIMARY KEY, title TEXT NOT NULL, status TEXT, category_id TEXT,
        category_name TEXT, minutes BIGINT, seen_at BIGINT NOT NULL
    );
    CREATE TABLE mirror_drivers (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, username TEXT, activation TEXT,
        seen_at BIGINT NOT NULL
    );
    CREATE TABLE mirror_tags (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, parent_tag_id TEXT, seen_at BIGINT NOT NULL
    );
    CREATE TABLE mirror_driver_tags (
        driver_id TEXT NOT NULL, tag_id TEXT NOT NULL, tag_name TEXT NOT NULL,
        parent_tag_id TEXT, valid_from BIGINT NOT NULL, valid_to BIGINT
    );
    CREATE INDEX mirror_driver_tags_by_driver ON mirror_driver_tags (driver_id, valid_from);
    CREATE TABLE mirror_syncs (
        id BIGSERIAL PRIMARY KEY, started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ,
        range_start BIGINT NOT NULL, range_end BIGINT NOT NULL, outcome TEXT NOT NULL,
        versions BIGINT NOT NULL DEFAULT 0, new_versions BIGINT NOT NULL DEFAULT 0,
        requests BIGINT NOT NULL DEFAULT 0, pages BIGINT NOT NULL DEFAULT 0,
        seconds DOUBLE PRECISION, error TEXT, warnings TEXT, replica TEXT
    );
    CREATE TABLE mirror_reach (
        one INTEGER PRIMARY KEY CHECK (one = 1), since BIGINT NOT NULL, reach_end BIGINT NOT NULL
    );";
