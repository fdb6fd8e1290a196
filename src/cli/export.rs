//! `export`: a job's rows written out, with a progress line on a terminal.

use super::*;

pub(super) async fn export_cmd(
    config: &Config,
    job: &Job,
    at: DateTime<Utc>,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (client, _server) = client(config).await?;
    let summary = match out {
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let mut builder = tempfile::Builder::new();
            // The file is the user's, like any they create: 0666 less their
            // umask, not the 0600 of a temporary file.
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let mut tmp = builder
                .tempfile_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
            let summary =
                crate::export::export(config, job, &client, at, format.into(), &mut buffered)
                    .await?;
            buffered
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            summary
        }
        None => {
            // One write per buffer, not one per line (stdout is line-buffered).
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::export::export(config, job, &client, at, format.into(), &mut out).await?
        }
    };
    for w in &summary.warnings {
        tracing::warn!("{w}");
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "{} in {} ({}, {}, {} merged, {} deleted or outside the window left out){}",
            count(summary.rows, "assignment"),
            summary.window.in_zone(job.timezone),
            count(summary.fetch.pages as usize, "page"),
            noun_count(summary.fetch.queries as i128, "query", Some("queries")),
            count(summary.fetch.duplicates as usize, "duplicate"),
            summary.left_out,
            out.map(|p| format!(" → {}", p.display()))
                .unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}
