//! A job's `deliver` and `on_failure` entries: targets, recipients,
//! subjects and template names.

use super::*;

impl Cx<'_, '_> {
    pub(super) fn deliveries(
        &mut self,
        list: &[Spanned<RawDelivery>],
        default_template: &str,
        names: &Names<'_>,
    ) -> Option<Vec<Delivery>> {
        let mut out = Vec::new();
        let mut complete = true;
        for delivery in list {
            match self.delivery(delivery, default_template, names) {
                Some(d) => out.push(d),
                None => complete = false,
            }
        }
        complete.then_some(out)
    }

    pub(super) fn delivery(
        &mut self,
        delivery: &Spanned<RawDelivery>,
        default_template: &str,
        names: &Names<'_>,
    ) -> Option<Delivery> {
        let span = delivery.span();
        let d = delivery.get_ref();
        let targets: Vec<&str> = [
            ("email", d.email.is_some()),
            ("webhook", d.webhook.is_some()),
            ("archive", d.archive.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if d.webhook.is_none() {
            for (key, value_span) in [
                ("template", d.template.as_ref().map(Spanned::span)),
                (
                    "include_assignments",
                    d.include_assignments.as_ref().map(Spanned::span),
                ),
            ] {
                if let Some(value_span) = value_span {
                    self.problem(
                        value_span,
                        format!("`{key}` next to the target belongs to webhook deliveries; for email put it inside `email = {{ … }}`"),
                    );
                }
            }
        }
        match targets.as_slice() {
            ["email"] => self
                .email(d.email.as_ref()?, default_template)
                .map(Delivery::Email),
            ["webhook"] => {
                let hook = d.webhook.as_ref()?;
                let known = names.webhooks.contains(hook.get_ref().as_str());
                if !known {
                    self.undefined(hook, "webhook", "[webhooks]", &names.webhooks);
                }
                let template = self.template(d.template.as_ref(), "digest");
                Some(Delivery::Webhook(WebhookDelivery {
                    webhook: hook.get_ref().clone(),
                    template: template?,
                    include_assignments: d
                        .include_assignments
                        .as_ref()
                        .is_some_and(|i| *i.get_ref()),
                }))
                .filter(|_| known)
            }
            ["archive"] => {
                let archive = d.archive.as_ref()?;
                let dir = self.require(
                    &archive.get_ref().dir,
                    &archive.span(),
                    "dir",
                    "the archive delivery",
                )?;
                if dir.get_ref().trim().is_empty() {
                    self.problem(dir.span(), "the archive `dir` is empty");
                    return None;
                }
                Some(Delivery::Archive(ArchiveDelivery {
                    dir: self.path(dir),
                }))
            }
            [] => {
                self.problem(
                    span,
                    "a delivery needs a target: `email = { to = [...] }`, `webhook = \"NAME\"` or `archive = { dir = \"...\" }`",
                );
                None
            }
            several => {
                self.problem(
                    span,
                    format!(
                        "a delivery takes one target, found {}: write one delivery per target",
                        several
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                );
                None
            }
        }
    }

    pub(super) fn email(
        &mut self,
        email: &Spanned<raw::RawEmail>,
        default_template: &str,
    ) -> Option<EmailDelivery> {
        let span = email.span();
        let e = email.get_ref();
        let to = self
            .require(&e.to, &span, "to", "the email delivery")
            .and_then(|to| {
                if to.get_ref().is_empty() {
                    self.problem(
                        to.span(),
                        "`to` is empty: an email needs at least one recipient",
                    );
                    None
                } else {
                    self.addresses(&e.to)
                }
            });
        let cc = self.addresses(&e.cc);
        let bcc = self.addresses(&e.bcc);
        let template = self.template(e.template.as_ref(), default_template);
        let attach = e.attach_csv.as_ref().is_some_and(|a| *a.get_ref());
        if let Some(excel) = e.csv_excel.as_ref().filter(|x| *x.get_ref() && !attach) {
            self.problem(
                excel.span(),
                "`csv_excel` shapes the attached CSV, but this email attaches none: add `attach_csv = true`",
            );
        }
        let subject = match &e.subject {
            Some(s) if !self.header_safe(s, "subject", false) => None,
            Some(s) if !self.compiles(s, "subject") => None,
            other => Some(other.as_ref().map(|s| s.get_ref().clone())),
        };
        Some(EmailDelivery {
            to: to?,
            cc: cc?,
            bcc: bcc?,
            subject: subject?,
            template: template?,
            attach_csv: e.attach_csv.as_ref().is_some_and(|a| *a.get_ref()),
            csv_excel: e.csv_excel.as_ref().is_some_and(|x| *x.get_ref()),
        })
    }

    /// Recipients: Tera templates are left to render time; literal
    /// mailboxes are checked now.
    pub(super) fn addresses(&mut self, list: &Strings) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut complete = true;
        for address in list.iter().flat_map(|l| l.get_ref()) {
            let text = address.get_ref();
            let templated = text.contains("{{") || text.contains("{%");
            if (templated && self.compiles(address, "recipient"))
                || (!templated && self.mailbox(address, "recipient"))
            {
                out.push(text.trim().to_string());
            } else {
                complete = false;
            }
        }
        complete.then_some(out)
    }

    /// Whether a Tera string (a subject, an address) compiles; a problem at
    /// its span if not.
    pub(super) fn compiles(&mut self, source: &Spanned<String>, what: &str) -> bool {
        match self.check.template_str(source.get_ref()) {
            Ok(()) => true,
            Err(cause) => {
                self.problem(
                    source.span(),
                    format!("this {what} template does not compile{cause}"),
                );
                false
            }
        }
    }

    /// A template name: built in, or a file in `templates_dir`.
    pub(super) fn template(
        &mut self,
        name: Option<&Spanned<String>>,
        default: &str,
    ) -> Option<String> {
        let Some(name) = name else {
            return Some(default.to_string());
        };
        let text = name.get_ref().trim();
        let in_dir = self
            .template_files
            .as_ref()
            .is_some_and(|(_, files)| files.contains(text));
        if BUILTIN_TEMPLATES.contains(&text) || in_dir {
            return Some(text.to_string());
        }
        let shown = self.quote(name);
        let hint = match &self.template_files {
            Some((dir, _)) => format!("or add a file {text}.* to {}", dir.display()),
            None => "or set templates_dir and add a file there".to_string(),
        };
        let mut message = format!(
            "unknown template {shown}: use one of {} {hint}",
            BUILTIN_TEMPLATES.join(", ")
        );
        if let Some(close) = closest(text, &BUILTIN_TEMPLATES) {
            message.push_str(&format!("; did you mean `{close}`?"));
        }
        self.problem(name.span(), message);
        None
    }
}
