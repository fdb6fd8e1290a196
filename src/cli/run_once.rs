//! `run-once`: a job run and delivered now, its summary printed.

use super::*;

/// Runs and delivers `job` as fired at `fire`, prints the summary.
pub(super) async fn run_once(
    config: &Config,
    job: &Job,
    fire: DateTime<Utc>,
    replica: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use crate::job::DeliveryOutcome;
    let renderer = crate::render::Renderer::new(config.templates_dir.as_deref())
        .context("loading the templates")?;
    let store = crate::store::Store::open_config(config, replica)?;
    let (client, _server) = client(config).await?;
    // Someone is waiting at a terminal: a server that is not there fails
    // the delivery at once (the service retries it; see the README).
    let dispatcher = crate::deliver::dispatch::Dispatcher::new(config)?.refused_is_final(true);
    let summary = crate::job::run(
        config,
        job,
        &client,
        &renderer,
        &store,
        &dispatcher,
        fire,
        Utc::now,
    )
    .await?;
    dispatcher.close().await;

    let local = fire.with_timezone(&job.timezone);
    println!(
        "job {} fired at {} ({})",
        job.name,
        local.to_rfc3339(),
        job.timezone
    );
    if let Some(w) = summary.window {
        println!(
            "window {}: {} reported",
            w.in_zone(job.timezone),
            count(summary.records.unwrap_or(0) as usize, "assignment")
        );
    }
    let rows: Vec<[String; 5]> = summary
        .deliveries
        .iter()
        .map(|d| {
            let outcome = d.outcome.to_string();
            let attempts = d
                .outcome
                .attempts()
                .map_or_else(|| "-".to_string(), |n| n.to_string());
            let target = if d.resumed {
                format!("{} (resumed)", d.target)
            } else {
                d.target.clone()
            };
            [
                target,
                d.team.clone().unwrap_or_else(|| "-".into()),
                d.recipient.clone(),
                attempts,
                outcome,
            ]
        })
        .collect();
    print_table(
        ["TARGET", "TEAM", "RECIPIENT", "ATTEMPTS", "OUTCOME"],
        &rows,
    );
    for s in &summary.skipped {
        println!("skipped {}: {}", s.team.as_deref().unwrap_or("-"), s.reason);
    }
    if let Some(error) = &summary.error {
        eprintln!("error: job {} failed: {error}", job.name);
    }
    let refused = summary.deliveries.iter().any(|d| {
        matches!(&d.outcome, DeliveryOutcome::Failed { error, .. } if error.contains(crate::deliver::REFUSED))
    });
    if refused {
        eprintln!("{}", refused_hint(&job.name));
    }
    println!(
        "run {} {} (history in {})",
        summary.run_id,
        if summary.failed() {
            "failed"
        } else {
            "succeeded"
        },
        store.describe()
    );
    Ok(if summary.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// What to do when nothing listens where a delivery goes.
pub(super) fn refused_hint(job: &str) -> String {
    format!(
        "hint: nothing accepted the connection, so nothing was retried.\n\
         - to see what would be sent without sending it: `trainwatch run-once {job} --dry-run`,\n  \
         or `trainwatch preview {job}` to write every message to files;\n\
         - to try real deliveries locally: `docker compose up -d mailpit` (see docker-compose.yml),\n  \
         then set [smtp] host = \"127.0.0.1\", port = 1025, security = \"none\" and read the mail\n  \
         at http://127.0.0.1:8025."
    )
}
