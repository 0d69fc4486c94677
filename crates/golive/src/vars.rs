//! Variables of a run as the command line gives them: `--var K=V`,
//! `--vars-file F`, `--secret NAME=env:VAR|file:PATH`. (The redaction that
//! keeps secret values out of every output is the lifecycle's:
//! `golive_deploy::vars::Redactor`.)

use golive_deploy::vars::MIN_SECRET_CHARS;
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
        let name = name.trim();
        if value.is_empty() {
            return Err(format!(
                "--secret {name}: the value is empty: golive cannot hide an empty value, so it refuses it; \
                 set the variable or file to the secret"
            ));
        }
        let chars = value.chars().count();
        if chars < MIN_SECRET_CHARS {
            eprintln!(
                "warning: --secret {name}: its value has {chars} characters; golive hides it wherever it appears, \
                 also inside other words, so short values garble the output (use at least {MIN_SECRET_CHARS})"
            );
        }
        vars.set_secret(name, &value);
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
