//! `[webhooks.NAME]`.

use super::*;

impl Cx<'_, '_> {
    pub(super) fn webhooks(&mut self, raw: &RawConfig) -> Option<BTreeMap<String, Webhook>> {
        let mut out = BTreeMap::new();
        let mut complete = true;
        for (name, hook) in raw.webhooks.iter().flat_map(|w| w.get_ref()) {
            let table = format!("[webhooks.{name}]");
            let span = hook.span();
            if let Some(c) = name.chars().find(|c| c.is_control()) {
                // The name is printed in summaries and logs, one line each.
                self.problem(
                    span.clone(),
                    format!(
                        "webhook name {} is not allowed: it contains the control character {c:?}",
                        shown_name(name)
                    ),
                );
                complete = false;
            }
            let hook = hook.get_ref();
            let kind = self
                .require(&hook.kind, &span, "kind", &table)
                .and_then(|k| match WebhookKind::parse(k.get_ref()) {
                    Some(kind) => Some(kind),
                    None => {
                        let shown = self.quote(k);
                        self.problem(
                            k.span(),
                            format!("unknown webhook kind {shown}: use {}", WebhookKind::names()),
                        );
                        None
                    }
                });
            let key = format!("webhooks.{name}.url");
            let url = self
                .require(&hook.url, &span, "url", &table)
                .filter(|u| self.http_url(u, &key, true).is_some())
                .map(|u| SecretString::from(u.get_ref().trim().to_string()));
            let secret = hook.secret.as_ref().and_then(|s| {
                if kind.is_some_and(|k| !k.signs()) {
                    let signers: Vec<&str> = WebhookKind::all()
                        .filter(|k| k.signs())
                        .map(|k| k.as_str())
                        .collect();
                    self.problem(
                        s.span(),
                        format!(
                            "`secret` is only used by {} webhooks (it signs the body): remove it, or set kind = \"{}\"",
                            signers.join(" or "),
                            signers.join("\" or \"")
                        ),
                    );
                }
                self.secret(s, &format!("webhooks.{name}.secret"))
            });
            match (kind, url) {
                (Some(kind), Some(url)) => {
                    out.insert(
                        name.clone(),
                        Webhook {
                            name: name.clone(),
                            kind,
                            url,
                            secret,
                        },
                    );
                }
                _ => complete = false,
            }
        }
        complete.then_some(out)
    }
}
