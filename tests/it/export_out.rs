//! `export --out FILE` writes exactly what `export` prints, through a
//! buffer, and the file gets the user's usual mode (0666 less the umask).

use crate::common;

use std::path::Path;

use common::{assignment, page};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn samsara() -> MockServer {
    let server = MockServer::start().await;
    let records: Vec<_> = (0..300)
        .map(|i| {
            let mut a = assignment(
                &format!("a{i:03}"),
                &format!("{}", i % 7),
                "c1",
                "notStarted",
                "2026-03-04T00:00:00Z",
            );
            a["dueAtTime"] = json!("2026-03-01T00:00:00Z");
            a
        })
        .collect();
    Mock::given(path("/training-assignments/stream"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(records, "", false)))
        .mount(&server)
        .await;
    Mock::given(path("/training-courses"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": "c1", "title": "Hazmat"})],
            "",
            false,
        )))
        .mount(&server)
        .await;
    Mock::given(path("/fleet/drivers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![json!({"id": "1", "name": "Zoë"})],
            "",
            false,
        )))
        .mount(&server)
        .await;
    server
}

fn config(dir: &Path, uri: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[mirror]\nenabled = false\n\n[samsara]\nbase_url = \"{uri}\"\ntoken = \"t\"\n\n[[jobs]]\nname = \"j\"\nschedule = \"0 8 * * Mon\"\n\
             window = {{ last = \"7d\" }}\ndeliver = [{{ archive = {{ dir = \"a\" }} }}]\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `trainwatch export j` with `args`, under umask 027; returns stdout.
fn export(config: &Path, args: &[&str]) -> Vec<u8> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trainwatch"));
    cmd.arg("--config")
        .arg(config)
        .args(["export", "j", "--at", "2026-03-09T00:00:00Z"])
        .args(args)
        .env_remove("TRAINWATCH_CONFIG");
    #[cfg(unix)]
    unsafe {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask is async-signal-safe; nothing else runs in the child yet.
        cmd.pre_exec(|| {
            libc::umask(0o027);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_out_file_equals_the_printed_export_in_both_formats() {
    let server = samsara().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server.uri());
    for format in ["jsonl", "csv"] {
        let (config, file) = (config.clone(), dir.path().join(format!("out.{format}")));
        let (printed, written) = tokio::task::spawn_blocking(move || {
            let printed = export(&config, &["--format", format]);
            let out = export(
                &config,
                &["--format", format, "--out", file.to_str().unwrap()],
            );
            assert!(out.is_empty(), "nothing on stdout with --out");
            (printed, std::fs::read(&file).unwrap())
        })
        .await
        .unwrap();
        assert!(printed.len() > 10_000, "{format}: {} bytes", printed.len());
        assert_eq!(printed, written, "{format}");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_out_file_gets_the_users_umask_not_a_temporary_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let server = samsara().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &server.uri());
    let file = dir.path().join("out.csv");
    let target = file.clone();
    tokio::task::spawn_blocking(move || export(&config, &["--out", target.to_str().unwrap()]))
        .await
        .unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "0666 less umask 027, got {mode:o}");
}
