//! The built-in templates, compiled into the binary from `templates/`.

/// The built-in templates: (file name, source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("_email.html", include_str!("../../templates/_email.html")),
    (
        "_overdue_body.html",
        include_str!("../../templates/_overdue_body.html"),
    ),
    (
        "_overdue_body.txt",
        include_str!("../../templates/_overdue_body.txt"),
    ),
    ("overdue.html", include_str!("../../templates/overdue.html")),
    ("overdue.txt", include_str!("../../templates/overdue.txt")),
    (
        "overdue.subject",
        include_str!("../../templates/overdue.subject"),
    ),
    (
        "overdue.slack.json",
        include_str!("../../templates/overdue.slack.json"),
    ),
    (
        "overdue.msteams.json",
        include_str!("../../templates/overdue.msteams.json"),
    ),
    (
        "escalation.html",
        include_str!("../../templates/escalation.html"),
    ),
    (
        "escalation.txt",
        include_str!("../../templates/escalation.txt"),
    ),
    (
        "escalation.subject",
        include_str!("../../templates/escalation.subject"),
    ),
    (
        "escalation.slack.json",
        include_str!("../../templates/escalation.slack.json"),
    ),
    (
        "escalation.msteams.json",
        include_str!("../../templates/escalation.msteams.json"),
    ),
    ("digest.html", include_str!("../../templates/digest.html")),
    ("digest.txt", include_str!("../../templates/digest.txt")),
    (
        "digest.subject",
        include_str!("../../templates/digest.subject"),
    ),
    (
        "digest.slack.json",
        include_str!("../../templates/digest.slack.json"),
    ),
    (
        "digest.msteams.json",
        include_str!("../../templates/digest.msteams.json"),
    ),
    ("audit.html", include_str!("../../templates/audit.html")),
    ("audit.txt", include_str!("../../templates/audit.txt")),
    (
        "audit.subject",
        include_str!("../../templates/audit.subject"),
    ),
    (
        "audit.slack.json",
        include_str!("../../templates/audit.slack.json"),
    ),
    (
        "audit.msteams.json",
        include_str!("../../templates/audit.msteams.json"),
    ),
    (
        "audit.report.html",
        include_str!("../../templates/audit.report.html"),
    ),
    ("failure.html", include_str!("../../templates/failure.html")),
    ("failure.txt", include_str!("../../templates/failure.txt")),
    (
        "failure.subject",
        include_str!("../../templates/failure.subject"),
    ),
];

/// The subject of an email whose template has no `NAME.subject` and whose
/// delivery sets none.
pub const DEFAULT_SUBJECT: &str = "{{ job.name }}: training report";

/// The template the archive's `report.html` is rendered from.
pub const ARCHIVE_TEMPLATE: &str = "audit.report.html";

/// The template of `on_failure` emails.
pub const FAILURE_TEMPLATE: &str = "failure";
