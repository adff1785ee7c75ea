//! Reading settings from an environment map, collecting every problem instead of stopping at
//! the first: an operator fixing app settings wants the whole list in one go.

use std::collections::HashMap;
use std::fmt;
use url::{Host, Url};

/// One missing or malformed setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting's name, as in the README.
    pub setting: String,
    /// What is wrong with it (never its value when it is a secret).
    pub problem: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting {}: {}", self.setting, self.problem)
    }
}

/// Every problem found, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsErrors(pub Vec<SettingError>);

impl SettingsErrors {
    /// Whether some problem names `setting`.
    pub fn names(&self, setting: &str) -> bool {
        self.0.iter().any(|e| e.setting == setting)
    }
}

impl fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsErrors {}

/// Looks settings up and records problems.
pub(super) struct Reader<'a> {
    env: &'a HashMap<String, String>,
    pub(super) errors: Vec<SettingError>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(env: &'a HashMap<String, String>) -> Self {
        Self {
            env,
            errors: Vec::new(),
        }
    }

    /// The trimmed value; an empty value means unset.
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn error(&mut self, setting: &str, problem: impl Into<String>) {
        self.errors.push(SettingError {
            setting: setting.to_owned(),
            problem: problem.into(),
        });
    }

    /// A required setting; records "missing" when unset.
    pub(super) fn required(&mut self, name: &str, meaning: &str) -> Option<&'a str> {
        let v = self.get(name);
        if v.is_none() {
            self.error(name, format!("missing (required: {meaning})"));
        }
        v
    }

    /// Parses with `parse`, recording its error under `name`.
    pub(super) fn parsed<T>(
        &mut self,
        name: &str,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value?) {
            Ok(v) => Some(v),
            Err(problem) => {
                self.error(name, problem);
                None
            }
        }
    }

    /// An endpoint URL: `https://`, or `http://` for loopback hosts only (local simulators).
    pub(super) fn endpoint(&mut self, name: &str, default: &str) -> Option<Url> {
        let raw = self.get(name).unwrap_or(default);
        self.parsed(name, Some(raw), check_endpoint)
    }

    /// A boolean `true`/`false` (any case).
    pub(super) fn flag(&mut self, name: &str) -> Option<bool> {
        self.parsed(name, Some(self.get(name).unwrap_or("false")), |v| {
            match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("'{v}' is not true or false")),
            }
        })
    }
}

/// Checks an endpoint URL: absolute, `https`, or `http` on a loopback host.
pub(crate) fn check_endpoint(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "'{raw}' uses http:// on a host that is not loopback; use https://"
        )),
        _ => Err(format!("'{raw}' is not an https:// URL")),
    }
}

/// Whether the URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_https_anywhere_and_http_only_on_loopback() {
        assert!(check_endpoint("https://graph.microsoft.com").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://localhost:1").is_ok());
        assert!(check_endpoint("http://[::1]:1").is_ok());
        assert!(check_endpoint("http://10.0.0.1").is_err());
        assert!(check_endpoint("http://graph.microsoft.com").is_err());
        assert!(check_endpoint("ftp://127.0.0.1").is_err());
        assert!(check_endpoint("not a url").is_err());
    }

    #[test]
    fn empty_values_are_unset() {
        let env = HashMap::from([
            ("A".to_owned(), "  ".to_owned()),
            ("B".to_owned(), " x ".to_owned()),
        ]);
        let r = Reader::new(&env);
        assert_eq!(r.get("A"), None);
        assert_eq!(r.get("B"), Some("x"));
    }
}
