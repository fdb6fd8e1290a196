//! `validate` and `list`: the configuration checked, the jobs and their fires.

use super::*;

/// `list`: one row per upcoming fire, the job's name, schedule and timezone
/// on its first row.
pub(super) fn print_list(config: &Config, now: DateTime<Utc>) {
    const FIRES: usize = 3;
    let mut rows: Vec<[String; 5]> = Vec::new();
    for job in &config.jobs {
        let fires = crate::schedule::next_fires(&job.schedule, job.timezone, now, FIRES);
        let mut cells = fires.iter().map(|t| {
            [
                t.with_timezone(&job.timezone)
                    .format("%Y-%m-%d %a %H:%M:%S %Z")
                    .to_string(),
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ]
        });
        let [local, utc] = cells
            .next()
            .unwrap_or_else(|| ["never".to_string(), "-".to_string()]);
        rows.push([
            job.name.clone(),
            job.schedule.expr.clone(),
            job.timezone.to_string(),
            local,
            utc,
        ]);
        rows.extend(
            cells.map(|[local, utc]| [String::new(), String::new(), String::new(), local, utc]),
        );
    }
    print_table(
        ["JOB", "SCHEDULE", "TIMEZONE", "NEXT (LOCAL)", "UTC"],
        &rows,
    );
}

/// Loads the config, printing every problem on failure.
pub(super) fn load(path: &Path) -> Result<Config, ExitCode> {
    crate::check::load(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{}", count(errors.problems.len(), "problem"));
        ExitCode::from(EXIT_USAGE)
    })
}

/// What `validate` says of a config that loaded.
pub(super) fn print_valid(path: &Path, c: &Config) {
    // Teams made from tags exist only at run time: say where they come from.
    let from_tags = c
        .teams_from_tags
        .as_ref()
        .map(|t| {
            format!(
                " and one per child tag of `{}` (see `trainwatch teams`)",
                crate::names::one_line(&t.parent)
            )
        })
        .unwrap_or_default();
    println!(
        "{}: OK ({}, {}{from_tags}, {})",
        path.display(),
        count(c.jobs.len(), "job"),
        count(c.teams.len(), "team"),
        count(c.webhooks.len(), "webhook"),
    );
}
