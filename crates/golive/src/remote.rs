//! The lifecycle commands given against a server (`--server URL`, or
//! `GOLIVE_SERVER`) with a token (`--token`, or `GOLIVE_TOKEN`): the same
//! lines and exit codes as against a local store; the token says who acts,
//! so no `--as` is needed.

use serde_json::{Value, json};
use std::process::ExitCode;

/// Where the server is and who asks.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Remote {
    /// Act through a golive server (`golive serve`) instead of a local store.
    #[arg(long, env = "GOLIVE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The token `golive users add` printed (needed with --server).
    #[arg(
        long,
        env = "GOLIVE_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    pub token: Option<String>,
    /// A CA certificate (PEM) to verify the server's HTTPS with.
    #[arg(long, value_name = "PEM", requires = "server")]
    pub server_ca: Option<String>,
}

/// A write or a read of the API, as the CLI ends it.
pub struct Client<'a> {
    base: String,
    token: &'a str,
    ca: Option<&'a str>,
}

impl<'a> Client<'a> {
    pub fn new(r: &'a Remote) -> Result<Client<'a>, String> {
        let base = r
            .server
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let token = r.token.as_deref().ok_or(
            "--server needs --token (or GOLIVE_TOKEN): the token `golive users add` printed",
        )?;
        Ok(Client {
            base,
            token,
            ca: r.server_ca.as_deref(),
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), String> {
        let mut headers = vec![("authorization", format!("Bearer {}", self.token))];
        if body.is_some() {
            headers.push(("content-type", "application/json".to_string()));
        }
        let url = format!("{}{path}", self.base);
        let (status, bytes) =
            golive_probe::request(method, &url, &headers, body.map(|b| b.to_string()), self.ca)
                .await
                .map_err(|e| format!("{}: {e}", self.base))?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The deployment named, or the server's newest.
    pub async fn deployment(&self, id: Option<&str>) -> Result<String, String> {
        if let Some(id) = id {
            return Ok(id.to_string());
        }
        let (status, body) = self.call("GET", "/api/v1/deployments", None).await?;
        if status != 200 {
            return Err(refusal_text(status, &body));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{}: {e}", self.base))?;
        v.as_array()
            .and_then(|a| a.first())
            .and_then(|d| d["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{}: no deployment yet", self.base))
    }

    /// POST a command: print what it said, exit as the CLI does.
    pub async fn write(
        &self,
        id: Option<&str>,
        what: &str,
        body: Value,
    ) -> Result<ExitCode, String> {
        let id = self.deployment(id).await?;
        let (status, text) = self
            .call(
                "POST",
                &format!("/api/v1/deployments/{id}/{what}"),
                Some(body),
            )
            .await?;
        end(status, &text, |v| {
            for l in v["said"].as_array().into_iter().flatten() {
                println!("{}", l.as_str().unwrap_or_default());
            }
            ExitCode::from(v["exit"].as_u64().unwrap_or(0) as u8)
        })
    }

    /// POST a command signed with the person's SSH key: the payload for
    /// `act` fetched from the server, signed here by ssh-keygen with `key`
    /// (the private key never leaves this machine), then posted with it.
    #[allow(clippy::too_many_arguments)]
    pub async fn signed_write(
        &self,
        id: Option<&str>,
        what: &str,
        mut body: Value,
        act: &str,
        result: Option<&str>,
        role: Option<&str>,
        key: &std::path::Path,
    ) -> Result<ExitCode, String> {
        let id = self.deployment(id).await?;
        let mut query = format!("act={}", encode(act));
        if let Some(r) = result {
            query.push_str(&format!("&result={}", encode(r)));
        }
        if let Some(r) = role {
            query.push_str(&format!("&role={}", encode(r)));
        }
        let (status, text) = self
            .call(
                "GET",
                &format!("/api/v1/deployments/{id}/payload?{query}"),
                None,
            )
            .await?;
        if status != 200 {
            return Err(refusal_text(status, &text));
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", self.base))?;
        let payload = v["payload"].as_str().unwrap_or_default().to_string();
        let signature = crate::deploy::ssh_keygen_sign(key, payload.as_bytes())?;
        body["ssh"] = json!({ "payload": payload, "signature": signature });
        self.write(Some(&id), what, body).await
    }

    /// GET a text and print it as it is.
    pub async fn print(
        &self,
        id: Option<&str>,
        path: impl Fn(&str) -> String,
    ) -> Result<ExitCode, String> {
        let id = self.deployment(id).await?;
        let (status, text) = self.call("GET", &path(&id), None).await?;
        if status == 200 {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            return Ok(ExitCode::SUCCESS);
        }
        end(status, &text, |_| ExitCode::SUCCESS)
    }
}

/// `text` for a URL's query.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

fn refusal_text(status: u16, body: &str) -> String {
    format!("the server answered {status}: {}", message(body))
}

/// A refusal of the rules exits 1 with the words a local store gives; a
/// token, the server or the request failing exits 2.
fn end(status: u16, body: &str, ok: impl Fn(&Value) -> ExitCode) -> Result<ExitCode, String> {
    match status {
        200 | 201 => {
            let v: Value = serde_json::from_str(body).unwrap_or(json!({}));
            Ok(ok(&v))
        }
        403 | 404 | 409 | 422 => {
            eprintln!("golive: refused: {}; nothing was recorded", message(body));
            Ok(ExitCode::from(1))
        }
        _ => Err(refusal_text(status, body)),
    }
}
