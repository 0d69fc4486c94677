//! Where the communication plan's messages go: Slack incoming webhooks
//! (Block Kit), Microsoft Teams workflow webhooks (an Adaptive Card), a
//! generic JSON webhook, and email over SMTP (STARTTLS and authentication).
//!
//! A channel is written `KIND=TARGET`: `slack=URL`, `teams=URL`,
//! `webhook=URL`, `email=smtp://[USER@]HOST:PORT[?from=ADDR&ca=PEM]`
//! (`smtps://` for TLS from the first byte). A target may be `env:NAME`, read
//! from the environment. URLs carry tokens and the SMTP password is a
//! secret (`GOLIVE_SMTP_PASSWORD`, or the URL's own): only a channel's kind
//! and host are ever shown or recorded.

use serde_json::{Value, json};
use std::time::Duration;

/// The environment variable holding the SMTP password.
pub const SMTP_PASSWORD_ENV: &str = "GOLIVE_SMTP_PASSWORD";

/// One configured destination.
#[derive(Clone)]
pub struct Channel {
    /// `slack`, `teams`, `webhook`, `email`; a second of one kind is
    /// `slack-2`: the name deliveries are recorded under.
    pub name: String,
    pub kind: Kind,
}

/// A channel's kind and its secret parts.
#[derive(Clone)]
pub enum Kind {
    Slack { url: String },
    Teams { url: String },
    Webhook { url: String },
    Email(Smtp),
}

/// An SMTP relay.
#[derive(Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    /// TLS from the first byte (`smtps://`); else STARTTLS, required.
    pub implicit_tls: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub from: String,
    /// A private CA (PEM file) to trust besides the public ones.
    pub ca: Option<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the URL or the password
        f.write_str(&self.shown())
    }
}

/// A message as it leaves: what every channel renders its own way.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub deployment: &'a str,
    pub key: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// Email addresses (only email uses them).
    pub to: &'a [String],
    /// The same for every attempt of this message on this channel: a
    /// receiver that sees it twice may drop the second.
    pub idempotency_key: String,
    /// `(file name, HTML)` to attach (email only).
    pub attachment: Option<(String, String)>,
}

impl Channel {
    /// `KIND=TARGET`, with `env:NAME` targets and the SMTP password read
    /// through `env`.
    pub fn parse(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Channel, String> {
        let (kind, target) = spec.split_once('=').ok_or_else(|| {
            format!(
                "--notify `{spec}`: write KIND=TARGET: slack=URL, teams=URL, webhook=URL or email=smtp://HOST:PORT"
            )
        })?;
        let kind = kind.trim();
        let target = match target.trim().strip_prefix("env:") {
            Some(var) => env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("--notify {kind}=env:{var}: the environment has no {var}")
            })?,
            None => target.trim().to_string(),
        };
        let web = |url: String| -> Result<String, String> {
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(url)
            } else {
                Err(format!(
                    "--notify {kind}=…: the URL must start with https:// or http://"
                ))
            }
        };
        let kind = match kind {
            "slack" => Kind::Slack { url: web(target)? },
            "teams" => Kind::Teams { url: web(target)? },
            "webhook" => Kind::Webhook { url: web(target)? },
            "email" => Kind::Email(Smtp::parse(&target, env)?),
            other => {
                return Err(format!(
                    "--notify `{other}=…`: the kinds are slack, teams, webhook and email"
                ));
            }
        };
        let name = match &kind {
            Kind::Slack { .. } => "slack",
            Kind::Teams { .. } => "teams",
            Kind::Webhook { .. } => "webhook",
            Kind::Email(_) => "email",
        };
        Ok(Channel {
            name: name.to_string(),
            kind,
        })
    }

    /// Parse every spec; a second channel of one kind is named `KIND-2` ….
    pub fn parse_all(
        specs: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Channel>, String> {
        let mut out: Vec<Channel> = Vec::new();
        for s in specs {
            let mut c = Channel::parse(s, env)?;
            let same = out
                .iter()
                .filter(|o| o.kind_name() == c.kind_name())
                .count();
            if same > 0 {
                c.name = format!("{}-{}", c.kind_name(), same + 1);
            }
            out.push(c);
        }
        Ok(out)
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Slack { .. } => "slack",
            Kind::Teams { .. } => "teams",
            Kind::Webhook { .. } => "webhook",
            Kind::Email(_) => "email",
        }
    }

    /// Whether the channel sends to addresses (and so needs them).
    pub fn needs_addresses(&self) -> bool {
        matches!(self.kind, Kind::Email(_))
    }

    /// The channel, fit to show and record: its kind and host only.
    pub fn shown(&self) -> String {
        match &self.kind {
            Kind::Slack { url } => golive_probe::webhook_shown("slack", url),
            Kind::Teams { url } => golive_probe::webhook_shown("teams", url),
            Kind::Webhook { url } => format!("webhook at {}", golive_probe::webhook_host(url)),
            Kind::Email(s) => format!("email via {}:{}", s.host, s.port),
        }
    }

    /// The body a webhook channel posts (email has none).
    pub fn payload(&self, m: &Outgoing<'_>) -> Option<Value> {
        match &self.kind {
            Kind::Slack { .. } => Some(slack(m)),
            Kind::Teams { .. } => Some(teams(m)),
            Kind::Webhook { .. } => Some(generic(m)),
            Kind::Email(_) => None,
        }
    }

    /// Deliver `m`: the receiver's answer, or why it failed (never with a
    /// URL or a password in it).
    pub async fn send(&self, m: &Outgoing<'_>) -> Result<String, String> {
        match &self.kind {
            Kind::Slack { url } | Kind::Teams { url } | Kind::Webhook { url } => {
                let body = self.payload(m).unwrap_or_default().to_string();
                let key = [("idempotency-key", m.idempotency_key.clone())];
                let (status, _) = post(url, &self.shown(), body, &key).await?;
                Ok(status.to_string())
            }
            Kind::Email(s) => s.send(m).await.map_err(|e| {
                let mut e = e;
                if let Some(p) = &s.password {
                    e = e.replace(p.as_str(), "[redacted]");
                }
                format!("{}: {e}", self.shown())
            }),
        }
    }
}

/// POST `body` to a webhook, at most 10 s: its status and how long the
/// answer took, or why it failed, naming the receiver as `shown` (never
/// its URL). What the watch's alerts and the plan's messages both send by.
pub async fn post(
    url: &str,
    shown: &str,
    body: String,
    headers: &[(&str, String)],
) -> Result<(u16, Duration), String> {
    let post = golive_probe::post_json_with(url, body, headers, None);
    let (status, took) = tokio::time::timeout(Duration::from_secs(10), post)
        .await
        .map_err(|_| format!("{shown}: no answer within 10s"))?
        .map_err(|e| {
            let host = golive_probe::webhook_host(url);
            format!("{shown}: {}", e.to_string().replace(url, host))
        })?;
    if !(200..300).contains(&status) {
        return Err(format!("{shown} answered {status}"));
    }
    Ok((status, took))
}

impl Smtp {
    fn parse(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Smtp, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            "--notify email=…: write smtp://[USER@]HOST:PORT (smtps:// for TLS from the start)"
                .to_string()
        })?;
        let implicit_tls = match scheme {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "--notify email={other}://…: the schemes are smtp (STARTTLS) and smtps"
                ));
            }
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, url_password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(decode(u)), Some(decode(p))),
                None => (Some(decode(u)), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("--notify email=…: `{p}` is not a port"))?,
            ),
            None => (hostport.to_string(), if implicit_tls { 465 } else { 587 }),
        };
        if host.is_empty() {
            return Err("--notify email=…: the URL names no host".into());
        }
        let mut from = None;
        let mut ca = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("from", v)) => from = Some(decode(v)),
                Some(("ca", v)) => ca = Some(decode(v)),
                _ => {
                    return Err(format!(
                        "--notify email=…?{pair}: the options are from=ADDRESS and ca=PEM"
                    ));
                }
            }
        }
        let password = url_password.or_else(|| env(SMTP_PASSWORD_ENV).filter(|p| !p.is_empty()));
        if user.is_some() && password.is_none() {
            return Err(format!(
                "--notify email=smtp://USER@…: set {SMTP_PASSWORD_ENV} to the password"
            ));
        }
        Ok(Smtp {
            from: from.unwrap_or_else(|| format!("golive@{host}")),
            host,
            port,
            implicit_tls,
            user,
            password,
            ca,
        })
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<String, String> {
        use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
        if m.to.is_empty() {
            return Err("no recipient has an address".into());
        }
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| format!("from address `{}`: {e}", self.from))?;
        let mut b = lettre::Message::builder()
            .from(from)
            .subject(m.subject)
            // the same id for every attempt: a receiving system drops a copy
            .message_id(Some(format!(
                "<{}@golive>",
                m.idempotency_key.replace('/', ".")
            )));
        for to in m.to {
            b = b.to(to.parse().map_err(|e| format!("address `{to}`: {e}"))?);
        }
        let text = SinglePart::plain(m.body.to_string());
        let msg = match &m.attachment {
            Some((name, html)) => b.multipart(MultiPart::mixed().singlepart(text).singlepart(
                Attachment::new(name.clone()).body(
                    html.clone(),
                    ContentType::parse("text/html; charset=utf-8").map_err(|e| e.to_string())?,
                ),
            )),
            None => b.singlepart(text),
        }
        .map_err(|e| e.to_string())?;
        let mut tls = TlsParameters::builder(self.host.clone());
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("cannot read the CA {ca}: {e}"))?;
            tls = tls.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| format!("the CA {ca}: {e}"))?,
            );
        }
        let tls = tls.build().map_err(|e| e.to_string())?;
        let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .timeout(Some(Duration::from_secs(10)))
            .tls(if self.implicit_tls {
                Tls::Wrapper(tls)
            } else {
                Tls::Required(tls)
            });
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            t = t.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let r = t.build().send(msg).await.map_err(|e| e.to_string())?;
        Ok(format!("{}", r.code()))
    }
}

/// `%40` and the like decoded (user names and addresses in URLs).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Slack's incoming webhooks: a fallback `text` and Block Kit `blocks` (a
/// header of at most 150 characters, the body as a section of at most 3000).
fn slack(m: &Outgoing<'_>) -> Value {
    json!({
        "text": m.subject,
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": cut(m.subject, 150), "emoji": false } },
            { "type": "section", "text": { "type": "mrkdwn", "text": cut(&format!("```\n{}\n```", m.body.trim_end()), 3000) } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": format!("golive · deployment `{}` · {}", m.deployment, m.key) } ] }
        ]
    })
}

/// Teams workflow webhooks ("When a Teams webhook request is received"): a
/// message with one Adaptive Card attachment.
fn teams(m: &Outgoing<'_>) -> Value {
    json!({
        "type": "message",
        "attachments": [ {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    { "type": "TextBlock", "text": m.subject, "weight": "Bolder", "size": "Medium", "wrap": true },
                    { "type": "TextBlock", "text": m.body.trim_end(), "wrap": true, "fontType": "Monospace" },
                    { "type": "TextBlock", "text": format!("golive · deployment {} · {}", m.deployment, m.key), "isSubtle": true, "size": "Small", "wrap": true }
                ]
            }
        } ]
    })
}

/// The generic webhook: the message as data.
fn generic(m: &Outgoing<'_>) -> Value {
    json!({
        "source": "golive",
        "deployment": m.deployment,
        "key": m.key,
        "kind": m.kind,
        "subject": m.subject,
        "body": m.body,
        "idempotency_key": m.idempotency_key,
    })
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn specs_parse_and_never_show_their_secrets() {
        let env =
            |k: &str| (k == "HOOK").then(|| "https://hooks.example.test/T0/B0/s3cret".to_string());
        let c = Channel::parse("slack=env:HOOK", &env).expect("slack");
        assert_eq!(c.shown(), "slack webhook at hooks.example.test");
        assert!(!format!("{c:?}").contains("s3cret"));
        let pw = |k: &str| (k == SMTP_PASSWORD_ENV).then(|| "pa55".to_string());
        let e = Channel::parse(
            "email=smtp://ops%40example.test@mail.example.test:2525?from=golive@example.test",
            &pw,
        )
        .expect("email");
        let Kind::Email(s) = &e.kind else {
            panic!("email")
        };
        assert_eq!((s.host.as_str(), s.port), ("mail.example.test", 2525));
        assert_eq!(s.user.as_deref(), Some("ops@example.test"));
        assert_eq!(s.from, "golive@example.test");
        assert_eq!(e.shown(), "email via mail.example.test:2525");
        let all = Channel::parse_all(
            &[
                "webhook=https://a.test/x".into(),
                "webhook=https://b.test/y".into(),
            ],
            &no_env,
        )
        .expect("two");
        assert_eq!(all[1].name, "webhook-2");
    }

    #[test]
    fn bad_specs_say_what_to_write() {
        for (spec, says) in [
            ("https://x", "KIND=TARGET"),
            ("pager=https://x", "slack, teams, webhook and email"),
            ("slack=ftp://x", "https://"),
            ("slack=env:NOPE", "no NOPE"),
            ("email=smtp://u@h:25", SMTP_PASSWORD_ENV),
            ("email=smtp://h:port", "not a port"),
            ("email=imap://h", "smtp (STARTTLS) and smtps"),
        ] {
            let e = Channel::parse(spec, &no_env).expect_err(spec);
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn payloads_have_the_receivers_shapes() {
        let m = Outgoing {
            deployment: "d-1",
            key: "success",
            kind: "success",
            subject: "Production Deployment Complete: v1.1.0",
            body: "Deployment status: SUCCESS\n",
            to: &[],
            idempotency_key: "d-1/success/slack".into(),
            attachment: None,
        };
        let s = slack(&m);
        assert_eq!(s["blocks"][0]["type"], "header");
        assert_eq!(s["blocks"][0]["text"]["type"], "plain_text");
        assert_eq!(s["blocks"][1]["text"]["type"], "mrkdwn");
        let t = teams(&m);
        assert_eq!(
            t["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(t["attachments"][0]["content"]["type"], "AdaptiveCard");
        assert_eq!(generic(&m)["idempotency_key"], "d-1/success/slack");
        assert_eq!(cut(&"x".repeat(200), 150).chars().count(), 150);
    }
}
