//! `preview` and `run-once --dry-run`: a run prepared, its outbox written or listed.

use super::*;

/// The job fetched, rolled up and rendered as fired at `fire`, with no
/// run history (as `job::run` prepares it); the names' warnings logged.
pub(super) async fn prepare(
    config: &Config,
    job: &Job,
    fire: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Prepared> {
    let renderer = crate::render::Renderer::new(config.templates_dir.as_deref())
        .context("loading the templates")?;
    let (client, _server) = client(config).await?;
    let context = crate::job::Context {
        config,
        job,
        client: &client,
    };
    let run = context
        .prepare(fire, None, now, crate::job::Upto::Outbox(&renderer))
        .await?;
    for w in &run.data.names.warnings {
        tracing::warn!("{w}");
    }
    Ok(run)
}

/// Writes exactly what the job's deliveries would send, as the files
/// [`crate::outbox::preview_files`] names, under `out/<job>/`, and says
/// where: an `.eml` by the email sender's code, a snapshot by the archive
/// delivery's own code.
pub(super) fn write_preview(job: &Job, run: &Prepared, out: &Path) -> anyhow::Result<()> {
    use crate::outbox::PreviewFile;
    let root = out.join(&job.name);
    let written: std::cell::RefCell<Vec<PathBuf>> = Default::default();
    let write = |path: PathBuf, bytes: &[u8]| -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file =
            std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        let mut file = std::io::BufWriter::new(file);
        file.write_all(bytes)
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        written.borrow_mut().push(path);
        Ok(())
    };
    for file in crate::outbox::preview_files(&run.outbox.items)? {
        match file {
            PreviewFile::Bytes(path, bytes) => write(root.join(path), &bytes)?,
            PreviewFile::Eml(path, email) => write(root.join(path), &email.to_eml()?)?,
            PreviewFile::Snapshot {
                folder,
                files,
                manifest,
            } => {
                let folder = root.join(folder);
                // A snapshot is never overwritten; a preview's is, so it
                // shows this run. Only a folder that is a snapshot goes.
                if folder.join("manifest.json").is_file() {
                    std::fs::remove_dir_all(&folder)
                        .with_context(|| format!("replacing {}", folder.display()))?;
                }
                crate::deliver::archive::write_snapshot(&folder, files, manifest.clone())
                    .with_context(|| format!("writing {}", folder.display()))?;
                let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
                names.extend(["manifest.json", "SHA256SUMS"]);
                written
                    .borrow_mut()
                    .extend(names.into_iter().map(|f| folder.join(f)));
            }
        }
    }
    run.outbox.discard_staged();
    let written = written.into_inner();
    println!(
        "{}: window {} ({}), {} fetched, {} reported",
        job.name,
        run.data.window.in_zone(job.timezone),
        job.timezone,
        count(run.data.fetched_count() as usize, "assignment"),
        count(run.data.included_count(job) as usize, "assignment"),
    );
    for s in &run.outbox.skipped {
        println!(
            "  skipped {}: {}",
            s.team.as_deref().unwrap_or(&job.name),
            s.reason
        );
    }
    println!(
        "wrote {} under {}:",
        count(written.len(), "file"),
        root.display()
    );
    for path in &written {
        println!("  {}", path.display());
    }
    Ok(())
}

/// What a run would send, to whom; never a secret.
pub(super) fn print_dry_run(job: &Job, run: &Prepared) {
    let local = run.fire.with_timezone(&job.timezone);
    println!(
        "job {} as if fired at {} ({})",
        job.name,
        local.to_rfc3339(),
        job.timezone
    );
    println!(
        "window {}: {} fetched in {} ({} merged), {} reported",
        run.data.window.in_zone(job.timezone),
        count(run.data.fetched_count() as usize, "assignment"),
        count(run.data.stats.pages as usize, "page"),
        count(run.data.stats.duplicates as usize, "duplicate"),
        count(run.data.included_count(job) as usize, "assignment"),
    );
    let rows: Vec<[String; 5]> = run
        .outbox
        .items
        .iter()
        .map(|i| {
            [
                i.kind.to_string(),
                i.team.clone().unwrap_or_else(|| "-".into()),
                i.recipient.clone(),
                i.summary.clone(),
                human_size(i.size()),
            ]
        })
        .collect();
    print_table(["DELIVERY", "TEAM", "TO", "WHAT", "SIZE"], &rows);
    for s in &run.outbox.skipped {
        println!("skipped {}: {}", s.team.as_deref().unwrap_or("-"), s.reason);
    }
    run.outbox.discard_staged();
    println!("dry run: nothing was sent");
}

pub(super) fn human_size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}
