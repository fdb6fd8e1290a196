//! `sync`, `teams`, `mirror`: the local mirror and the teams as of an instant.

use super::*;

/// `sync`: brings the mirror up to `to` and says what it took.
pub(super) async fn sync_cmd(
    config: &Config,
    to: DateTime<Utc>,
    rebuild: bool,
) -> anyhow::Result<ExitCode> {
    if !config.mirror.enabled {
        eprintln!(
            "error: the mirror is off in {} ([mirror] enabled = false): nothing to sync",
            config.path.display()
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let (settings, _server) = crate::sample::client_settings(&config.samsara).await?;
    let limits = crate::ratelimit::shared_limits(&config.state_dir, &settings.token);
    let client = Client::with_limits(settings, limits).context("creating the HTTP client")?;
    let mirror = crate::mirror::open(config)?;
    let first = rebuild || mirror.reach()?.is_none();
    let progress = SyncBar::start(first);
    let shown = progress
        .as_ref()
        .map(|p| p as &dyn crate::mirror::SyncProgress);
    let report = if rebuild {
        crate::mirror::rebuild(mirror.as_ref(), &client, &config.mirror, to, shown).await
    } else {
        crate::mirror::sync(mirror.as_ref(), &client, &config.mirror, to, shown).await
    };
    drop(progress);
    let report = report?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    match report.range {
        None => println!(
            "mirror already reaches {}: nothing to sync",
            report.reach.end.to_rfc3339()
        ),
        Some((start, end)) => println!(
            "synced [{}, {}): {} received, {} new, {} in {:.1}s",
            start.to_rfc3339(),
            end.to_rfc3339(),
            count(report.stats.versions as usize, "version"),
            report.stats.new_versions,
            count(report.stats.requests as usize, "request"),
            report.seconds
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `mirror` (and `sync --status`): reach, counts, last sync, size.
/// `trainwatch teams`: every team as of `at`, one line each.
pub(super) async fn teams_cmd(config: &Config, at: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    use crate::teams::Wanted;
    let (settings, _server) = crate::sample::client_settings(&config.samsara).await?;
    let client = Client::new(settings).context("creating the HTTP client")?;
    let teams = if config.mirror.enabled {
        let mirror = crate::mirror::open(config)?;
        if crate::teams::needs_tags(config, Wanted::All) {
            crate::mirror::sync(mirror.as_ref(), &client, &config.mirror, at, None)
                .await
                .with_context(|| format!("bringing the mirror up to {}", at.to_rfc3339()))?;
        }
        crate::mirror::teams_at(config, mirror.as_ref(), Wanted::All, at)?
    } else {
        crate::teams::from_api(config, &client, Wanted::All).await?
    };
    for w in &teams.warnings {
        tracing::warn!("{w}");
    }
    if teams.iter().next().is_none() {
        println!(
            "no teams: add [teams.NAME] or [teams_from_tags] to {}",
            config.path.display()
        );
    }
    for line in crate::teams::lines(&teams) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn mirror_status(config: &Config) -> anyhow::Result<ExitCode> {
    let db = config.state_dir.join("trainwatch.db");
    if !db.exists() {
        println!(
            "the mirror is empty ({} does not exist): run `trainwatch sync`",
            db.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mirror = crate::mirror::open(config)?;
    let s = mirror.status()?;
    println!("mirror in {}", db.display());
    match s.reach {
        Some(r) => println!("reach: [{}, {})", r.since.to_rfc3339(), r.end.to_rfc3339()),
        None => println!("reach: none yet (no sync has completed)"),
    }
    println!(
        "holds: {} of {}, {}, {}, {}",
        count(s.versions as usize, "version"),
        count(s.assignments as usize, "assignment"),
        count(s.courses as usize, "course"),
        count(s.drivers as usize, "driver"),
        count(s.tags as usize, "tag"),
    );
    let describe = |r: &crate::mirror::SyncRecord| {
        format!(
            "#{} {} at {}: [{}, {}), {} received, {} new, {}, {}{}",
            r.id,
            r.outcome,
            r.started_at.to_rfc3339(),
            r.start.to_rfc3339(),
            r.end.to_rfc3339(),
            r.stats.versions,
            r.stats.new_versions,
            count(r.stats.requests as usize, "request"),
            r.seconds
                .map_or("-".to_string(), |secs| format!("{secs:.1}s")),
            r.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )
    };
    match &s.last_sync {
        Some(r) => println!("last sync: {}", describe(r)),
        None => println!("last sync: none"),
    }
    if let Some(r) = &s.last_success
        && s.last_sync.as_ref().is_some_and(|l| l.id != r.id)
    {
        println!("last success: {}", describe(r));
    }
    println!(
        "size: {:.1} MB (the database file, run history included)",
        s.bytes as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

/// The mirror's recent syncs, above the runs in `history`.
pub(super) fn print_syncs(config: &Config) -> anyhow::Result<()> {
    if !config.mirror.enabled {
        return Ok(());
    }
    let syncs = crate::mirror::open(config)?.syncs(5)?;
    if syncs.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 7]> = syncs
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                format!("→ {}", r.end.format("%Y-%m-%d %H:%M UTC")),
                format!("{} ({} new)", r.stats.versions, r.stats.new_versions),
                r.stats.requests.to_string(),
                r.seconds.map_or("-".into(), |s| format!("{s:.1}s")),
                match r.outcome.as_str() {
                    "running" => "running or interrupted".to_string(),
                    "failed" => format!("failed: {}", r.error.as_deref().unwrap_or("")),
                    other => other.to_string(),
                },
            ]
        })
        .collect();
    println!();
    print_table(
        [
            "SYNC", "STARTED", "REACH", "VERSIONS", "REQUESTS", "TOOK", "OUTCOME",
        ],
        &rows,
    );
    Ok(())
}
