//! `[smtp]`, and the mailboxes written literally in the config.

use super::*;

impl Cx<'_, '_> {
    /// Checks `Name <address>` or `address` structurally.
    pub(super) fn mailbox(&mut self, value: &Spanned<String>, what: &str) -> bool {
        self.parse_mailbox(value, what).is_some()
    }

    /// `Name <address>` or `address`, parsed; a problem at its span if it
    /// is not a mailbox.
    pub(super) fn parse_mailbox(&mut self, value: &Spanned<String>, what: &str) -> Option<Mailbox> {
        if let Ok(mailbox) = Mailbox::parse(value.get_ref()) {
            return Some(mailbox);
        }
        let shown = self.quote(value);
        self.problem(
            value.span(),
            format!("{what} {shown} is not a mailbox: {MAILBOX_SHAPE}"),
        );
        None
    }

    pub(super) fn smtp(&mut self, s: &Spanned<raw::RawSmtp>) -> Option<SmtpConfig> {
        let span = s.span();
        let s = s.get_ref();
        let host = self
            .require(&s.host, &span, "host", "[smtp]")
            .and_then(|h| {
                if h.get_ref().trim().is_empty() {
                    self.problem(h.span(), "`host` is empty");
                    None
                } else if !self.header_safe(h, "smtp.host", false) {
                    None
                } else {
                    Some(h.get_ref().trim().to_string())
                }
            });
        let security = match &s.security {
            None => SmtpSecurity::StartTls,
            Some(v) => match v.get_ref().as_str() {
                "starttls" => SmtpSecurity::StartTls,
                "tls" => SmtpSecurity::Tls,
                "none" => SmtpSecurity::None,
                _ => {
                    let shown = self.quote(v);
                    self.problem(
                        v.span(),
                        format!("unknown security {shown}: use starttls, tls or none"),
                    );
                    SmtpSecurity::StartTls
                }
            },
        };
        let default_port = match security {
            SmtpSecurity::StartTls => defaults::SMTP_PORT_STARTTLS,
            SmtpSecurity::Tls => defaults::SMTP_PORT_TLS,
            SmtpSecurity::None => defaults::SMTP_PORT_PLAIN,
        };
        let port = self.integer(&s.port, default_port, 1..=65535, "port");
        match (&s.username, &s.password) {
            (Some(u), None) => self.problem(
                u.span(),
                "`username` needs a `password` (set both, or neither for a server without AUTH)",
            ),
            (None, Some(p)) => self.problem(
                p.span(),
                "`password` needs a `username` (set both, or neither for a server without AUTH)",
            ),
            _ => {}
        }
        let username = s
            .username
            .as_ref()
            .filter(|u| self.header_safe(u, "smtp.username", false))
            .map(|u| u.get_ref().clone());
        let password = s
            .password
            .as_ref()
            .filter(|p| self.header_safe(p, "smtp.password", true))
            .and_then(|p| self.secret(p, "smtp.password"));
        let from = self
            .require(&s.from, &span, "from", "[smtp]")
            .and_then(|f| self.parse_mailbox(f, "from"));
        let timeout = self.duration(&s.timeout, defaults::SMTP_TIMEOUT, false);
        Some(SmtpConfig {
            host: host?,
            port,
            security,
            username,
            password,
            from: from?,
            timeout,
        })
    }
}
