//! `redis`: connect to Redis, `PING`, read `CONFIG GET maxmemory-policy` and
//! `INFO server`, and time the ping.
//!
//! Observes `pong` (the answer was PONG), `ping_ms`, `connect_ms`,
//! `maxmemory_policy` (null when CONFIG is disabled), `version`, `role`,
//! and `reply` (the answer to `command`, when set). The target is
//! `redis://[:password@]host[:port][/db]` or `host:port`; the password is
//! never shown. It speaks RESP2 over one TCP connection.

use crate::net::{connect, host_port, resolve};
use crate::postgres::without_password;
use crate::{BoxFuture, Kind, Observation, Probe, ProbeError, Spec, SpecError, millis};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub(crate) static KIND: Kind = Kind {
    name: "redis",
    summary: "connect to Redis: PING, maxmemory-policy, version, latency",
    options: &["command"],
    default_expect: "pong",
    default_timeout: crate::DEFAULT_TIMEOUT,
    observes: &[
        ("pong", &[]),
        ("ping_ms", &[]),
        ("connect_ms", &[]),
        ("maxmemory_policy", &[]),
        ("version", &[]),
        ("mode", &[]),
        ("role", &[]),
        ("reply", &[]),
    ],
    causes: &[],
    build,
};

#[derive(Debug)]
struct Redis {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    db: Option<u32>,
    command: Option<Vec<String>>,
    shown: String,
}

fn invalid(msg: String) -> SpecError {
    SpecError::Invalid("target".into(), msg)
}

fn build(spec: &Spec) -> Result<Box<dyn Probe>, SpecError> {
    let target = spec.required("target")?;
    let rest = target.strip_prefix("redis://").unwrap_or(target.as_str());
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (addr, db) = match rest.split_once('/') {
        Some((a, "")) => (a, None),
        Some((a, d)) => (
            a,
            Some(
                d.parse::<u32>()
                    .map_err(|_| invalid(format!("`{d}` is not a database number")))?,
            ),
        ),
        None => (rest, None),
    };
    let (host, port) = host_port(addr, 6379).map_err(invalid)?;
    let (user, password) = match auth.map(|a| a.split_once(':')) {
        Some(Some((u, p))) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
        Some(None) => (None, auth.map(str::to_string)),
        None => (None, None),
    };
    let command = spec
        .text("command")?
        .map(|c| {
            shlex::split(&c).ok_or_else(|| invalid(format!("`{c}` does not split into words")))
        })
        .transpose()?;
    Ok(Box::new(Redis {
        host,
        port,
        user,
        password,
        db,
        command,
        shown: match auth {
            // a userinfo with no `:` is the password here, not a user name
            Some(a) if !a.contains(':') => {
                format!(
                    "{}***@{rest}",
                    &target[..target.len() - rest.len() - a.len() - 1]
                )
            }
            _ => without_password(&target),
        },
    }))
}

/// One RESP reply.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn json(&self) -> Value {
        match self {
            Reply::Status(s) => json!(s),
            Reply::Error(e) => json!({ "error": e }),
            Reply::Int(i) => json!(i),
            Reply::Bulk(b) => json!(b),
            Reply::Array(a) => a
                .as_ref()
                .map_or(Value::Null, |a| a.iter().map(Reply::json).collect()),
        }
    }
}

/// Replies larger than this are refused (a probe reads facts, not data).
const MAX_REPLY: usize = 1 << 20;

struct Conn<S> {
    io: BufReader<S>,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Conn<S> {
    async fn call(&mut self, args: &[&str]) -> Result<Reply, ProbeError> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.io.get_mut().write_all(&out).await.map_err(io)?;
        Box::pin(self.read(0)).await
    }

    async fn line(&mut self) -> Result<String, ProbeError> {
        let mut line = String::new();
        let n = (&mut self.io)
            .take(MAX_REPLY as u64)
            .read_line(&mut line)
            .await
            .map_err(io)?;
        if n == 0 {
            return Err(ProbeError::Protocol("redis closed the connection".into()));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn read(&mut self, depth: usize) -> Result<Reply, ProbeError> {
        if depth > 8 {
            return Err(ProbeError::Protocol("redis reply nested too deep".into()));
        }
        let line = self.line().await?;
        let bad = || ProbeError::Protocol(format!("not a redis reply: {line:.40}"));
        let (tag, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        Ok(match tag {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Bulk(None)
                } else if n as usize > MAX_REPLY {
                    return Err(ProbeError::Protocol("redis reply too large".into()));
                } else {
                    let mut buf = vec![0; n as usize + 2];
                    self.io.read_exact(&mut buf).await.map_err(io)?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
                }
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::new();
                    for _ in 0..n.min(10_000) {
                        items.push(Box::pin(self.read(depth + 1)).await?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(bad()),
        })
    }
}

fn io(e: std::io::Error) -> ProbeError {
    ProbeError::Io(crate::net::io_reason(&e))
}

/// The answer, or the server's error as a probe error.
fn ok(r: Reply, what: &str) -> Result<Reply, ProbeError> {
    match r {
        Reply::Error(e) => Err(ProbeError::Protocol(format!("redis {what}: {e}"))),
        r => Ok(r),
    }
}

/// `key:value` lines of `INFO`.
fn info_field(info: &str, key: &str) -> Value {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map_or(Value::Null, |v| json!(v.trim()))
}

impl Probe for Redis {
    fn target(&self) -> String {
        self.shown.clone()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProbeError>> {
        Box::pin(async move {
            let (addrs, _) = resolve(&self.host, self.port, None).await?;
            let (tcp, _, connect_t) = connect(&addrs).await?;
            let mut c = Conn {
                io: BufReader::new(tcp),
            };
            if let Some(p) = &self.password {
                let mut args = vec!["AUTH"];
                if let Some(u) = &self.user {
                    args.push(u);
                }
                args.push(p);
                ok(c.call(&args).await?, "AUTH")?;
            }
            if let Some(db) = self.db {
                ok(c.call(&["SELECT", &db.to_string()]).await?, "SELECT")?;
            }
            let t = Instant::now();
            let pong = ok(c.call(&["PING"]).await?, "PING")?;
            let ping = t.elapsed();
            // CONFIG may be renamed or disabled on managed servers: null then
            let policy = match c.call(&["CONFIG", "GET", "maxmemory-policy"]).await? {
                Reply::Array(Some(a)) => a.get(1).map_or(Value::Null, Reply::json),
                _ => Value::Null,
            };
            let info = match ok(c.call(&["INFO", "server"]).await?, "INFO")? {
                Reply::Bulk(Some(s)) => s,
                _ => String::new(),
            };
            let role = match c.call(&["ROLE"]).await? {
                Reply::Array(Some(a)) => a.first().map_or(Value::Null, Reply::json),
                _ => Value::Null,
            };
            let reply = match &self.command {
                Some(words) => {
                    let args: Vec<&str> = words.iter().map(String::as_str).collect();
                    c.call(&args).await?.json()
                }
                None => Value::Null,
            };
            let _ = tokio::time::timeout(Duration::from_millis(200), c.call(&["QUIT"])).await;
            Ok(json!({
                "pong": pong == Reply::Status("PONG".into()),
                "ping_ms": millis(ping),
                "connect_ms": millis(connect_t),
                "maxmemory_policy": policy,
                "version": info_field(&info, "redis_version"),
                "mode": info_field(&info, "redis_mode"),
                "role": role,
                "reply": reply,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redis server the tests use (`.ci/run` starts one).
    fn server() -> String {
        std::env::var("GOLIVE_TEST_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into())
    }

    fn probe(target: &str, command: Option<&str>) -> Box<dyn Probe> {
        let mut t = toml::Table::new();
        t.insert("target".into(), toml::Value::String(target.into()));
        if let Some(c) = command {
            t.insert("command".into(), toml::Value::String(c.into()));
        }
        KIND.probe(&t).expect("spec")
    }

    #[tokio::test]
    async fn ping_policy_and_version_agree_with_the_server() {
        let obs = probe(
            &format!("redis://{}/0", server()),
            Some("ECHO 'hello there'"),
        )
        .observe()
        .await
        .expect("observed");
        assert_eq!(obs["pong"], true);
        assert_eq!(obs["reply"], "hello there");
        assert_eq!(obs["role"], "master");
        // what redis-cli says of the same server
        let cli = |args: &[&str]| {
            let (host, port) = server()
                .rsplit_once(':')
                .map(|(h, p)| (h.to_string(), p.to_string()))
                .expect("host:port");
            let out = std::process::Command::new("redis-cli")
                .args(["-h", &host, "-p", &port])
                .args(args)
                .output()
                .expect("redis-cli");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let policy = cli(&["CONFIG", "GET", "maxmemory-policy"]);
        assert_eq!(
            obs["maxmemory_policy"].as_str(),
            policy.lines().nth(1),
            "{policy}"
        );
        let info = cli(&["INFO", "server"]);
        assert_eq!(obs["version"], info_field(&info, "redis_version"));
    }

    #[tokio::test]
    async fn a_wrong_password_or_closed_port_cannot_observe() {
        let err = probe(&format!("redis://:not-the-password@{}", server()), None)
            .observe()
            .await
            .expect_err("auth fails");
        assert!(err.to_string().contains("AUTH"), "{err}");
        assert!(!err.to_string().contains("not-the-password"));
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let err = probe(&format!("127.0.0.1:{port}"), None)
            .observe()
            .await
            .expect_err("refused");
        assert!(matches!(err, ProbeError::Refused(_)), "{err}");
    }

    #[test]
    fn targets_parse_and_hide_the_password() {
        let p = probe("redis://:s3cret@cache.internal:6380/2", None);
        assert_eq!(p.target(), "redis://:***@cache.internal:6380/2");
        let mut t = toml::Table::new();
        t.insert("target".into(), toml::Value::String("redis://h/x".into()));
        assert!(KIND.probe(&t).is_err());
    }

    /// Defect: `redis://PASSWORD@host` (no `:`; this probe reads it as the
    /// password) was shown in clear.
    #[test]
    fn a_redis_password_without_a_user_is_never_shown() {
        let p = probe("redis://s3cr@t@cache.internal:6380", None);
        assert_eq!(p.target(), "redis://***@cache.internal:6380");
        let p = probe("only-Pw@cache.internal:6380", None);
        assert_eq!(p.target(), "***@cache.internal:6380");
    }
}
