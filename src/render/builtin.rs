//! The built-in templates, compiled into the binary from `templates/`.

/// `(file name, source)` of each named file in `templates/`, each name written once.
macro_rules! templates {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../templates/", $file)))),*]
    };
}

/// The built-in templates of email and the archive: (file name, source).
/// Each webhook kind lists its own ([`crate::sink::Sink::builtin_templates`]).
pub const BUILTIN: &[(&str, &str)] = templates![
    "_email.html",
    "_overdue_body.html",
    "_overdue_body.txt",
    "overdue.html",
    "overdue.txt",
    "overdue.subject",
    "escalation.html",
    "escalation.txt",
    "escalation.subject",
    "digest.html",
    "digest.txt",
    "digest.subject",
    "audit.html",
    "audit.txt",
    "audit.subject",
    "audit.report.html",
    "failure.html",
    "failure.txt",
    "failure.subject",
];

/// The subject of an email whose template has no `NAME.subject` and whose
/// delivery sets none.
pub const DEFAULT_SUBJECT: &str = "{{ job.name }}: training report";

/// The template the archive's `report.html` is rendered from.
pub const ARCHIVE_TEMPLATE: &str = "audit.report.html";

/// The template of `on_failure` emails.
pub const FAILURE_TEMPLATE: &str = "failure";

#[cfg(test)]
mod tests {
    /// The template names config accepts and the files here cannot drift
    /// apart: every built-in file belongs to a name config lists (the
    /// renderer's own test checks the other way).
    #[test]
    fn every_built_in_file_belongs_to_a_name_config_accepts() {
        for (file, _) in super::BUILTIN {
            if file.starts_with('_') {
                continue; // partials, included by the others
            }
            let name = file.split('.').next().unwrap_or_default();
            assert!(crate::config::BUILTIN_TEMPLATES.contains(&name), "{file}");
        }
        for kind in crate::sink::WebhookKind::all() {
            for (file, _) in kind.builtin_templates() {
                let name = file.split('.').next().unwrap_or_default();
                assert!(crate::config::BUILTIN_TEMPLATES.contains(&name), "{file}");
            }
        }
    }
}
