//! Automation proposed from a checklist's own words: for each item without a
//! `golive` block whose commands or text name something a probe checks (a
//! `curl` of an endpoint, "SSL certificate valid", "DNS records configured",
//! "5xx rates normal"), a block of that probe kind, with placeholders for
//! what only the team knows (`[DOMAIN]`, `[PROMETHEUS_URL]`).
//!
//! Every proposed block carries `suggested = "…"`: a check so marked is not
//! run ([`crate::plan::is_check`]) and lint names it, until a person has read
//! it and removed that line.

use golive_runbook::{Item, ItemKind, Runbook};

/// One proposed block.
#[derive(Debug, Clone)]
pub struct Suggestion {
    /// The item it automates.
    pub item: usize,
    /// The probe kind.
    pub kind: &'static str,
    /// Why: the words or command it was proposed from.
    pub why: String,
    /// The block's TOML lines, without fences or indentation.
    pub lines: Vec<String>,
}

/// A text to insert at a byte offset of the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Insertion {
    pub offset: usize,
    pub text: String,
}

/// The blocks proposed for the items of `rb` that have none. Items that
/// cannot hold a block (table rows, items in block quotes) get none.
pub fn suggest(rb: &Runbook) -> Vec<Suggestion> {
    // past a fence never closed, all is code: a block there would be too
    let open_fence = rb
        .fences
        .iter()
        .filter(|f| !f.closed)
        .map(|f| f.loc.start)
        .min()
        .unwrap_or(usize::MAX);
    rb.items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.annotations.is_empty() && it.kind != ItemKind::Row)
        .filter(|(_, it)| it.loc.end < open_fence)
        .filter(|(_, it)| !first_line(rb, it).trim_start().starts_with('>'))
        .filter(|(_, it)| starts_its_line(rb, it))
        .filter_map(|(i, it)| {
            propose(it).map(|(kind, why, lines)| Suggestion {
                item: i,
                kind,
                why,
                lines,
            })
        })
        .collect()
}

/// Whether only indentation and list markers come before the item on its
/// first line: where a block's indentation can be told.
fn starts_its_line(rb: &Runbook, it: &Item) -> bool {
    let line_start = rb.lines.line_start(rb.lines.line_of(it.loc.start));
    rb.source[line_start..it.loc.start.max(line_start)]
        .split_whitespace()
        .all(|w| {
            matches!(w, "-" | "*" | "+")
                || (w.ends_with(['.', ')']) && w[..w.len() - 1].bytes().all(|b| b.is_ascii_digit()))
        })
}

fn first_line<'a>(rb: &'a Runbook, it: &Item) -> &'a str {
    rb.lines
        .line_text(&rb.source, it.loc.line.saturating_sub(1) as usize)
}

type Proposal = (&'static str, String, Vec<String>);

/// The probe an item's commands or words name, and its block: first the
/// title's own specific words ("SSL", "rate limit", "alerts"), then its
/// commands, then everything its title and text say, then its sub-checks.
fn propose(it: &Item) -> Option<Proposal> {
    if let Some(p) = from_baseline_rule(&it.title) {
        return Some(p);
    }
    let mut own = it.title.clone();
    if let Some(t) = &it.text {
        own.push(' ');
        own.push_str(t);
    }
    if let Some(p) = from_words(&own, true) {
        return Some(p);
    }
    for block in &it.commands {
        for c in &block.commands {
            if let Some(p) = from_command(&c.text, c.expected.as_deref()) {
                return Some(p);
            }
        }
    }
    if let Some(p) = from_words(&own, false) {
        return Some(p);
    }
    let subs: Vec<&str> = it.subchecks.iter().map(|s| s.text.as_str()).collect();
    from_words(&subs.join(" "), false)
}

fn kv(key: &str, value: &str) -> String {
    format!("{key} = {}", toml_string(value))
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first `http://` or `https://` URL of a command, as written.
fn url_in(cmd: &str) -> Option<String> {
    let at = cmd.find("https://").or_else(|| cmd.find("http://"))?;
    let url: String = cmd[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '`' | '|' | ';' | ')'))
        .collect();
    (url.len() > "https://".len()).then_some(url)
}

/// A three-digit status an expected output or the URL names, else 200.
fn status_expected(url: &str, expected: Option<&str>) -> u16 {
    if let Some(e) = expected {
        for w in e.split(|c: char| !c.is_ascii_digit()) {
            if w.len() == 3
                && let Ok(n) = w.parse::<u16>()
                && (100..600).contains(&n)
            {
                return n;
            }
        }
    }
    let lower = url.to_lowercase();
    if lower.contains("nonexistent") || lower.contains("not-found") || lower.contains("404") {
        404
    } else {
        200
    }
}

fn http_block(url: &str, status: u16, why: String) -> Proposal {
    (
        "http",
        why,
        vec![
            kv("check", "http"),
            kv("target", url),
            kv("expect", &format!("status == {status}")),
        ],
    )
}

fn from_command(cmd: &str, expected: Option<&str>) -> Option<Proposal> {
    let first = cmd.split_whitespace().next().unwrap_or("");
    let has = |w: &str| cmd.split_whitespace().any(|t| t == w);
    let why = |what: &str| format!("the item's command runs {what}");
    if has("curl") || has("wget") || first == "http" {
        let url = url_in(cmd)?;
        if cmd.contains("/metrics") && !has("-I") {
            return Some(metrics_errors(&url, why("a scrape of /metrics")));
        }
        let status = status_expected(&url, expected);
        return Some(http_block(&url, status, why("curl")));
    }
    if has("openssl") && cmd.contains("s_client") {
        let host = cmd
            .split_whitespace()
            .skip_while(|t| *t != "-connect")
            .nth(1)
            .map(|h| h.trim_end_matches(":443").to_string())
            .unwrap_or_else(|| "[DOMAIN]".into());
        return Some(tls_cert(&host, why("openssl s_client")));
    }
    if has("dig") || has("nslookup") || has("host") {
        let name = cmd
            .split_whitespace()
            .skip(1)
            .find(|t| !t.starts_with(['-', '+', '@']) && t.contains(['.', '[']))
            .unwrap_or("[DOMAIN]");
        return Some(dns_block(name, why("a DNS lookup")));
    }
    if has("psql") || has("pg_isready") {
        return Some(postgres_block(why("psql")));
    }
    if has("redis-cli") {
        return Some(redis_block(why("redis-cli")));
    }
    if has("ab") || has("hey") || has("wrk") || has("k6") || has("oha") {
        let url = url_in(cmd).unwrap_or_else(|| "https://[DOMAIN]/".into());
        return Some(load_block(&url, why("a load generator")));
    }
    if has("kubectl") || has("helm") || has("git") || has("systemctl") {
        let line = cmd.lines().next().unwrap_or(cmd).trim();
        return Some((
            "command",
            why(first),
            vec![
                kv("check", "command"),
                kv("command", line),
                kv("expect", "exit_code == 0"),
            ],
        ));
    }
    None
}

fn tls_cert(host: &str, why: String) -> Proposal {
    (
        "tls",
        why,
        vec![
            kv("check", "tls"),
            kv("target", host),
            kv(
                "expect",
                "cert.days_left > 30 && cert.chain_valid && cert.hostname_match",
            ),
        ],
    )
}

fn dns_block(name: &str, why: String) -> Proposal {
    (
        "dns",
        why,
        vec![
            kv("check", "dns"),
            kv("target", name),
            kv("record", "A"),
            kv("expect", "rcode == 'NOERROR' && size(answers) > 0"),
        ],
    )
}

fn postgres_block(why: String) -> Proposal {
    (
        "postgres",
        why,
        vec![
            kv("check", "postgres"),
            kv("target", "[DATABASE_URL]"),
            kv("expect", "connected"),
        ],
    )
}

fn redis_block(why: String) -> Proposal {
    (
        "redis",
        why,
        vec![
            kv("check", "redis"),
            kv("target", "[REDIS_URL]"),
            kv("expect", "pong"),
        ],
    )
}

fn load_block(url: &str, why: String) -> Proposal {
    (
        "load",
        why,
        vec![
            kv("check", "load"),
            kv("target", url),
            "requests = 100".into(),
            "concurrency = 10".into(),
            kv("expect", "error_rate == 0.0 && latency_ms.p95 < 500.0"),
        ],
    )
}

fn metrics_errors(url: &str, why: String) -> Proposal {
    (
        "metrics",
        why,
        vec![
            kv("check", "metrics"),
            kv("target", url),
            kv("interval", "5s"),
            kv("total", "http_requests_total"),
            "errors = 'http_requests_total{code=~\"5..\"}'".into(),
            kv("expect", "error_rate < 0.01"),
        ],
    )
}

fn metrics_latency(why: String) -> Proposal {
    (
        "metrics",
        why,
        vec![
            kv("check", "metrics"),
            kv("target", "https://[DOMAIN]/metrics"),
            kv("interval", "5s"),
            kv("histogram", "http_request_duration_seconds"),
            kv("expect", "count == 0.0 || latency_ms.p95 < 500.0"),
        ],
    )
}

/// A criterion stated against the baseline (`Error rate >2x baseline`,
/// `Response time > 1.5x baseline for 5 minutes`) as a `metrics` check
/// comparing with what the same check observed before GO, held for the
/// criterion's window.
fn from_baseline_rule(title: &str) -> Option<Proposal> {
    let crate::rules::RuleKind::Baseline {
        what,
        factor,
        window_s,
    } = crate::rules::rule_of(title)
    else {
        return None;
    };
    let w = what.to_lowercase();
    let factor = if factor.fract() == 0.0 {
        format!("{factor:.1}")
    } else {
        factor.to_string()
    };
    let why = format!("\"{title}\": a factor of the baseline recorded before GO");
    let mut lines = vec![
        kv("check", "metrics"),
        kv("target", "https://[DOMAIN]/metrics"),
        kv("interval", "5s"),
    ];
    if w.contains("error") || w.contains("5xx") || w.contains("failure") {
        lines.push(kv("total", "http_requests_total"));
        lines.push("errors = 'http_requests_total{code=~\"5..\"}'".into());
        lines.push(kv(
            "expect",
            &format!("error_rate <= {factor} * baseline.error_rate"),
        ));
    } else if w.contains("latency") || w.contains("response") || w.contains("p95") {
        lines.push(kv("histogram", "http_request_duration_seconds"));
        lines.push(kv(
            "expect",
            &format!("latency_ms.p95 <= {factor} * baseline.latency_ms.p95"),
        ));
    } else {
        return None;
    }
    if window_s > 0 {
        lines.push(kv("for", &format!("{}m", window_s.div_ceil(60))));
    }
    lines.push(kv("on_fail", "rollback"));
    Some(("metrics", why, lines))
}

fn prometheus_block(why: String) -> Proposal {
    (
        "prometheus",
        why,
        vec![
            kv("check", "prometheus"),
            kv("target", "[PROMETHEUS_URL]"),
            kv("query", "up"),
            kv("expect", "count > 0 && value == 1.0"),
        ],
    )
}

/// The path an item's words name (`/health`, `/api/v1/status`), if any.
fn path_in(words: &str) -> Option<String> {
    words.split_whitespace().find_map(|w| {
        let w =
            w.trim_matches(|c: char| matches!(c, '`' | '"' | '\'' | ',' | '.' | ':' | '(' | ')'));
        (w.starts_with('/')
            && w.len() > 1
            && w[1..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        .then(|| w.to_string())
    })
}

/// The probe some words name. With `specific`, only words that name one
/// probe whatever else is said (a TLS certificate, a rate limit, alerts).
fn from_words(words: &str, specific: bool) -> Option<Proposal> {
    let t = words.to_lowercase();
    let has = |w: &str| t.contains(w);
    let any = |ws: &[&str]| ws.iter().any(|w| t.contains(w));
    let why = |w: &str| format!("the item says \"{w}\"");
    let first_of = |ws: &[&'static str]| -> &'static str {
        ws.iter().find(|w| t.contains(**w)).copied().unwrap_or("")
    };
    if !specific && let Some(path) = path_in(words) {
        let url = format!("https://[DOMAIN]{path}");
        let status = status_expected(&url, Some(words));
        return Some(http_block(&url, status, why(&path)));
    }
    const TLS: &[&str] = &["ssl", "tls", "certificate", "https enforced"];
    if any(TLS) {
        if any(&["enforced", "tls 1.", "protocol"]) {
            return Some((
                "tls",
                why(first_of(TLS)),
                vec![
                    kv("check", "tls"),
                    kv("target", "[DOMAIN]"),
                    kv("expect", "!tls10 && !tls11"),
                ],
            ));
        }
        return Some(tls_cert("[DOMAIN]", why(first_of(TLS))));
    }
    if has("dns") {
        return Some(dns_block("[DOMAIN]", why("DNS")));
    }
    if has("rate limit") {
        return Some((
            "ratelimit",
            why("rate limit"),
            vec![
                kv("check", "ratelimit"),
                kv("target", "https://[DOMAIN]/"),
                "burst = 100".into(),
            ],
        ));
    }
    const ERRORS: &[&str] = &[
        "5xx",
        "error rate",
        "error spike",
        "errors spike",
        "error budget",
    ];
    if any(ERRORS) {
        return Some(metrics_errors(
            "https://[DOMAIN]/metrics",
            why(first_of(ERRORS)),
        ));
    }
    const LOAD: &[&str] = &[
        "concurrent",
        "load test",
        "response time",
        "performance baseline",
        "throughput",
    ];
    if any(LOAD) {
        return Some(load_block("https://[DOMAIN]/", why(first_of(LOAD))));
    }
    const LATENCY: &[&str] = &["p95", "p99", "p50", "latency", "sla", "slo", "performance"];
    const PROM: &[&str] = &["prometheus", "dashboard", "metrics", "sli", "scrape"];
    const ALERTS: &[&str] = &["alert", "pagerduty", "paging", "on-call page"];
    if specific && !any(PROM) && !any(ALERTS) && !any(&["p95", "p99", "latency"]) {
        return None;
    }
    if any(PROM) && !any(&["p95", "p99", "latency"]) {
        return Some(prometheus_block(why(first_of(PROM))));
    }
    if any(LATENCY) {
        return Some(metrics_latency(why(first_of(LATENCY))));
    }
    if any(ALERTS) {
        return Some((
            "webhook",
            why(first_of(ALERTS)),
            vec![
                kv("check", "webhook"),
                kv("target", "[PAGERDUTY_EVENTS_URL]"),
                kv("format", "pagerduty"),
                kv("routing_key", "[PAGERDUTY_ROUTING_KEY]"),
                kv("expect", "accepted && delivery_ms < 5000"),
            ],
        ));
    }
    if any(&["redis", "cache", "caching"]) {
        return Some(redis_block(why(first_of(&["redis", "caching", "cache"]))));
    }
    const DB: &[&str] = &["database", "postgres", "db connection", "migration"];
    if any(DB) {
        return Some(postgres_block(why(first_of(DB))));
    }
    const HTTP: &[&str] = &[
        "health check",
        "endpoint",
        "responds",
        "returns 200",
        "200 ok",
        "404",
        "api ",
        "homepage",
        "home page",
        "unresponsive",
    ];
    if any(HTTP) {
        let status = if has("404") { 404 } else { 200 };
        return Some(http_block("https://[DOMAIN]/", status, why(first_of(HTTP))));
    }
    if has("lock") && any(&["dependenc", "package"]) {
        return Some(file_block(
            "[LOCKFILE]",
            "exists && size > 0",
            why("locked"),
        ));
    }
    if any(&["config", "env file", ".env"]) && any(&["valid", "present", "exists"]) {
        return Some(file_block(
            "[CONFIG_FILE]",
            "exists && is_file",
            why("config"),
        ));
    }
    if any(&["tag", "tagged"]) && any(&["git", "version", "release"]) {
        return Some((
            "command",
            why("tagged"),
            vec![
                kv("check", "command"),
                kv("command", "git tag -l v[VERSION]"),
                kv(
                    "expect",
                    "exit_code == 0 && stdout.trim() == 'v' + vars.VERSION",
                ),
            ],
        ));
    }
    None
}

fn file_block(path: &str, expect: &str, why: String) -> Proposal {
    (
        "file",
        why,
        vec![kv("check", "file"), kv("path", path), kv("expect", expect)],
    )
}

/// Where each suggestion goes: a fenced `golive` block after the item's
/// last line, indented to the item's content (a step's block goes at the
/// top level, where the step's own content is), after a blank line, in the
/// document's own line ending. Nothing else changes.
pub fn insertions(rb: &Runbook, suggestions: &[Suggestion]) -> Vec<Insertion> {
    let src = &rb.source;
    let nl = if src.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out: Vec<Insertion> = suggestions
        .iter()
        .map(|s| {
            let it = &rb.items[s.item];
            // from where the item's list marker is: `- - [ ] x` is an item
            // in an item, whose content starts after both markers
            let line_start = rb.lines.line_start(rb.lines.line_of(it.loc.start));
            let first = first_line(rb, it);
            let from_marker = &first[(it.loc.start - line_start).min(first.len())..];
            let indent = if is_list_line(from_marker) {
                let before: usize = first[..first.len() - from_marker.len()]
                    .chars()
                    .map(|c| if c == '\t' { 4 } else { 1 })
                    .sum();
                format!("{}{}", " ".repeat(before), content_indent(from_marker))
            } else {
                // a `**Step …**` paragraph: its content is at the top level
                String::new()
            };
            // after the item's last line with text, not after blank lines
            let mut last = rb
                .lines
                .line_of(it.loc.end.saturating_sub(1).max(it.loc.start));
            let first_no = rb.lines.line_of(it.loc.start);
            while last > first_no && rb.lines.line_text(src, last).trim().is_empty() {
                last -= 1;
            }
            let ls = rb.lines.line_start(last);
            let next = src[ls..].find('\n').map_or(src.len(), |i| ls + i + 1);
            let mut text = String::new();
            let at_end_without_newline = next == src.len() && !src.ends_with('\n');
            if at_end_without_newline {
                text.push_str(nl);
            }
            text.push_str(nl);
            text.push_str(&format!("{indent}```golive{nl}"));
            text.push_str(&format!("{indent}{}{nl}", kv("suggested", &s.why)));
            for l in &s.lines {
                text.push_str(&format!("{indent}{l}{nl}"));
            }
            text.push_str(&format!("{indent}```"));
            if !at_end_without_newline {
                text.push_str(nl);
            }
            Insertion { offset: next, text }
        })
        .collect();
    out.sort_by_key(|i| i.offset);
    out
}

/// Whether a line opens a list item: `- `, `* `, `+ `, `1. `, `2) `.
fn is_list_line(line: &str) -> bool {
    let t = line.trim_start_matches([' ', '\t']);
    if t.starts_with("- ") || t.starts_with("* ") || t.starts_with("+ ") {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && (t[digits..].starts_with(". ") || t[digits..].starts_with(") "))
}

/// The column an item's content starts at: after its indentation, list
/// marker and the space after it.
fn content_indent(line: &str) -> String {
    let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
    let rest = &line[lead..];
    let marker = if rest.starts_with(['-', '*', '+']) {
        1
    } else {
        rest.bytes().take_while(u8::is_ascii_digit).count()
            + usize::from(
                rest[rest.bytes().take_while(u8::is_ascii_digit).count()..].starts_with(['.', ')']),
            )
    };
    let after = &rest[marker..];
    let spaces = after.len() - after.trim_start_matches(' ').len();
    " ".repeat(
        line[..lead]
            .chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum::<usize>()
            + marker
            + spaces.clamp(1, 4),
    )
}

/// The source with the insertions made.
pub fn apply(src: &str, insertions: &[Insertion]) -> String {
    let mut out =
        String::with_capacity(src.len() + insertions.iter().map(|i| i.text.len()).sum::<usize>());
    let mut at = 0;
    for ins in insertions {
        out.push_str(&src[at..ins.offset]);
        out.push_str(&ins.text);
        at = ins.offset;
    }
    out.push_str(&src[at..]);
    out
}

/// A unified diff (three lines of context) of the insertions, as `diff -u`
/// prints it and `git apply` or `patch -p1` reads it.
pub fn unified_diff(path: &str, src: &str, insertions: &[Insertion]) -> String {
    let new = apply(src, insertions);
    similar::TextDiff::from_lines(src, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}
