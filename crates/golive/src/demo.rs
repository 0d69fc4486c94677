//! `golive demo`: a whole deployment on one machine. Starts the sample
//! service at v1.0.0, then drives `examples/demo.md` through every stage with
//! golive's own commands (each a process of this binary, as a person would
//! type it): the pre-deployment checks and sign-offs, GO by three people, the
//! procedure to v1.1.0, the smoke tests and their gate, the post-deployment
//! verification and the final sign-off. With `--fault`, v1.1.0 misbehaves,
//! the rollback criteria fire, R1–R5 run, and the deployment ends ROLLED BACK.
//!
//! Every signature it records is a demo roster person's, and says so.

use crate::sample::{self, Fault};
use golive_runbook::{ItemKind, Runbook, StageKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The exit code of a demo that ended ROLLED BACK.
pub const ROLLED_BACK: u8 = 3;

pub struct Demo {
    pub fault: Option<Fault>,
    pub keep: bool,
    /// Where the demo writes: a missing folder (made), an empty one, or
    /// one an earlier demo made ([`prepare_out`]); by default a new one.
    pub out: Option<PathBuf>,
    /// Another runbook than the built-in `examples/demo.md`.
    pub runbook: Option<PathBuf>,
    /// The channels the communication plan is sent on (`--notify`).
    pub notify: Vec<String>,
}

/// What a demo signature says.
const DEMO_SIGNATURE: &str = "demo signature: recorded by golive demo for the demo roster";

struct Ctx {
    exe: PathBuf,
    store: String,
    runbook: String,
    vars: Vec<String>,
    api_token: String,
    started: Instant,
    /// The channels, as every command of the demo is given them.
    notify: Vec<String>,
}

impl Ctx {
    /// A failure about the runbook, naming it.
    fn about_runbook(&self, what: impl std::fmt::Display) -> String {
        format!("{}: {what}", self.runbook)
    }

    /// A failure about the record, naming the store.
    fn about_store(&self, what: impl std::fmt::Display) -> String {
        format!("{}: {what}", self.store)
    }

    /// The person of the demo roster holding `role`.
    fn person(&self, rb: &Runbook, role: &str) -> Result<String, String> {
        person(rb, role).ok_or_else(|| self.about_runbook(format!("the demo roster has no {role}")))
    }

    /// Run `golive ARGS…` (with the run's variables for run-like commands);
    /// its exit code and output.
    async fn golive(
        &self,
        args: &[&str],
        with_vars: bool,
    ) -> Result<(i32, String, String), String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(args)
            .env("GOLIVE_STORE", &self.store)
            .env("GOLIVE_DEMO_TOKEN", &self.api_token)
            .env("GOLIVE_NOTIFY", self.notify.join(","))
            .stdin(std::process::Stdio::null());
        if with_vars {
            cmd.args(&self.vars);
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.exe.display()))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn say(&self, what: &str) {
        println!("[{:>5.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// `golive run` of one stage (and the procedure's advance).
    async fn run(&self, only: &str, commands: bool) -> Result<(i32, String, String), String> {
        let mut args = vec!["run", self.runbook.as_str(), "--only", only];
        if commands {
            args.push("--allow-commands");
        }
        let (code, out, err) = self.golive(&args, true).await?;
        if code == 2 {
            // bad input: the runbook's checks cannot run as written
            return Err(self.about_runbook(format!("golive run --only {only}:\n{err}")));
        }
        Ok((code, out, err))
    }
}

/// The person of the demo roster holding `role`.
fn person(rb: &Runbook, role: &str) -> Option<String> {
    golive_engine::roster::Roster::from_document(rb)
        .people
        .values()
        .find(|p| p.holds(role))
        .map(|p| p.name.clone())
}

/// The items of a stage that no check decides (a person signs them), with
/// the role that signs.
fn manual(rb: &Runbook, kind: StageKind) -> Vec<(String, String)> {
    rb.stages
        .iter()
        .filter(|s| s.kind == kind)
        .flat_map(|s| s.all_items())
        .map(|i| &rb.items[i])
        .filter(|it| it.kind != ItemKind::Step && it.annotations.is_empty())
        .map(|it| {
            let role = it
                .fields
                .iter()
                .find(|f| f.label == "Responsible")
                .map_or("Deployment Lead".to_string(), |f| {
                    f.value.trim().to_string()
                });
            (it.id.clone(), role)
        })
        .collect()
}

/// The items of a stage that have checks (signed after their checks passed).
fn checked(rb: &Runbook, kind: StageKind) -> Vec<(String, String)> {
    rb.stages
        .iter()
        .filter(|s| s.kind == kind)
        .flat_map(|s| s.all_items())
        .map(|i| &rb.items[i])
        .filter(|it| !it.annotations.is_empty())
        .filter_map(|it| {
            let role = it.fields.iter().find(|f| f.label == "Responsible")?;
            Some((it.id.clone(), role.value.trim().to_string()))
        })
        .collect()
}

async fn sign_all(ctx: &Ctx, rb: &Runbook, items: &[(String, String)]) -> Result<(), String> {
    for (id, role) in items {
        let name = ctx.person(rb, role)?;
        let (code, _, err) = ctx
            .golive(
                &[
                    "sign",
                    id,
                    "--as",
                    &name,
                    "--role",
                    role,
                    "--comment",
                    DEMO_SIGNATURE,
                ],
                false,
            )
            .await?;
        if code != 0 {
            return Err(ctx.about_store(format!("signing {id} as {name}: {}", err.trim())));
        }
    }
    Ok(())
}

/// Move the current sequence (procedure or Rollback Steps) to its end: steps
/// with commands run, a person's step is marked done by the demo roster.
async fn advance(ctx: &Ctx, rb: &Runbook, only: &str) -> Result<(), String> {
    for _ in 0..64 {
        let (code, _, err) = ctx.run(only, true).await?;
        for l in err.lines().filter(|l| {
            l.contains(" done by golive")
                || l.starts_with("OVERRUN")
                || l.starts_with("ROLLED BACK")
        }) {
            ctx.say(l.trim());
        }
        if err.contains("stopped at") {
            return Err(ctx.about_runbook(format!("the steps stopped: {}", err.trim())));
        }
        let Some(line) = err.lines().find(|l| l.starts_with("next: ")) else {
            // every step done (or, for the Rollback Steps, the deployment
            // ended with the last of them)
            let _ = code;
            return Ok(());
        };
        let address = line
            .trim_start_matches("next: ")
            .split_whitespace()
            .next()
            .unwrap_or("");
        let role = if only.starts_with("rollback") {
            "DevOps Engineer"
        } else {
            "Deployment Lead"
        };
        let name = ctx.person(rb, role)?;
        let (c, out, e) = ctx
            .golive(
                &["done", address, "--as", &name, "--comment", DEMO_SIGNATURE],
                false,
            )
            .await?;
        if c != 0 {
            return Err(ctx.about_store(format!("{address}: {}", e.trim())));
        }
        for l in out.lines() {
            ctx.say(l.trim());
        }
        if out.contains("ROLLED BACK") {
            return Ok(());
        }
    }
    Err(ctx.about_runbook(format!("the steps of {only} did not end")))
}

/// The demo deployment's status, from the lifecycle: its state, and the
/// status text `golive status` prints.
async fn status(ctx: &Ctx) -> Result<(&'static str, String), String> {
    let d = crate::deploy::open(&ctx.store, None)
        .await
        .map_err(|e| ctx.about_store(e))?;
    let s = d
        .status(&crate::deploy::Cli)
        .await
        .map_err(|e| ctx.about_store(e))?;
    let text = golive_report::status::status_text(&d.rb, &d.row, &s, jiff::Timestamp::now());
    Ok((s.state, text))
}

/// The demo runbook, built into the binary so the demo runs from anywhere.
const DEMO_RUNBOOK: &str = include_str!("../../../examples/demo.md");

pub async fn demo(d: Demo) -> Result<ExitCode, String> {
    let started = Instant::now();
    // a runbook of one's own is read before anything is written
    let given = d.runbook.as_deref().map(crate::load).transpose()?;
    let out = match &d.out {
        Some(o) => prepare_out(o)?,
        None => new_out()?,
    };
    let service_dir = out.join("service");
    std::fs::create_dir_all(&service_dir)
        .map_err(|e| format!("{}: cannot make the folder: {e}", service_dir.display()))?;
    let (runbook, rb) = match (&d.runbook, given) {
        (Some(p), Some(rb)) => (p.clone(), rb),
        _ => {
            let p = out.join("demo.md");
            std::fs::write(&p, DEMO_RUNBOOK).map_err(|e| format!("{}: {e}", p.display()))?;
            let rb = crate::load(&p)?;
            (p, rb)
        }
    };
    let prev = "v1.0.0";
    let next = "v1.1.0";
    let svc = sample::start(sample::Options {
        https: "127.0.0.1:0".parse().map_err(|_| "address")?,
        http: "127.0.0.1:0".parse().map_err(|_| "address")?,
        version: prev.into(),
        dir: service_dir.clone(),
        webhook: None,
        rate_limit: 60,
        faulty: d.fault.map(|f| (next.to_string(), f)),
    })
    .await
    .map_err(|e| format!("the sample service in {}: {e}", service_dir.display()))?;
    sample::write_info(&service_dir, &svc)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find golive itself: {e}"))?;
    let domain = format!("localhost:{}", svc.https.port());
    let ca = svc.ca_file.display().to_string();
    let ctx = Ctx {
        exe: exe.clone(),
        store: out.join("golive.db").display().to_string(),
        runbook: runbook.display().to_string(),
        vars: vec![
            "--var".into(),
            format!("DOMAIN={domain}"),
            "--var".into(),
            format!("GOLIVE={}", exe.display()),
            "--var".into(),
            format!("SERVICE_DIR={}", service_dir.display()),
            "--var".into(),
            format!("CA_FILE={ca}"),
            "--ca-file".into(),
            ca.clone(),
            "--secret".into(),
            "TEST_TOKEN=env:GOLIVE_DEMO_TOKEN".into(),
        ],
        api_token: svc.api_token.clone(),
        started,
        notify: d.notify.clone(),
    };
    // the channels are checked before anything is recorded
    let channels = crate::notify::channels(&rb, &d.notify)?;
    println!(
        "golive demo: {} on the sample service at https://{domain}/ ({prev}){}",
        ctx.runbook,
        match d.fault {
            Some(f) => format!(", the new version bringing a fault: {f:?}"),
            None => String::new(),
        }
    );

    // pre-deployment: the checks, then the sign-offs
    let (code, _, err) = ctx.run("pre-deployment-checklist", false).await?;
    if code != 0 {
        return Err(ctx.about_runbook(format!("the pre-deployment checks failed:\n{err}")));
    }
    ctx.say("pre-deployment checks passed");
    sign_all(&ctx, &rb, &manual(&rb, StageKind::PreDeployment)).await?;
    sign_all(&ctx, &rb, &checked(&rb, StageKind::PreDeployment)).await?;
    ctx.say("pre-deployment items signed by the demo roster");
    for role in golive_deploy::lifecycle::decision_signers(&rb) {
        let name = ctx.person(&rb, &role)?;
        let (code, _, err) = ctx
            .golive(
                &[
                    "decide",
                    "go",
                    "--as",
                    &name,
                    "--role",
                    &role,
                    "--reason",
                    DEMO_SIGNATURE,
                ],
                false,
            )
            .await?;
        if code != 0 {
            return Err(ctx.about_store(format!("GO by {name}: {}", err.trim())));
        }
    }
    ctx.say("GO decided");
    advance(&ctx, &rb, "deployment-procedure").await?;
    ctx.say(&format!("deployed {next}"));

    // smoke tests: the checks (one at a time: Test 18 answers a 500 on
    // purpose, which Test 16's error rate must not see), the people's items,
    // the gate
    let (_, _, err) = ctx
        .golive(
            &[
                "run",
                &ctx.runbook,
                "--only",
                "smoke-testing-checklist",
                "--concurrency",
                "1",
            ],
            true,
        )
        .await?;
    for l in err.lines().filter(|l| l.contains("ROLLBACK")) {
        ctx.say(l.trim_start_matches("golive: "));
    }
    sign_all(&ctx, &rb, &manual(&rb, StageKind::Smoke)).await?;
    let qa = ctx.person(&rb, "QA Engineer")?;
    let (gate, out_gate, _) = ctx.golive(&["gate", "smoke", "--as", &qa], false).await?;
    ctx.say(out_gate.trim());
    let mut rolled_back = false;
    let (state, _) = status(&ctx).await?;
    if gate != 0 || state.contains("ROLL") {
        ctx.say("the rollback criteria hold: Rollback Steps");
        if state == "ROLLBACK DECISION RAISED" {
            let devops = ctx.person(&rb, "DevOps Engineer")?;
            ctx.golive(
                &[
                    "rollback",
                    "--as",
                    &devops,
                    "--role",
                    "DevOps Engineer",
                    "--reason",
                    DEMO_SIGNATURE,
                ],
                false,
            )
            .await?;
        }
        advance(&ctx, &rb, "rollback-procedure").await?;
        rolled_back = true;
    } else {
        let (_, _, _) = ctx
            .run("post-deployment-verification-checklist", false)
            .await?;
        sign_all(&ctx, &rb, &manual(&rb, StageKind::Verification)).await?;
        let (code, o, _) = ctx
            .golive(&["gate", "verification", "--as", &qa], false)
            .await?;
        ctx.say(o.trim());
        if code != 0 {
            return Err(ctx.about_store(format!("the verification gate failed: {}", o.trim())));
        }
        let lead = ctx.person(&rb, "Deployment Lead")?;
        let (code, o, e) = ctx.golive(&["finish", "--as", &lead], false).await?;
        if code != 0 {
            return Err(ctx.about_store(format!("finish: {}", e.trim())));
        }
        ctx.say(o.lines().next().unwrap_or("").trim());
    }

    // the reports
    let mut paths = Vec::new();
    for (format, ext) in [
        ("md", "md"),
        ("html", "html"),
        ("json", "json"),
        ("junit", "xml"),
    ] {
        let path = out.join(format!("report.{ext}"));
        let (code, text, err) = ctx.golive(&["report", "--format", format], false).await?;
        if code != 0 {
            return Err(format!(
                "{}: golive report --format {format}: {}",
                path.display(),
                err.trim()
            ));
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path);
    }
    let war_room = war_room(&ctx.store, d.keep).await?;
    let (state, st) = status(&ctx).await?;
    let now = version_now(&domain, &ca).await;
    println!();
    println!("Outcome: {state}");
    for l in st.lines().filter(|l| {
        l.starts_with("Gate ")
            || l.starts_with("Rolled back")
            || l.starts_with("Duration")
            || l.starts_with("Ended")
    }) {
        println!("{}", l.trim());
    }
    println!("The service answers: {now}");
    println!("Took {:.1}s", started.elapsed().as_secs_f64());
    println!("Reports:");
    for p in &paths {
        println!("  {}", p.display());
    }
    match st.lines().find(|l| l.starts_with("Messages: ")) {
        Some(m) => println!(
            "{m} on {}",
            channels
                .iter()
                .map(|c| c.shown())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => println!(
            "Messages: none sent (golive demo --notify slack=URL|teams=URL|webhook=URL|email=smtp://HOST:PORT sends the communication plan)"
        ),
    }
    println!("{}", war_room.0);
    println!("Store: {}", ctx.store);
    println!(
        "  golive status --store {0}    golive audit verify --store {0}",
        ctx.store
    );
    if d.keep {
        println!(
            "The sample service keeps running at https://{domain}/ (CA {ca}); Ctrl-C ends it."
        );
        std::future::pending::<()>().await;
    }
    drop(war_room.1);
    drop(svc);
    Ok(if rolled_back {
        ExitCode::from(ROLLED_BACK)
    } else {
        ExitCode::SUCCESS
    })
}

/// The file that marks a folder as one `golive demo` made.
const MARKER: &str = ".golive-demo";

/// What the marker says; a file of that name saying anything else is not
/// golive's.
const MARKER_TEXT: &str = "This folder was made by `golive demo`: a later `golive demo --out` into it\nreplaces the demo's own files here (demo.md, golive.db, report.*, service/)\nand leaves anything else alone.\n";

/// Whether `name` is an entry the demo writes in its folder (the marker
/// aside): what a reuse of the folder replaces.
fn is_demo_entry(name: &str) -> bool {
    matches!(
        name,
        "demo.md"
            | "service"
            | "golive.db"
            | "golive.db-wal"
            | "golive.db-shm"
            | "golive.db-journal"
            | "golive.db.lock"
            | "report.md"
            | "report.html"
            | "report.json"
            | "report.xml"
    )
}

/// What to do when a folder is refused.
const CHOOSE: &str =
    "give --out a missing or empty folder (or one an earlier demo made), or no --out for a new one";

/// Make `out` the demo's folder, or refuse it with nothing written: a
/// missing folder is made, an empty one is taken, one an earlier demo made
/// (it holds the marker) is reused with the earlier demo's files removed
/// first. Anything else (a file, a folder holding other things, the root
/// folder) is refused, naming the path. Answers the folder's real path.
fn prepare_out(out: &Path) -> Result<PathBuf, String> {
    let shown = out.display();
    match std::fs::metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{shown}: cannot make the folder: {e}"))?;
            }
            match std::fs::create_dir(out) {
                Ok(()) => {}
                // made at the same moment by someone else: judge it as it is
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return prepare_out_existing(out);
                }
                Err(e) => return Err(format!("{shown}: cannot make the folder: {e}")),
            }
            let real = out.canonicalize().map_err(|e| format!("{shown}: {e}"))?;
            mark(&real)?;
            Ok(real)
        }
        Err(e) => Err(format!("{shown}: {e}: {CHOOSE}")),
        Ok(_) => prepare_out_existing(out),
    }
}

/// [`prepare_out`] for a path that is there.
fn prepare_out_existing(out: &Path) -> Result<PathBuf, String> {
    let real = out
        .canonicalize()
        .map_err(|e| format!("{}: {e}: {CHOOSE}", out.display()))?;
    let shown = real.display();
    if real.parent().is_none() {
        return Err(format!(
            "{shown}: the demo never writes into the root folder; nothing was written: {CHOOSE}"
        ));
    }
    if !real.is_dir() {
        return Err(format!(
            "{shown}: not a folder; nothing was written: {CHOOSE}"
        ));
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&real).map_err(|e| format!("{shown}: {e}: {CHOOSE}"))? {
        let entry = entry.map_err(|e| format!("{shown}: {e}: {CHOOSE}"))?;
        names.push(entry.file_name());
    }
    if names.is_empty() {
        mark(&real)?;
        return Ok(real);
    }
    if !is_marked(&real) {
        return Err(format!(
            "{shown}: holds files of its own and no earlier demo made it (it has no {MARKER} of golive's); nothing was written: {CHOOSE}"
        ));
    }
    // the earlier demo's files go, so nothing is written through what may
    // have replaced them (a link) and the new store starts empty
    for name in names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| is_demo_entry(n))
    {
        let path = real.join(name);
        let folder = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let removed = if folder {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| {
            format!(
                "{}: cannot remove the earlier demo's file: {e}",
                path.display()
            )
        })?;
    }
    Ok(real)
}

/// Whether `dir` holds golive's marker: a regular file (not a link) saying
/// [`MARKER_TEXT`].
fn is_marked(dir: &Path) -> bool {
    let path = dir.join(MARKER);
    std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
        && std::fs::read_to_string(&path).is_ok_and(|t| t == MARKER_TEXT)
}

fn mark(dir: &Path) -> Result<(), String> {
    let path = dir.join(MARKER);
    std::fs::write(&path, MARKER_TEXT).map_err(|e| format!("{}: {e}", path.display()))
}

/// A new folder under the system's temporary folder, named by the time
/// (with `-2`, `-3`… when a demo of the same second has it).
fn new_out() -> Result<PathBuf, String> {
    let tmp = std::env::temp_dir();
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S").to_string();
    for n in 1..1000 {
        let name = match n {
            1 => format!("golive-demo-{stamp}"),
            n => format!("golive-demo-{stamp}-{n}"),
        };
        let dir = tmp.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let real = dir
                    .canonicalize()
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                mark(&real)?;
                return Ok(real);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: cannot make the folder: {e}", dir.display())),
        }
    }
    Err(format!(
        "{}: no free name for a new demo folder: pass --out",
        tmp.display()
    ))
}

/// The version the service answers now (after the demo).
async fn version_now(domain: &str, ca: &str) -> String {
    let mut t = toml::Table::new();
    t.insert(
        "target".into(),
        toml::Value::String(format!("https://{domain}/version")),
    );
    t.insert("ca_file".into(), toml::Value::String(ca.into()));
    match golive_probe::kind("http").map(|k| k.probe(&t)) {
        Some(Ok(p)) => match p.observe().await {
            Ok(o) => o["json"]["version"].as_str().unwrap_or("?").to_string(),
            Err(e) => e.to_string(),
        },
        _ => "?".into(),
    }
}

/// The war room over the demo's store: `golive serve` on a loopback port,
/// asked for the deployment's state through its API with a viewer's token,
/// as a browser or `golive status --server` would. With `--keep` it goes on
/// serving, and the line says how to log in.
async fn war_room(
    store: &str,
    keep: bool,
) -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let cfg = golive_server::Config::new(([127, 0, 0, 1], 0).into(), store);
    let server = golive_server::Server::bind(cfg).await?;
    let addr = server.local_addr();
    let task = tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    let s = golive_deploy::open_store(store)
        .await
        .map_err(|e| e.to_string())?;
    let (token, _) =
        golive_server::auth::add_person(&s, "Demo Viewer", &["viewer".to_string()], None)
            .await
            .map_err(|e| e.to_string())?;
    let id = golive_deploy::find(&s, None)
        .await
        .map_err(|e| e.to_string())?
        .id;
    let (status, body) = golive_probe::request(
        "GET",
        &format!("http://{addr}/api/v1/deployments/{id}"),
        &[("authorization", format!("Bearer {token}"))],
        None,
        None,
    )
    .await
    .map_err(|e| format!("the war room at {addr}: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != 200 {
        return Err(format!("the war room at {addr} answered {status}"));
    }
    let mut line = format!(
        "War room: http://{addr}/ serves it: {} at version {} (golive serve --store {store})",
        v["state"].as_str().unwrap_or("?"),
        v["version"]
    );
    if keep {
        line.push_str(&format!(
            "\n  log in at http://{addr}/login with the viewer token {token}"
        ));
    } else {
        task.abort();
    }
    Ok((line, task))
}
