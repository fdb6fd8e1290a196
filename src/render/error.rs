//! What can go wrong building or rendering a template, and where.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Something that went wrong building or rendering a template.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template file could not be read.
    #[error("cannot read template {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template does not compile; `file` is its path (or `built-in NAME`).
    #[error("{}: template does not compile", location(file, *line, *column))]
    Compile {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        #[source]
        source: Box<tera::Error>,
    },
    /// Rendering failed (an undefined variable, a filter error, …).
    #[error("template {template} failed to render")]
    Render {
        template: String,
        #[source]
        source: Box<tera::Error>,
    },
    /// The template exists, but not for this output.
    #[error("template `{template}` has no {file}: add one to templates_dir")]
    Missing { template: String, file: String },
    /// A JSON template rendered something that is not JSON.
    #[error("template {template} did not render valid JSON")]
    Json {
        template: String,
        #[source]
        source: serde_json::Error,
    },
    /// The rendered payload is not what the target accepts.
    #[error("template {template}: {message}")]
    Payload { template: String, message: String },
    /// The data could not be made into a template context.
    #[error("cannot build the template context")]
    Context(#[source] Box<tera::Error>),
}

fn location(file: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

/// The compile error of a batch, attributed to the file Tera's report
/// points at (`--> NAME:LINE:COL`).
pub(super) fn compile_error(
    source: tera::Error,
    files: &BTreeMap<String, (String, String)>,
) -> RenderError {
    let report = source.to_string();
    let source = Box::new(source);
    let culprit = files
        .iter()
        .filter_map(|(name, (_, origin))| {
            report
                .find(&format!("--> {name}:"))
                .map(|at| (at, name, origin))
        })
        .min_by_key(|(at, _, _)| *at);
    match culprit {
        Some((_, name, origin)) => {
            let (line, column) = line_col(&report, name);
            RenderError::Compile {
                file: origin.clone(),
                line,
                column,
                source,
            }
        }
        None => RenderError::Compile {
            file: "templates".to_string(),
            line: None,
            column: None,
            source,
        },
    }
}

/// `LINE:COL` after `--> NAME:` in a Tera report.
pub(super) fn line_col(report: &str, name: &str) -> (Option<usize>, Option<usize>) {
    let marker = format!("--> {name}:");
    let Some(at) = report.find(&marker) else {
        return (None, None);
    };
    let rest = &report[at + marker.len()..];
    let mut numbers = rest
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|n| n.parse::<usize>().ok());
    (numbers.next().flatten(), numbers.next().flatten())
}
