//! A command whose reader goes away (`trainwatch list | head -1`) ends
//! quietly, as `cat` does: no panic message, no exit code 101.

use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_closed_pipe_on_stdout_ends_the_command_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Enough jobs that `list` writes well past a pipe's 64 KiB buffer, so a
    // write meets the closed pipe whenever the reader goes away.
    let mut config = String::from("[samsara]\ntoken = \"t\"\n");
    for i in 0..400 {
        config.push_str(&format!(
            "\n[[jobs]]\nname = \"job-with-a-long-enough-name-{i:04}\"\nschedule = \"0 8 * * Mon\"\n\
             window = {{ last = \"7d\" }}\ndeliver = [{{ archive = {{ dir = \"a\" }} }}]\n"
        ));
    }
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_trainwatch"))
        .arg("--config")
        .arg(&path)
        .arg("list")
        .env_remove("TRAINWATCH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `head -c 100`: read a little, then close.
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let output = child.wait_with_output().unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
    assert_ne!(output.status.code(), Some(101), "{:?}", output.status);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGPIPE),
            "ended by SIGPIPE, like cat: {:?}",
            output.status
        );
    }
    assert!(String::from_utf8_lossy(&first).starts_with("JOB"));
}
