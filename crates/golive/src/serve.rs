//! `golive serve`, `golive users` and `golive runbooks`: the server and
//! what it keeps, as the CLI gives them.

use std::path::Path;
use std::process::ExitCode;

/// Log lines on stderr: JSON objects with `--log-json`, else plain.
fn init_log(json: bool) {
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
async fn stopped() {
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
    let server = golive_server::Server::bind(cfg).await?;
    let addr = server.local_addr();
    let people = golive_deploy::open_store(&store)
        .await
        .map_err(|e| e.to_string())?
        .people()
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("golive: serving {scheme}://{addr}/ over {store}");
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
) -> Result<ExitCode, String> {
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
