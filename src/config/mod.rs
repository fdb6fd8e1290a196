//! Configuration: raw TOML → typed values, with every problem reported at once.
//!
//! Loading runs in four passes over one spanned TOML tree, so that a user
//! sees every mistake in one go, each with `file:line:col`:
//!
//! 1. parse, recovering from syntax errors ([`toml::de::DeTable::parse_recoverable`]);
//! 2. substitute `${VAR}` from the environment in every string value;
//! 3. deserialize into raw structs (`deny_unknown_fields`, every field
//!    optional); each serde error is recorded, the offending entry is pruned
//!    from the tree and deserialization is retried, because serde stops at
//!    the first error;
//! 4. resolve raw strings into the typed [`Config`], collecting every
//!    semantic problem with the span of the value concerned.
//!
//! Checks that need templates or reports (compiling templates, the dry
//! render of every delivery) belong to [`crate::check`], which sits above
//! everything else; it is handed in as a `ConfigCheck` so that this module
//! imports only leaves. [`crate::check::load`] is the full load.
//!
//! Values that came from the environment are never quoted in a message:
//! tokens, passwords and webhook URLs are secrets.

mod diag;
mod duration;
mod env;
pub(crate) mod raw;
mod resolve;
mod types;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

pub use duration::{MAX_SECONDS as MAX_DURATION_SECONDS, parse_duration};
pub use types::*;

/// Templates shipped in the binary; a delivery may name one of these or a
/// file `<templates_dir>/<name>.*`.
pub const BUILTIN_TEMPLATES: [&str; 5] = ["overdue", "digest", "audit", "failure", "escalation"];

/// The checks of a configuration that need more than the configuration:
/// the template engine, the rollup and the renderer. Implemented by
/// [`crate::check`]; each returns what is wrong, and the configuration
/// reports it at the value concerned with `file:line:col`.
pub(crate) trait ConfigCheck {
    /// The message when a template in `dir` (the `templates_dir`, which
    /// exists) does not compile.
    fn templates_dir(&self, dir: &Path) -> Option<String>;
    /// Whether an inline Tera string (a subject, a recipient) compiles; the
    /// error is the cause to append to the message (`": …"`, or empty).
    fn template_str(&self, source: &str) -> Result<(), String>;
    /// The dry render of a configuration without other problems: each
    /// problem at its span in the file. `raw_jobs` are the jobs of
    /// `config`, as written, in the same order.
    fn deliveries(
        &self,
        config: &Config,
        raw_jobs: &[&Spanned<raw::RawJob>],
        problem: &mut dyn FnMut(Range<usize>, String),
    );
}

/// No checks beyond the configuration's own: templates are not compiled and
/// deliveries are not rendered (see [`crate::check::load`] for those).
struct NoCheck;

impl ConfigCheck for NoCheck {
    fn templates_dir(&self, _dir: &Path) -> Option<String> {
        None
    }
    fn template_str(&self, _source: &str) -> Result<(), String> {
        Ok(())
    }
    fn deliveries(
        &self,
        _config: &Config,
        _raw_jobs: &[&Spanned<raw::RawJob>],
        _problem: &mut dyn FnMut(Range<usize>, String),
    ) {
    }
}

/// Reads and resolves the configuration file at `path`, taking `${VAR}`
/// values from the process environment. Templates are neither compiled nor
/// rendered: [`crate::check::load`] is the full load.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &NoCheck)
}

/// [`load`], with `check`'s checks added.
pub(crate) fn load_with(path: &Path, check: &dyn ConfigCheck) -> Result<Config, ConfigErrors> {
    let source = read_capped(path).map_err(|message| ConfigErrors {
        problems: vec![Problem {
            path: path.to_path_buf(),
            line: 1,
            col: 1,
            message,
        }],
    })?;
    load_str_with(&source, path, &|name| std::env::var(name).ok(), check)
}

/// The largest configuration file read: ten times the size of a config with
/// 500 teams of 100 learners. The cap is what stops `--config /dev/zero` (or
/// a log file named by mistake) from reading until memory runs out, and it
/// bounds what the TOML parser holds for a file that is not TOML at all.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The file's text, read through a cap of [`MAX_CONFIG_BYTES`].
fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let cannot = |err: std::io::Error| {
        format!(
            "cannot read the configuration file {}: {err}",
            path.display()
        )
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "the configuration file {} is larger than {} MiB: is it the right file?",
            path.display(),
            MAX_CONFIG_BYTES / (1024 * 1024)
        ));
    }
    String::from_utf8(bytes).map_err(|err| {
        format!(
            "the configuration file {} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            err.utf8_error().valid_up_to()
        )
    })
}

/// Resolves configuration text as if read from `path` (used for messages and
/// to resolve relative paths), taking `${VAR}` values from `env`. Like
/// [`load`], without the checks of [`crate::check::load_str`].
pub fn load_str(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_str_with(source, path, env, &NoCheck)
}

/// [`load_str`], with `check`'s checks added.
pub(crate) fn load_str_with(
    source: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: &dyn ConfigCheck,
) -> Result<Config, ConfigErrors> {
    let mut diag = diag::Diag::new(source);
    let config = resolve::load(source, path, env, check, &mut diag);
    match config {
        Some(config) if diag.is_empty() => Ok(config),
        _ => Err(ConfigErrors {
            problems: diag.into_problems(path),
        }),
    }
}

/// Every problem found in a configuration file, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One problem in a configuration file, at a 1-based line and column
/// (the column counts characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}
