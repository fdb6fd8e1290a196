//! `history`: the runs and deliveries recorded in the store.

use super::*;

/// Prints the recent runs recorded in the store.
pub(super) fn history(
    config: &Config,
    job: Option<&str>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let db = config.state_dir.join("trainwatch.db");
    if config.store.url.is_none() && !db.exists() {
        println!("no runs recorded yet ({} does not exist)", db.display());
        return Ok(ExitCode::SUCCESS);
    }
    let store = crate::store::Store::open_config(config, None)?;
    let runs = store.runs(job, limit)?;
    if runs.is_empty() {
        println!(
            "no runs recorded{}",
            job.map(|j| format!(" for job {j}")).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|r| {
            // Times in the job's timezone when the job is still configured.
            let tz = config.job(&r.job).map_or(chrono_tz::UTC, |j| j.timezone);
            let local =
                |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string();
            let outcome = match r.outcome {
                crate::store::Outcome::Running if r.finished_at.is_none() => {
                    "running or interrupted".to_string()
                }
                crate::store::Outcome::Running => "running".to_string(),
                crate::store::Outcome::Succeeded => match r.finished_later {
                    (0, _) | (_, None) => "succeeded".to_string(),
                    (n, Some(by)) => format!("succeeded ({n} finished later, by run {by})"),
                },
                crate::store::Outcome::Failed => {
                    format!("failed: {}", r.error.as_deref().unwrap_or(""))
                }
                crate::store::Outcome::Interrupted => {
                    format!("interrupted: {}", r.error.as_deref().unwrap_or(""))
                }
                crate::store::Outcome::Skipped => r.error.clone().unwrap_or_default(),
            };
            let (delivered, failed, pending) = r.deliveries;
            let mut deliveries = format!("{delivered} sent, {failed} failed, {pending} pending");
            if r.finished_later.0 > 0 && r.outcome != crate::store::Outcome::Succeeded {
                deliveries.push_str(&format!("; {} finished later", r.finished_later.0));
            }
            if r.finished_for_others > 0 {
                deliveries.push_str(&format!(
                    "; finished {} of earlier runs",
                    r.finished_for_others
                ));
            }
            match r.notices {
                (0, 0) => {}
                (sent, 0) => deliveries.push_str(&format!(
                    "; {} sent",
                    count(sent as usize, "failure notice")
                )),
                (_, unsent) => deliveries.push_str(&format!(
                    "; {} NOT sent",
                    count(unsent as usize, "failure notice")
                )),
            }
            [
                r.id.to_string(),
                r.job.clone(),
                local(r.fire_time),
                r.window
                    .map(|(s, e)| format!("{} → {}", local(s), local(e)))
                    .unwrap_or_else(|| "-".into()),
                r.records.map_or("-".into(), |n| n.to_string()),
                deliveries,
                r.finished_at
                    .map(|f| {
                        format!(
                            "{:.1}s",
                            (f - r.started_at).num_milliseconds() as f64 / 1000.0
                        )
                    })
                    .unwrap_or_else(|| "-".into()),
                outcome,
            ]
        })
        .collect();
    let header = [
        "RUN",
        "JOB",
        "FIRED",
        "WINDOW",
        "RECORDS",
        "DELIVERIES",
        "TOOK",
        "OUTCOME",
    ];
    if store.shared() {
        // Several replicas write one store: say which one ran each run.
        let rows: Vec<[String; 9]> = rows
            .into_iter()
            .zip(&runs)
            .map(|(row, r)| {
                let [id, job, rest @ ..] = row;
                let replica = r.replica.clone().unwrap_or_else(|| "-".into());
                let [a, b, c, d, e, f] = rest;
                [id, job, replica, a, b, c, d, e, f]
            })
            .collect();
        let [id, job, rest @ ..] = header;
        let [a, b, c, d, e, f] = rest;
        print_table([id, job, "REPLICA", a, b, c, d, e, f], &rows);
    } else {
        print_table(header, &rows);
    }
    // Syncs belong to no job: listed under the runs of all jobs only.
    if job.is_none() {
        print_syncs(config)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// On a shared (Postgres) store: each job's last run, whichever replica ran it.
pub(super) fn print_last_runs(config: &Config) -> anyhow::Result<()> {
    let store = crate::store::Store::open_config(config, None)?;
    let mut rows: Vec<[String; 4]> = Vec::new();
    for job in &config.jobs {
        let last = store.runs(Some(&job.name), 1)?.pop();
        rows.push(match last {
            Some(r) => [
                job.name.clone(),
                r.fire_time
                    .with_timezone(&job.timezone)
                    .format("%Y-%m-%d %a %H:%M:%S %Z")
                    .to_string(),
                r.replica.unwrap_or_else(|| "-".into()),
                format!("{:?}", r.outcome).to_lowercase(),
            ],
            None => [job.name.clone(), "never".into(), "-".into(), "-".into()],
        });
    }
    println!();
    print_table(["JOB", "LAST FIRE", "REPLICA", "OUTCOME"], &rows);
    Ok(())
}
