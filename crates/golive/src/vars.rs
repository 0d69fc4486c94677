//! Variables of a run: `--var K=V`, `--vars-file F`, `--secret NAME=env:VAR`,
//! and the redaction that keeps secret values out of every output.

use golive_probe::Vars;
use std::path::Path;

/// Bind `--vars-file` first, then `--var` (which wins), then secrets.
pub fn bind(
    pairs: &[String],
    files: &[std::path::PathBuf],
    secrets: &[String],
) -> Result<Vars, String> {
    let mut vars = Vars::new();
    for f in files {
        for (k, v) in read_vars_file(f)? {
            vars.set(&k, &v);
        }
    }
    for (k, v) in crate::parse_vars(pairs)? {
        vars.set(&k, &v);
    }
    for s in secrets {
        let (name, source) = s
            .split_once('=')
            .ok_or_else(|| format!("--secret {s}: expected NAME=env:VAR or NAME=file:PATH"))?;
        let value = if let Some(var) = source.strip_prefix("env:") {
            std::env::var(var)
                .map_err(|_| format!("--secret {name}: environment variable {var} is not set"))?
        } else if let Some(path) = source.strip_prefix("file:") {
            std::fs::read_to_string(path)
                .map_err(|e| format!("--secret {name}: cannot read {path}: {e}"))?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        } else {
            return Err(format!(
                "--secret {name}: the value comes from env:VAR or file:PATH, never the command line"
            ));
        };
        vars.set_secret(name.trim(), &value);
    }
    Ok(vars)
}

/// A vars file: a TOML table of strings, or `NAME=value` lines (`#` comments).
fn read_vars_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--vars-file {}: {e}", path.display()))?;
    if let Ok(table) = toml::from_str::<toml::Table>(&text) {
        return table
            .into_iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => Ok((k, s)),
                other => Ok((k, other.to_string())),
            })
            .collect();
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| format!("{}:{}: expected NAME=value", path.display(), n + 1))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// Replaces every secret value with `[redacted]` in text that leaves golive.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(vars: &Vars) -> Self {
        Redactor {
            secrets: vars
                .secret_values()
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}
