//! `golive serve`, `golive users` and `golive runbooks`: the server and
//! what it keeps, as the CLI gives them.

use std::path::Path;
use std::process::ExitCode;

/// Single sign-on through an OpenID Connect provider (`golive serve
/// --oidc-issuer …`).
#[derive(clap::Args, Debug, Default)]
pub struct OidcArgs {
    /// The identity provider's issuer URL (its discovery document is at
    /// ISSUER/.well-known/openid-configuration): log in on the page with
    /// it. Tokens keep working when it is down.
    #[arg(
        long,
        env = "GOLIVE_OIDC_ISSUER",
        value_name = "URL",
        requires_all = ["oidc_client_id", "public_url"]
    )]
    pub oidc_issuer: Option<String>,
    /// golive's client id at the provider. Its secret comes from
    /// GOLIVE_OIDC_CLIENT_SECRET or --oidc-client-secret-file.
    #[arg(
        long,
        env = "GOLIVE_OIDC_CLIENT_ID",
        value_name = "ID",
        requires = "oidc_issuer"
    )]
    pub oidc_client_id: Option<String>,
    /// A file holding the client secret (instead of GOLIVE_OIDC_CLIENT_SECRET).
    #[arg(
        long,
        env = "GOLIVE_OIDC_CLIENT_SECRET_FILE",
        value_name = "FILE",
        requires = "oidc_issuer"
    )]
    pub oidc_client_secret_file: Option<std::path::PathBuf>,
    /// The address people reach golive at (`https://golive.example.com`):
    /// the provider sends them back to PUBLIC_URL/login/oidc/callback.
    #[arg(long, env = "GOLIVE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// The claim people are matched by: `email` (it must be verified)
    /// matches the people's emails; another claim (`preferred_username`)
    /// matches their names.
    #[arg(
        long,
        env = "GOLIVE_OIDC_CLAIM",
        default_value = "email",
        value_name = "CLAIM",
        requires = "oidc_issuer"
    )]
    pub oidc_claim: String,
    /// The claim listing a person's groups: their roles are then those
    /// --oidc-role maps their groups to, at every login.
    #[arg(
        long,
        env = "GOLIVE_OIDC_GROUPS_CLAIM",
        value_name = "CLAIM",
        requires = "oidc_issuer"
    )]
    pub oidc_groups_claim: Option<String>,
    /// A group and the document role it grants (`sre=Release Manager`);
    /// repeatable.
    #[arg(
        long = "oidc-role",
        env = "GOLIVE_OIDC_ROLES",
        value_delimiter = ',',
        value_name = "GROUP=ROLE",
        requires = "oidc_groups_claim"
    )]
    pub oidc_roles: Vec<String>,
    /// A scope to ask for beside `openid email profile` (`groups`);
    /// repeatable.
    #[arg(
        long = "oidc-scope",
        env = "GOLIVE_OIDC_SCOPES",
        value_delimiter = ',',
        value_name = "SCOPE",
        requires = "oidc_issuer"
    )]
    pub oidc_scopes: Vec<String>,
    /// A CA certificate (PEM) to trust for the provider, beside the web's.
    #[arg(
        long,
        env = "GOLIVE_OIDC_CA",
        value_name = "PEM",
        requires = "oidc_issuer"
    )]
    pub oidc_ca: Option<String>,
}

impl OidcArgs {
    /// The server's single sign-on, when configured: the secret read from
    /// its file or GOLIVE_OIDC_CLIENT_SECRET, and never shown.
    pub fn config(self) -> Result<Option<golive_server::oidc::OidcConfig>, String> {
        let Some(issuer) = self.oidc_issuer else {
            return Ok(None);
        };
        let secret = match &self.oidc_client_secret_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| format!("--oidc-client-secret-file {}: {e}", f.display()))?
                .trim()
                .to_string(),
            None => std::env::var("GOLIVE_OIDC_CLIENT_SECRET").unwrap_or_default(),
        };
        if secret.is_empty() {
            return Err("--oidc-issuer: the client secret is missing: set GOLIVE_OIDC_CLIENT_SECRET or give --oidc-client-secret-file FILE".into());
        }
        let public_url = self.public_url.unwrap_or_default();
        if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
            return Err(format!(
                "--public-url `{public_url}`: write the address people reach golive at, https://HOST[:PORT]"
            ));
        }
        let roles = self
            .oidc_roles
            .iter()
            .map(|r| golive_server::oidc::OidcConfig::parse_role(r))
            .collect::<Result<_, _>>()?;
        Ok(Some(golive_server::oidc::OidcConfig {
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id: self.oidc_client_id.unwrap_or_default(),
            client_secret: secret,
            public_url,
            claim: self.oidc_claim,
            groups_claim: self.oidc_groups_claim,
            roles,
            scopes: self.oidc_scopes,
            ca_file: self.oidc_ca,
        }))
    }
}

/// Log lines on stderr: JSON objects with `--log-json`, else plain.
pub fn init_log(json: bool) {
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(tracing::Level::INFO);
    let _ = if json {
        b.json().try_init()
    } else {
        b.with_ansi(false).try_init()
    };
}

/// Until Ctrl-C or SIGTERM.
pub async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn serve(cfg: golive_server::Config, log_json: bool) -> Result<ExitCode, String> {
    init_log(log_json);
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let store = cfg.store.clone();
    let people = golive_deploy::open_store(&store)
        .await
        .map_err(|e| e.to_string())?
        .people()
        .await
        .map_err(|e| e.to_string())?;
    let sso = cfg.oidc.as_ref().map(|o| {
        format!(
            "golive: single sign-on through {}: its client {} must allow the redirect URL {} (back-channel logout: {})",
            o.issuer,
            o.client_id,
            o.redirect_url(),
            o.backchannel_url()
        )
    });
    let server = golive_server::Server::bind(cfg).await?;
    let addr = server.local_addr();
    eprintln!("golive: serving {scheme}://{addr}/ over {store}");
    if let Some(line) = sso {
        eprintln!("{line}");
    }
    if people.is_empty() {
        eprintln!(
            "golive: nobody can log in yet: `golive users add NAME --role ROLE --store {store}` prints a token"
        );
    }
    tracing::info!(%addr, "listening");
    server.run(stopped()).await?;
    eprintln!("golive: stopped; every stream ended");
    Ok(ExitCode::SUCCESS)
}

async fn store(location: &str) -> Result<golive_store::Store, String> {
    golive_deploy::create_store(location)
        .await
        .map_err(|e| e.to_string())
}

pub async fn users_add(
    location: &str,
    name: &str,
    roles: &[String],
    email: Option<&str>,
    ssh_keys: &[String],
) -> Result<ExitCode, String> {
    let keys = public_keys(ssh_keys)?;
    let name = name.trim();
    if name.is_empty() {
        return Err("users add: the name is empty".into());
    }
    let roles: Vec<String> = roles
        .iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if roles.is_empty() {
        return Err("users add: --role is empty: give each role the person holds (`viewer` for one who only looks)".into());
    }
    let s = store(location).await?;
    let (token, row) = golive_server::auth::add_person(&s, name, &roles, email)
        .await
        .map_err(|e| e.to_string())?;
    if !keys.is_empty() {
        s.set_ssh_keys(name, &keys)
            .await
            .map_err(|e| e.to_string())?;
        for k in &keys {
            let fp = golive_deploy::sshsig::fingerprint(k).unwrap_or_default();
            println!("{name} signs with {fp}");
        }
    }
    println!(
        "{name} holds {}; token {} (shown once, stored hashed):",
        roles.join(", "),
        row.id
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub async fn users_list(location: &str) -> Result<ExitCode, String> {
    let s = store(location).await?;
    let people = s.people().await.map_err(|e| e.to_string())?;
    let tokens = s.tokens("api").await.map_err(|e| e.to_string())?;
    if people.is_empty() {
        println!("nobody yet: `golive users add NAME --role ROLE` adds a person");
    }
    for p in people {
        println!(
            "{}: {}{}",
            p.name,
            p.roles.join(", "),
            p.email.map(|e| format!(" <{e}>")).unwrap_or_default()
        );
        for t in tokens.iter().filter(|t| t.person == p.name) {
            println!(
                "  token {} created {}{}",
                t.id,
                t.created_at,
                t.revoked_at
                    .as_deref()
                    .map(|r| format!(", REVOKED {r}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn users_revoke(location: &str, id: &str) -> Result<ExitCode, String> {
    let s = store(location).await?;
    let n = s.revoke(id).await.map_err(|e| e.to_string())?;
    if n == 0 {
        eprintln!(
            "golive: no token or person `{id}` with a token still valid (`golive users list` shows them)"
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "{n} token(s) of `{id}` revoked; sessions opened with them stay until they end or are revoked by name"
    );
    Ok(ExitCode::SUCCESS)
}

/// The public keys `given` (each a key line, or a `.pub` file holding
/// them), each checked.
fn public_keys(given: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for g in given {
        let text = if std::path::Path::new(g).is_file() {
            std::fs::read_to_string(g).map_err(|e| format!("--ssh-key {g}: {e}"))?
        } else {
            g.clone()
        };
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            golive_deploy::sshsig::fingerprint(line).map_err(|e| format!("--ssh-key {g}: {e}"))?;
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// `golive agents add NAME --location L`.
pub async fn agents_add(location: &str, name: &str, at: &str) -> Result<ExitCode, String> {
    let (name, at) = (name.trim(), at.trim());
    if name.is_empty() || at.is_empty() {
        return Err("agents add: give the agent a name and a --location".into());
    }
    let s = store(location).await?;
    let (token, row) = golive_server::auth::add_agent(&s, name, at)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "agent {name} at {at}; token {} (shown once, stored hashed):",
        row.id
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `golive agents list`.
pub async fn agents_list(location: &str) -> Result<ExitCode, String> {
    let s = store(location).await?;
    let now = jiff::Timestamp::now().as_millisecond();
    for a in s.agents().await.map_err(|e| e.to_string())? {
        let seen = match a.last_seen {
            Some(t) => format!("last heartbeat {}s ago", (now - t).max(0) / 1000),
            None => "never beat its heart".into(),
        };
        println!("{}: {} ({seen})", a.name, a.location);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn users_import(location: &str, file: &Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let roster = golive_engine::roster::Roster::from_toml(&text, &file.display().to_string())?;
    let s = store(location).await?;
    let known: Vec<String> = s
        .people()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.name)
        .collect();
    for p in roster.people.values() {
        for k in &p.ssh_keys {
            golive_deploy::sshsig::fingerprint(k)
                .map_err(|e| format!("{}: {}'s ssh_keys: {e}", file.display(), p.name))?;
        }
    }
    for p in roster.people.values() {
        if known.contains(&p.name) {
            s.put_person(&p.name, p.contact.as_deref(), &p.roles)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}: roles now {}", p.name, p.roles.join(", "));
        } else {
            let (token, _) =
                golive_server::auth::add_person(&s, &p.name, &p.roles, p.contact.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
            println!(
                "{}: added with {}; token {token}",
                p.name,
                p.roles.join(", ")
            );
        }
        // the roster's keys are the person's keys on the server
        s.set_ssh_keys(&p.name, &p.ssh_keys)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn runbooks_add(location: &str, file: &Path) -> Result<ExitCode, String> {
    let source = crate::read_source(file)?;
    let rb = source.runbook();
    if rb.items.is_empty() {
        return Err(format!(
            "{}: no checklist item in it (`- [ ] …`, a procedure step or a ☐ table row): nothing to deploy",
            file.display()
        ));
    }
    let s = store(location).await?;
    let sha = s
        .put_runbook(
            &source.path,
            &source.text,
            &golive_deploy::record::account(),
        )
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} registered: {} items, sha256",
        source.path,
        rb.items.len()
    );
    println!("{sha}");
    Ok(ExitCode::SUCCESS)
}

pub async fn runbooks_list(location: &str) -> Result<ExitCode, String> {
    let s = store(location).await?;
    for r in s.runbooks().await.map_err(|e| e.to_string())? {
        println!(
            "{} {} (added {} by {})",
            r.sha256, r.path, r.added_at, r.added_by
        );
    }
    Ok(ExitCode::SUCCESS)
}
