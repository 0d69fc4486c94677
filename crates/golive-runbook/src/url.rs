//! Connection URLs as golive shows and reads them: [`redact_password`] is the
//! one way a URL is printed (store locations, probe targets), and
//! [`take_query_param`] reads an option golive handles itself out of a URL
//! before a driver sees it. Pure text: nothing is resolved or connected.
//!
//! ```
//! use golive_runbook::url::redact_password;
//! assert_eq!(
//!     redact_password("postgres://app:s3cr@t@db:5432/shop?sslmode=require"),
//!     "postgres://app:***@db:5432/shop?sslmode=require"
//! );
//! assert_eq!(
//!     redact_password("postgres://app@db/shop?Password=x"),
//!     "postgres://app@db/shop?Password=***"
//! );
//! ```

/// What a hidden password is shown as.
const HIDDEN: &str = "***";

/// Query keys whose value is a password (compared decoded, in any case).
const SECRET_KEYS: &[&str] = &["password", "sslpassword"];

/// `url` fit to print: any password replaced by `***`, however it was
/// written.
///
/// - In the userinfo (`scheme://user:password@host`): the user is kept, the
///   password hidden. The userinfo ends at the LAST `@`, so a password
///   holding an unencoded `@`, `:`, `/`, `?` or `#` is hidden whole (as URL
///   parsers read it; the rare `@` in a query then hides more, never less).
/// - In the query (`?password=…`, `&PassWord=…`, `pass%77ord=…`): the value
///   up to the next `&`, and the pieces after it with no `=` (a password
///   holding an unencoded `&`).
/// - A `key=value` connection string (`host=db password=…`): the value up
///   to the next space.
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return match url.find('?') {
            Some(q) => format!("{}?{}", &url[..q], redact_query(&url[q + 1..])),
            None => redact_words(url),
        };
    };
    let (head, rest) = url.split_at(scheme_end);
    match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{head}{user}:{HIDDEN}{}", redact_tail(&rest[at..]))
        }
        _ => format!("{head}{}", redact_tail(rest)),
    }
}

/// The part after the userinfo: its query's passwords hidden.
fn redact_tail(tail: &str) -> String {
    match tail.find('?') {
        Some(q) => format!("{}?{}", &tail[..q], redact_query(&tail[q + 1..])),
        None => tail.to_string(),
    }
}

fn is_secret_key(raw: &str) -> bool {
    let key = percent_decode(raw.trim()).to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str())
}

fn redact_query(query: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut hiding = false;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => {
                out.push(format!("{key}={HIDDEN}"));
                hiding = true;
            }
            // a piece with no `=` right after a password is the rest of it
            None if hiding => {}
            _ => {
                out.push(pair.to_string());
                hiding = false;
            }
        }
    }
    out.join("&")
}

/// `host=db password=x` → `host=db password=***`.
fn redact_words(text: &str) -> String {
    text.split(' ')
        .map(|w| match w.split_once('=') {
            Some((key, _)) if is_secret_key(key) => format!("{key}={HIDDEN}"),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `%XX` sequences decoded and `+` read as a space, as a URL's query is;
/// an invalid sequence is kept as written.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match text.get(i + 1..i + 3) {
                Some(hex) if hex.bytes().all(|c| c.is_ascii_hexdigit()) => {
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'%'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` without its query parameter `key` (compared decoded, exactly, as
/// drivers compare them), and that parameter's last value, decoded.
/// `postgres://h/db?connect_timeout=3&sslmode=require` with
/// `connect_timeout` → (`postgres://h/db?sslmode=require`, `Some("3")`).
pub fn take_query_param(url: &str, key: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(k) == key {
                value = Some(percent_decode(v));
                false
            } else {
                true
            }
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect: a password given as `?password=` was printed in clear, and
    /// with an unencoded `@` in it the part after the first `@` was.
    #[test]
    fn redact_password_hides_the_password_in_every_form() {
        for (url, shown) in [
            (
                "postgres://app:hunter2@db.internal:5432/shop",
                "postgres://app:***@db.internal:5432/shop",
            ),
            (
                "postgres://postgres:s3cr@t@127.0.0.1:1/test",
                "postgres://postgres:***@127.0.0.1:1/test",
            ),
            (
                "postgres://u:pa:ss@w@rd@h/db?sslmode=require",
                "postgres://u:***@h/db?sslmode=require",
            ),
            (
                "postgresql://u:p/w?x#y@h:5432/db",
                "postgresql://u:***@h:5432/db",
            ),
            ("postgres://u:s%40cr%3At@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=Qu3ry",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgres://u@h/db?sslmode=disable&PassWord=Am9&application_name=x",
                "postgres://u@h/db?sslmode=disable&PassWord=***&application_name=x",
            ),
            (
                "postgres://u@h/db?pass%77ord=enc&PASSWORD=caps",
                "postgres://u@h/db?pass%77ord=***&PASSWORD=***",
            ),
            (
                "postgres://u@h/db?password=a&b#c&sslmode=require",
                "postgres://u@h/db?password=***&sslmode=require",
            ),
            (
                "postgres://u:p@h/db?password=q",
                "postgres://u:***@h/db?password=***",
            ),
            (
                "postgres://h/db?sslpassword=k",
                "postgres://h/db?sslpassword=***",
            ),
            (
                "redis://:r3dis@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "host=db password=kv user=app",
                "host=db password=*** user=app",
            ),
            // nothing to hide: as given
            ("postgres://app@db/shop", "postgres://app@db/shop"),
            ("sqlite://.golive/golive.db", "sqlite://.golive/golive.db"),
            ("/var/lib/golive/a:b@c.db", "/var/lib/golive/a:b@c.db"),
            ("127.0.0.1:6379", "127.0.0.1:6379"),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }

    #[test]
    fn a_query_parameter_is_taken_out_decoded() {
        assert_eq!(
            take_query_param(
                "postgres://h/db?connect_timeout=3&sslmode=require",
                "connect_timeout"
            ),
            ("postgres://h/db?sslmode=require".into(), Some("3".into()))
        );
        assert_eq!(
            take_query_param("postgres://h/db?connect%5Ftimeout=4", "connect_timeout"),
            ("postgres://h/db".into(), Some("4".into()))
        );
        assert_eq!(
            take_query_param("postgres://h/db", "connect_timeout"),
            ("postgres://h/db".into(), None)
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%e2%82%ac+%zz"), "€ %zz");
    }
}
