//! The redaction that keeps secret values out of every output, record and
//! report.

use golive_probe::Vars;

/// A secret shorter than this is accepted with a warning.
pub const MIN_SECRET_CHARS: usize = 8;

/// Replaces every secret value with `[redacted]` in text that leaves golive:
/// the value as it is and in each form golive or a command may have written
/// it in: escaped for JSON, percent-encoded for a URL, escaped for HTML or
/// XML, quoted for a shell (between single quotes, or backslashed between
/// double quotes), and each line of a value of several lines.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first (a secret that contains
    /// another is replaced whole).
    forms: Vec<String>,
}

impl Redactor {
    pub fn new(vars: &Vars) -> Self {
        let mut forms: Vec<String> = Vec::new();
        for s in vars.secret_values() {
            let lines = s
                .lines()
                .filter(|l| l.chars().count() >= MIN_SECRET_CHARS && *l != s)
                .map(str::to_string);
            for form in encodings(s).into_iter().chain(lines) {
                if !form.is_empty() && !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        Redactor { forms }
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.forms {
            if out.contains(f.as_str()) {
                out = out.replace(f.as_str(), "[redacted]");
            }
        }
        out
    }

    /// Every string of a JSON value, and every key, cleaned one by one: the
    /// value stays valid JSON whatever the secret holds.
    pub fn clean_json(&self, v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        if self.forms.is_empty() {
            return v;
        }
        match v {
            Value::String(s) => Value::String(self.clean(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|i| self.clean_json(i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.clean(&k), self.clean_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// Every form a value may take in golive's outputs or a command's.
pub fn encodings(s: &str) -> Vec<String> {
    // as it stands between the quotes of a JSON string
    let quoted = serde_json::to_string(s).unwrap_or_default();
    let json = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string();
    let html = html_escaped(s);
    vec![
        s.to_string(),
        json,
        percent_encoded(s),
        html.clone(),
        html.replace("&#39;", "&apos;"),
        html.replace("&#39;", "&#x27;"),
        s.replace('\'', "'\\''"),
        shell_backslashed(s),
    ]
}

/// `s` as written between double quotes of a shell script.
fn shell_backslashed(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` with every byte but RFC 3986's unreserved characters as `%XX`.
fn percent_encoded(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(secret: &str) -> Redactor {
        let mut vars = Vars::new();
        vars.set_secret("TOKEN", secret);
        Redactor::new(&vars)
    }

    #[test]
    fn a_secret_is_caught_raw_and_in_each_encoding() {
        let r = redactor(r#"p@ss"w&rd\1"#);
        assert_eq!(r.clean(r#"token p@ss"w&rd\1 end"#), "token [redacted] end");
        // as serde_json writes it inside a string
        assert_eq!(r.clean(r#"{"t":"p@ss\"w&rd\\1"}"#), r#"{"t":"[redacted]"}"#);
        // in a URL's userinfo, percent-encoded
        assert_eq!(
            r.clean("postgres://u:p%40ss%22w%26rd%5C1@db/x"),
            "postgres://u:[redacted]@db/x"
        );
        // in an HTML report
        assert_eq!(
            r.clean("<td>p@ss&quot;w&amp;rd\\1</td>"),
            "<td>[redacted]</td>"
        );
    }

    #[test]
    fn json_stays_json_whatever_the_secret_holds() {
        let r = redactor(r#"","x":""#);
        let v = json!({ "body": r#"a","x":"b"#, r#"k","x":""#: [1, r#"","x":""#] });
        let cleaned = r.clean_json(v);
        assert_eq!(
            cleaned,
            json!({ "body": "a[redacted]b", "k[redacted]": [1, "[redacted]"] })
        );
        assert!(!cleaned.to_string().contains(r#"\",\"x\":\""#));
    }

    #[test]
    fn without_secrets_nothing_changes() {
        let r = Redactor::new(&Vars::new());
        assert_eq!(r.clean("a b"), "a b");
        assert_eq!(r.clean_json(json!({"a": "b"})), json!({"a": "b"}));
    }
}
