//! `[samsara]`: where and how to call the API, and the checks its values share
//! with other tables (secrets, header-safe text).

use super::*;

impl Cx<'_, '_> {
    pub(super) fn samsara(&mut self, s: &Spanned<raw::RawSamsara>) -> Option<SamsaraConfig> {
        let span = s.span();
        let s = s.get_ref();
        let base_url = match &s.base_url {
            None => {
                Some(Url::parse(defaults::SAMSARA_BASE_URL).expect("the default base URL is valid"))
            }
            Some(value) => self.base_url(value),
        };
        // With sample data the token is optional, even if the folder is wrong:
        // one problem is enough.
        let wants_sample = s
            .sample_data
            .as_ref()
            .is_some_and(|v| !v.get_ref().trim().is_empty());
        let sample_data = s.sample_data.as_ref().and_then(|v| self.sample_data(v));
        let token = match &s.token {
            None if wants_sample => Some(SecretString::from(defaults::SAMPLE_TOKEN)),
            _ => self
                .require(&s.token, &span, "token", "[samsara]")
                .filter(|token| self.header_safe(token, "samsara.token", true))
                .and_then(|token| self.secret(token, "samsara.token")),
        };
        let requests_per_second = self.integer(
            &s.requests_per_second,
            defaults::REQUESTS_PER_SECOND,
            1..=100,
            "requests_per_second",
        );
        let timeout = self.duration(&s.timeout, defaults::REQUEST_TIMEOUT, false);
        if let Some(value) = &s.timeout
            && timeout >= defaults::API_TIMEOUT
        {
            self.problem(
                    value.span(),
                    "`timeout` must be under 90s: the Samsara API gives up on a request after 90 seconds",
                );
        }
        let api_version = s.api_version.as_ref().and_then(|v| {
            let text = v.get_ref().trim();
            if text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
                Some(text.to_string())
            } else {
                let shown = self.quote(v);
                self.problem(
                    v.span(),
                    format!(
                        "api_version {shown} is not a date: write `YYYY-MM-DD`, like `2024-05-01`"
                    ),
                );
                None
            }
        });
        let max_attempts = self.integer(
            &s.max_attempts,
            defaults::MAX_ATTEMPTS,
            1..=100,
            "max_attempts",
        );
        let max_retry_time = self.duration(&s.max_retry_time, defaults::MAX_RETRY_TIME, true);
        let max_fetch_time = self.duration(&s.max_fetch_time, defaults::MAX_FETCH_TIME, false);
        Some(SamsaraConfig {
            base_url: base_url?,
            token: token?,
            requests_per_second,
            timeout,
            api_version,
            max_attempts,
            max_retry_time,
            max_fetch_time,
            sample_data,
        })
    }

    /// `sample_data`: a folder holding at least `courses.json`; `""` is off.
    pub(super) fn sample_data(&mut self, value: &Spanned<String>) -> Option<PathBuf> {
        let text = value.get_ref().trim();
        if text.is_empty() {
            return None;
        }
        let path = self.base.join(text);
        let shown = self.quote(value);
        // The resolved path, unless the value came from the environment.
        let resolved = if self.diag.is_substituted(&value.span()) {
            String::new()
        } else {
            format!(" ({})", path.display())
        };
        if !path.is_dir() {
            self.problem(
                value.span(),
                format!(
                    "sample_data {shown} is not a folder{resolved}; relative paths are taken from the config file's folder"
                ),
            );
            return None;
        }
        if !path.join("courses.json").is_file() {
            self.problem(
                value.span(),
                format!(
                    "sample_data {shown} has no courses.json{resolved}: it is not a folder of sample API responses"
                ),
            );
            return None;
        }
        Some(path)
    }

    /// The API base URL, with a trailing slash so that joining a relative
    /// endpoint path keeps any path prefix.
    pub(super) fn base_url(&mut self, value: &Spanned<String>) -> Option<Url> {
        let mut url = self.http_url(value, "samsara.base_url", false)?;
        if url.query().is_some() || url.fragment().is_some() {
            let shown = self.quote(value);
            self.problem(
                value.span(),
                format!("{shown} must not have a query or fragment"),
            );
            return None;
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Some(url)
    }

    /// A non-empty secret; never quoted.
    pub(super) fn secret(&mut self, value: &Spanned<String>, key: &str) -> Option<SecretString> {
        if value.get_ref().trim().is_empty() {
            let from_env = if self.diag.is_substituted(&value.span()) {
                " (its environment variable is empty)"
            } else {
                ""
            };
            self.problem(value.span(), format!("`{key}` is empty{from_env}"));
            return None;
        }
        Some(SecretString::from(value.get_ref().clone()))
    }

    /// Whether `value` can go into a protocol line (an HTTP or mail header,
    /// an SMTP command) as it is: no CR, LF or other control character.
    /// A problem names the key, and quotes the value only if it is not `secret`.
    pub(super) fn header_safe(&mut self, value: &Spanned<String>, key: &str, secret: bool) -> bool {
        let Some(c) = value.get_ref().chars().find(|c| c.is_control()) else {
            return true;
        };
        let what = match c {
            '\n' | '\r' => "a line break".to_string(),
            other => format!("the control character {other:?}"),
        };
        let shown = if secret {
            format!("`{key}`")
        } else {
            format!("`{key}` {}", self.quote_short(value))
        };
        let hint = if self.diag.is_substituted(&value.span()) {
            " (check its environment variable for a trailing newline)"
        } else {
            ""
        };
        self.problem(
            value.span(),
            format!("{shown} contains {what}: it goes into a protocol header, which cannot hold one{hint}"),
        );
        false
    }
}
