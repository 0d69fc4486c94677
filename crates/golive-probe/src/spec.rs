//! What a check annotation says, with placeholders bound.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Placeholder values of a run; some are secrets (never shown).
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: BTreeMap<String, String>,
    secrets: BTreeSet<String>,
}

impl Vars {
    pub fn new() -> Self {
        Vars::default()
    }

    /// Bind a plain variable.
    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_string(), value.to_string());
    }

    /// Bind a secret: usable in checks, never printed.
    pub fn set_secret(&mut self, name: &str, value: &str) {
        self.set(name, value);
        self.secrets.insert(name.to_string());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn is_bound(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every plain (not secret) binding.
    pub fn plain(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .filter(|(k, _)| !self.secrets.contains(*k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The names of the secrets.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }

    /// The values of every secret, longest first (for redaction).
    pub fn secret_values(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .secrets
            .iter()
            .filter_map(|k| self.values.get(k).map(String::as_str))
            .filter(|v| !v.is_empty())
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v
    }

    /// Every plain-text substitution of `[NAME]` in `text`.
    pub fn substitute(&self, text: &str) -> Result<String, SpecError> {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (s, e, name) in golive_runbook::text::scan_placeholders(text) {
            let value = self
                .get(&name)
                .ok_or_else(|| SpecError::Unbound(name.clone()))?;
            out.push_str(&text[last..s]);
            out.push_str(value);
            last = e;
        }
        out.push_str(&text[last..]);
        Ok(out)
    }
}

/// Why an annotation cannot make a check.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("`{0}` is required for a {1} check")]
    Missing(&'static str, &'static str),
    #[error("`{0}`: {1}")]
    Invalid(String, String),
    #[error("placeholder [{0}] is not bound (pass --var {0}=…)")]
    Unbound(String),
    #[error("unknown check kind `{0}`{1}")]
    UnknownKind(String, String),
}

/// An annotation table plus what it needs to become a probe.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub kind: &'static str,
    pub table: &'a toml::Table,
    pub vars: &'a Vars,
    /// The item's shell commands, for `command` checks without `command`.
    pub commands: Vec<(String, Option<String>)>,
    pub timeout: Duration,
}

impl<'a> Spec<'a> {
    /// A string option, placeholders substituted as plain text.
    pub fn text(&self, key: &str) -> Result<Option<String>, SpecError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => self.vars.substitute(s).map(Some),
            Some(other) => Ok(Some(other.to_string())),
        }
    }

    /// A required string option.
    pub fn required(&self, key: &'static str) -> Result<String, SpecError> {
        self.text(key)?.ok_or(SpecError::Missing(key, self.kind))
    }

    pub fn flag(&self, key: &str) -> Result<Option<bool>, SpecError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(SpecError::Invalid(
                key.into(),
                "expected true or false".into(),
            )),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, SpecError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(*i)),
            Some(toml::Value::String(s)) => self
                .vars
                .substitute(s)?
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| {
                    SpecError::Invalid(key.into(), format!("`{s}` is not a whole number"))
                }),
            Some(_) => Err(SpecError::Invalid(
                key.into(),
                "expected a whole number".into(),
            )),
        }
    }

    /// A table of strings (`headers`, `env`), placeholders substituted.
    pub fn string_table(&self, key: &str) -> Result<Vec<(String, String)>, SpecError> {
        match self.table.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Table(t)) => t
                .iter()
                .map(|(k, v)| match v {
                    toml::Value::String(s) => Ok((k.clone(), self.vars.substitute(s)?)),
                    _ => Err(SpecError::Invalid(
                        key.into(),
                        format!("`{k}` must be a string"),
                    )),
                })
                .collect(),
            Some(_) => Err(SpecError::Invalid(
                key.into(),
                "expected a table of strings".into(),
            )),
        }
    }
}

/// `500ms`, `5s`, `2m`, `1h`, `1m30s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{text}` is not a duration"));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` needs a unit: ms, s, m or h"))?;
        let value: f64 = rest[..n]
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (e.g. 5s, 250ms, 2m)"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit `{other}` in `{text}` (ms, s, m, h)")),
        };
        total += Duration::try_from_secs_f64(value * mult)
            .map_err(|_| format!("`{text}` is out of range"))?;
        rest = &rest[u..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn substitution_reports_unbound_names() {
        let mut v = Vars::new();
        v.set("DOMAIN", "shop.example.test");
        assert_eq!(
            v.substitute("[DOMAIN]:443").as_deref(),
            Ok("shop.example.test:443")
        );
        assert_eq!(
            v.substitute("[NOPE]"),
            Err(SpecError::Unbound("NOPE".into()))
        );
    }
}
