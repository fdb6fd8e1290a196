//! `store migrate`: copying the history from SQLite to Postgres.

use super::*;

/// `trainwatch store migrate`: the SQLite store in `state_dir`, copied into Postgres.
pub(super) fn store_migrate(
    config: &Config,
    to: Option<String>,
    replica: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let url = match (to, &config.store.url) {
        (Some(to), _) => secrecy::SecretString::from(to),
        (None, Some(url)) => url.clone(),
        (None, None) => {
            eprintln!(
                "error: nowhere to copy to: set [store] url in {} (or give --to postgres://…)",
                config.path.display()
            );
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let db = config.state_dir.join("trainwatch.db");
    if !db.exists() {
        eprintln!(
            "error: there is no SQLite store to copy: {} does not exist",
            db.display()
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let sqlite = crate::store::SqliteStore::open(&config.state_dir)?;
    let (runs, deliveries) = sqlite.export()?;
    let pending = deliveries.iter().filter(|d| d.status == "pending").count();
    let pg = crate::store::postgres::PgStore::open(
        &url,
        config.store.lease,
        crate::store::replica_id(replica),
    )?;
    let (r, d) = pg.import(&runs, &deliveries)?;
    println!(
        "copied {} and {} from {} into {}",
        count(r, "run"),
        noun_count(d as i128, "delivery", Some("deliveries")),
        db.display(),
        pg.url()
    );
    if pending > 0 {
        println!(
            "{} pending: the first replica to start sends them",
            noun_count(pending as i128, "delivery", Some("deliveries"))
        );
    }
    println!(
        "the mirror is not copied: the first sync on Postgres reads it again from mirror.since"
    );
    Ok(ExitCode::SUCCESS)
}
