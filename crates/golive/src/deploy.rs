//! The deployment commands as the CLI gives them: each opens the
//! deployment, calls the lifecycle (golive-deploy), prints its outcome with
//! golive-report, and turns it into an exit code. No rule lives here.

use golive_deploy::{Error, Listener, Raised};
use golive_engine::CheckResult;
use golive_runbook::Runbook;
use std::path::Path;
use std::process::ExitCode;

/// How the CLI hears the lifecycle: notes on stderr as `golive: …`,
/// progress lines on stderr as they are.
pub struct Cli;

impl Listener for Cli {
    fn note(&self, text: &str) {
        eprintln!("golive: {text}");
    }
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}

/// An outcome of the lifecycle as the CLI ends: a refusal is printed and
/// exits 1 (nothing was recorded); bad input and failures exit 2 through
/// `main`.
pub fn exit(r: golive_deploy::Result<ExitCode>) -> Result<ExitCode, String> {
    match r {
        Ok(code) => Ok(code),
        Err(Error::Refused(r)) => {
            eprintln!("golive: refused: {}; nothing was recorded", r.message);
            Ok(ExitCode::from(1))
        }
        Err(Error::Invalid(r)) => Err(r.message),
        Err(Error::Failed(m)) => Err(m),
    }
}

/// Print what a command said, a line each.
pub fn say(lines: Vec<String>) {
    for l in lines {
        println!("{l}");
    }
}

/// The deployment `id` (or the newest) of the store at `location`, with its
/// runbook read from where the deployment recorded it.
pub async fn open(
    location: &str,
    id: Option<&str>,
) -> golive_deploy::Result<golive_deploy::Deployment> {
    let store = golive_deploy::open_store(location).await?;
    let row = golive_deploy::find(&store, id).await?;
    let source = crate::read_source(Path::new(&row.runbook_path)).map_err(Error::Failed)?;
    golive_deploy::Deployment::new(store, row, &source)
}

/// Arguments of `golive sign`.
pub struct Sign<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    /// The items named after the first (`sign.item`).
    pub more: &'a [&'a str],
    pub sign: golive_deploy::Sign<'a>,
}

pub async fn sign(a: Sign<'_>) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(a.store, a.deployment).await?;
            let all = d.sign_each(&a.sign, a.more, &Cli).await?;
            say(golive_report::said::signed(&d.rb, d.id(), &all));
            crate::notify::after(&d, &Cli).await;
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

pub struct SignOff<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub sign_off: golive_deploy::SignOff<'a>,
}

pub async fn sign_off(a: SignOff<'_>) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(a.store, a.deployment).await?;
            let s = d.sign_off(&a.sign_off, &Cli).await?;
            let stage = &d.rb.stages[s.stage];
            println!(
                "{} {} signed off by {} as {} in deployment {}; {}",
                stage.address,
                stage.title(),
                a.sign_off.name,
                a.sign_off.role,
                d.id(),
                if s.waiting.is_empty() {
                    "every role has signed".to_string()
                } else {
                    format!("waiting for {}", s.waiting.join(", "))
                }
            );
            crate::notify::after(&d, &Cli).await;
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

pub struct Skip<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub skip: golive_deploy::Skip<'a>,
}

pub async fn skip(a: Skip<'_>) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(a.store, a.deployment).await?;
            let i = d.skip(&a.skip, &Cli).await?;
            let it = &d.rb.items[i];
            println!(
                "{} {} skipped by {} as {} ({}) in deployment {}",
                it.address,
                it.title,
                a.skip.name,
                a.skip.role,
                a.skip.reason.trim(),
                d.id()
            );
            crate::notify::after(&d, &Cli).await;
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

pub struct Choose<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub choose: golive_deploy::Choose<'a>,
}

pub async fn choose(a: Choose<'_>) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(a.store, a.deployment).await?;
            let c = d.choose(&a.choose, &Cli).await?;
            let g = &d.rb.stages[c.stage].groups[c.group];
            println!(
                "{} {}: {} chosen by {} as {} in deployment {}; {} item(s) of the other options set aside",
                g.address,
                g.title(),
                g.choose_one[c.option].title,
                a.choose.name,
                a.choose.role,
                d.id(),
                c.set_aside
            );
            crate::notify::after(&d, &Cli).await;
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

pub async fn status(
    location: &str,
    id: Option<&str>,
    json_out: bool,
    message: bool,
) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(location, id).await?;
            let s = d.status(&Cli).await?;
            let now = jiff::Timestamp::now();
            if message {
                print!(
                    "{}",
                    golive_report::render_message(&d.rb, &d.row, &s.kept, now)
                );
            } else if json_out {
                let v = golive_report::status::status_json(&d.rb, &d.row, &s);
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!(
                    "{}",
                    golive_report::status::status_text(&d.rb, &d.row, &s, now)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// Arguments of `golive decide`.
pub struct Decide<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub decide: golive_deploy::Decide<'a>,
}

pub async fn decide(a: Decide<'_>) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(a.store, a.deployment).await?;
            let o = d.decide(&a.decide, &Cli).await?;
            say(golive_report::said::decided(d.id(), &o));
            crate::notify::after(&d, &Cli).await;
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// `golive report`.
pub async fn report(location: &str, id: Option<&str>, format: &str) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(location, id).await?;
            let events = d.store.events(d.id()).await?;
            let (rb, row) = (&d.rb, &d.row);
            match format {
                "md" => print!(
                    "{}",
                    golive_report::render_markdown(rb, row, &events).map_err(Error::Failed)?
                ),
                "junit" => print!("{}", golive_report::render_junit(rb, row, &events)),
                "html" => print!(
                    "{}",
                    golive_report::render_html(rb, row, &events, jiff::Timestamp::now())
                ),
                "json" => println!(
                    "{}",
                    serde_json::to_string_pretty(&golive_report::report_json(row, &events))
                        .unwrap_or_default()
                ),
                other => {
                    return Err(Error::Failed(format!(
                        "report: format `{other}` is not available yet (md, json)"
                    )));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// Arguments of `golive done`.
pub struct Done<'a> {
    pub store: &'a str,
    pub deployment: Option<&'a str>,
    pub done: golive_deploy::Done<'a>,
}

pub async fn done(a: Done<'_>) -> Result<ExitCode, String> {
    exit(async {
        let d = open(a.store, a.deployment).await?;
        match d.done(&a.done, &Cli).await? {
            Ok(s) => {
                say(golive_report::said::step_done(&s));
                crate::notify::after(&d, &Cli).await;
                Ok(ExitCode::SUCCESS)
            }
            Err(golive_deploy::NotDone::DoneMeanwhile(step)) => {
                eprintln!(
                    "golive: {} was recorded done by another command while its commands ran; their run is recorded, not a second step.done",
                    d.rb.items[step].address
                );
                Ok(ExitCode::from(1))
            }
        }
    }
    .await)
}

/// `golive gate [DEPLOYMENT] smoke|verification --as NAME`.
pub async fn gate(
    location: &str,
    id: Option<&str>,
    which: &str,
    name: &str,
    roster: Option<&Path>,
) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(location, id).await?;
            let g = d.gate(which, name, roster, &Cli).await?;
            say(golive_report::said::gate(&g));
            crate::notify::after(&d, &Cli).await;
            Ok(if g.raised == Raised::Nothing {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        .await,
    )
}

/// `golive rollback [DEPLOYMENT] --as NAME --role ROLE --reason TEXT`.
#[allow(clippy::too_many_arguments)]
pub async fn rollback(
    location: &str,
    id: Option<&str>,
    name: &str,
    role: &str,
    reason: &str,
    continue_: bool,
    roster: Option<&Path>,
    ssh_key: Option<&Path>,
) -> Result<ExitCode, String> {
    let signer = ssh_key.map(|key| {
        move |payload: &[u8]| {
            ssh_keygen_sign(key, payload).map(golive_deploy::sshsig::Signed::over_given)
        }
    });
    let signer = signer
        .as_ref()
        .map(|f| f as golive_deploy::sshsig::Signer<'_>);
    exit(
        async {
            let d = open(location, id).await?;
            if continue_ {
                let c = d
                    .continue_signed(name, role, reason, roster, signer, &Cli)
                    .await?;
                say(golive_report::said::continued(&c, name, role));
                crate::notify::after(&d, &Cli).await;
                return Ok(ExitCode::SUCCESS);
            }
            let r = d
                .rollback_signed(name, role, reason, roster, signer, &Cli)
                .await?;
            say(golive_report::said::rolled_back(&r));
            crate::notify::after(&d, &Cli).await;
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// `golive finish [DEPLOYMENT] --as NAME`.
pub async fn finish(
    location: &str,
    id: Option<&str>,
    name: &str,
    roster: Option<&Path>,
    ssh_key: Option<&Path>,
) -> Result<ExitCode, String> {
    let signer = ssh_key.map(|key| {
        move |payload: &[u8]| {
            ssh_keygen_sign(key, payload).map(golive_deploy::sshsig::Signed::over_given)
        }
    });
    let signer = signer
        .as_ref()
        .map(|f| f as golive_deploy::sshsig::Signer<'_>);
    exit(
        async {
            let d = open(location, id).await?;
            let f = d
                .finish_signed(name, roster, jiff::Timestamp::now(), signer, &Cli)
                .await?;
            say(golive_report::said::finished(d.id(), &f));
            crate::notify::after(&d, &Cli).await;
            Ok(ExitCode::SUCCESS)
        }
        .await,
    )
}

/// `golive audit verify [ID] [--head SEQ:HASH]`.
pub async fn verify(
    location: &str,
    id: Option<&str>,
    kept: Option<&golive_store::Head>,
) -> Result<ExitCode, String> {
    use golive_deploy::record::KeptCheck;
    let store = golive_deploy::open_store(location)
        .await
        .map_err(|e| e.to_string())?;
    let v = golive_deploy::record::verify(&store, id, kept).await?;
    let d = &v.deployment;
    match &v.chain {
        Ok(n) => {
            println!(
                "{}: {n} events, chain intact (head {}){}{}",
                d.id,
                d.head(),
                kept.map(|k| format!(", reaches the kept head {k}"))
                    .unwrap_or_default(),
                if v.kept == KeptCheck::Equal {
                    ", kept state equal to its replay"
                } else {
                    ""
                }
            );
            if !d.row_covered() {
                println!(
                    "{}: deployment row not covered (created by an older golive): its runbook hash and variables are not part of the chain",
                    d.id
                );
            }
        }
        Err(violation) => {
            println!("{}: TAMPERED: {violation}", d.id);
            return Ok(ExitCode::from(1));
        }
    }
    let rebuild = format!(
        "`golive audit rebuild {}` writes it again from the chain",
        d.id
    );
    match &v.kept {
        KeptCheck::Equal | KeptCheck::Empty | KeptCheck::NotCompared => {}
        KeptCheck::Missing => println!("{}: KEPT STATE MISSING: {rebuild}", d.id),
        KeptCheck::Damaged(why) => {
            println!(
                "{}: KEPT STATE DAMAGED: it does not read ({why}); {rebuild}",
                d.id
            )
        }
        KeptCheck::Behind { seq, head } => println!(
            "{}: KEPT STATE BEHIND: kept at event {seq}, the head is event {head}; {rebuild}",
            d.id
        ),
        KeptCheck::Ahead { seq, head } => println!(
            "{}: KEPT STATE AHEAD OF THE CHAIN: kept at event {seq}, the head is event {head}: events were removed from the end of the chain (and its head set back), or the state was edited; `--head` with a head kept elsewhere tells which",
            d.id
        ),
        KeptCheck::Diverged { seq } => println!(
            "{}: KEPT STATE NOT THE CHAIN'S: kept at event {seq} with another hash than the head's: the head or the state was rewritten; `--head` with a head kept elsewhere tells which",
            d.id
        ),
        KeptCheck::Differs(fields) => println!(
            "{}: KEPT STATE DIFFERS from the replay of the chain in: {}; {rebuild}",
            d.id,
            fields.join(", ")
        ),
    }
    let signed = signatures_hold(&store, d).await?;
    Ok(if v.kept.holds() && signed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The signed sign-offs of `d`, each checked against the roster's keys and
/// said; whether all hold.
async fn signatures_hold(
    store: &golive_store::Store,
    d: &golive_store::Deployment,
) -> Result<bool, String> {
    let events = store.events(&d.id).await.map_err(|e| e.to_string())?;
    if !events.iter().any(|e| e.data.get("ssh").is_some()) {
        return Ok(true);
    }
    let rb = crate::load(Path::new(&d.runbook_path))?;
    let roster = golive_deploy::roster_for(&rb, None).map_err(|e| e.to_string())?;
    let judged = golive_deploy::sshsig::judge(d, &events, &roster);
    let bad: Vec<&golive_deploy::sshsig::Judged> =
        judged.iter().filter(|j| j.verdict.is_err()).collect();
    for j in &bad {
        println!(
            "{}: SIGNATURE DOES NOT HOLD at event {} ({} by {}): {}",
            d.id,
            j.seq,
            j.item,
            j.person,
            j.verdict.as_ref().err().map(String::as_str).unwrap_or("")
        );
    }
    if bad.is_empty() {
        println!(
            "{}: {} signed sign-off(s), each verified with its signer's key on the roster ({})",
            d.id,
            judged.len(),
            roster.source
        );
    }
    Ok(bad.is_empty())
}

/// `golive audit signatures [DEPLOYMENT] --out DIR`.
pub async fn signatures(location: &str, id: Option<&str>, out: &Path) -> Result<ExitCode, String> {
    let d = open(location, id).await.map_err(|e| e.to_string())?;
    let events = d.store.events(d.id()).await.map_err(|e| e.to_string())?;
    let roster = d.roster(None).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut allowed = String::new();
    for p in roster.people.values().filter(|p| !p.ssh_keys.is_empty()) {
        for k in &p.ssh_keys {
            // the key type and data, without the comment
            let key: Vec<&str> = k.split_whitespace().take(2).collect();
            allowed.push_str(&format!(
                "{} namespaces=\"{}\" {}\n",
                golive_deploy::sshsig::principal(&p.name),
                golive_deploy::sshsig::NAMESPACE,
                key.join(" ")
            ));
        }
    }
    write("allowed_signers", &allowed)?;
    let mut commands = String::from("# Each signed sign-off, checked without golive:\n");
    let mut n = 0;
    for e in events.iter().filter(|e| e.data.get("ssh").is_some()) {
        let item = golive_deploy::sshsig::what_of(&e.kind, e.item.as_deref(), &e.data)
            .0
            .replace('/', "_");
        let base = format!("{}-{item}", e.seq);
        write(
            &format!("{base}.payload"),
            e.data["ssh"]["payload"].as_str().unwrap_or(""),
        )?;
        write(
            &format!("{base}.payload.sig"),
            &format!(
                "{}\n",
                e.data["ssh"]["signature"].as_str().unwrap_or("").trim()
            ),
        )?;
        let who = golive_deploy::sshsig::principal(e.actor.as_deref().unwrap_or(""));
        commands.push_str(&format!(
            "ssh-keygen -Y verify -f allowed_signers -I {who} -n {} -s {base}.payload.sig < {base}.payload\n",
            golive_deploy::sshsig::NAMESPACE
        ));
        n += 1;
    }
    write("VERIFY.txt", &commands)?;
    println!(
        "{}: {n} signed sign-off(s) written to {} with allowed_signers; VERIFY.txt has the ssh-keygen commands",
        d.id(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `golive audit rebuild [ID]`.
pub async fn rebuild(location: &str, id: Option<&str>) -> Result<ExitCode, String> {
    use golive_deploy::record::KeptCheck;
    let store = golive_deploy::open_store(location)
        .await
        .map_err(|e| e.to_string())?;
    let r = golive_deploy::record::rebuild(&store, id).await?;
    let was = match &r.was {
        KeptCheck::Equal => "it was equal to the replay already".to_string(),
        KeptCheck::Empty => "the deployment has no event yet".to_string(),
        KeptCheck::Missing | KeptCheck::NotCompared => "it was missing".to_string(),
        KeptCheck::Damaged(why) => format!("it was damaged ({why})"),
        KeptCheck::Behind { seq, head } => {
            format!("it was behind (kept at event {seq}, the head is event {head})")
        }
        KeptCheck::Ahead { seq, head } => {
            format!("it was ahead of the chain (kept at event {seq}, the head is event {head})")
        }
        KeptCheck::Diverged { seq } => {
            format!("it was kept at event {seq} with another hash than the head's")
        }
        KeptCheck::Differs(fields) => format!("it differed in: {}", fields.join(", ")),
    };
    if r.written {
        println!(
            "{}: kept state rebuilt from the chain's {} events: {was}",
            r.deployment, r.events
        );
    } else {
        println!(
            "{}: kept state left as it is ({} events): {was}",
            r.deployment, r.events
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How the CLI follows a run: each check's result as it comes (a bar on a
/// terminal, a line each in a log), then the lifecycle's notes and lines.
pub struct RunProgress {
    redact: golive_deploy::vars::Redactor,
    bar: Option<indicatif::ProgressBar>,
    total: u64,
}

impl RunProgress {
    pub fn new(total: usize, redact: &golive_deploy::vars::Redactor) -> RunProgress {
        use std::io::IsTerminal;
        let total = total as u64;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} checks {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        RunProgress {
            redact: redact.clone(),
            bar,
            total,
        }
    }
}

impl Listener for RunProgress {
    fn check(&self, rb: &Runbook, r: &CheckResult) {
        let line = golive_report::run::progress_line(rb, r, &self.redact);
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                if !matches!(r.outcome, golive_engine::Outcome::Passed) {
                    bar.println(line);
                }
                if bar.position() >= self.total {
                    bar.finish_and_clear();
                }
            }
            None => eprintln!("{line}"),
        }
    }
    fn held(&self, rb: &Runbook, r: &CheckResult) {
        if let golive_engine::Outcome::Skipped(why) = &r.outcome {
            eprintln!(
                "{}: {why}",
                golive_report::run::progress_line(rb, r, &self.redact)
            );
        }
    }
    fn note(&self, text: &str) {
        eprintln!("golive: {}", self.redact.clean(text));
    }
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}

/// `golive notify [DEPLOYMENT] --preview | --send`.
pub async fn notify(
    store: &str,
    deployment: Option<&str>,
    preview: bool,
    given: &[String],
) -> Result<ExitCode, String> {
    exit(
        async {
            let d = open(store, deployment).await?;
            let channels = crate::notify::channels(&d.rb, given).map_err(golive_deploy::Error::Failed)?;
            let (k, _) = golive_deploy::Kept::read(&d.store, d.id()).await?;
            if preview {
                let roster = d.roster(None).ok();
                for m in golive_deploy::notify::preview(&d.rb, &d.row, &k, jiff::Timestamp::now()) {
                    let on: Vec<String> = channels
                        .iter()
                        .filter(|c| m.goes_to(c))
                        .map(|c| c.shown())
                        .collect();
                    println!("== {} ({})", m.key, if k.notices.contains_key(&m.key) { "queued" } else { "not queued" });
                    println!("Subject: {}", m.subject);
                    if !m.to.is_empty() {
                        let to: Vec<String> = m
                            .to
                            .iter()
                            .map(|n| match roster.as_ref().and_then(|r| r.addresses(n)) {
                                Some(a) => format!("{n} <{}>", a.join(", ")),
                                None => format!("{n} (no address)"),
                            })
                            .collect();
                        println!("To: {}", to.join("; "));
                    }
                    println!(
                        "Channels: {}",
                        if on.is_empty() { "none configured".to_string() } else { on.join(", ") }
                    );
                    if m.attach_report {
                        println!("Attached: the HTML report");
                    }
                    println!();
                    print!("{}", m.body);
                    if !m.body.ends_with('\n') {
                        println!();
                    }
                    println!();
                }
                return Ok(ExitCode::SUCCESS);
            }
            if channels.is_empty() {
                return Err(golive_deploy::Error::Failed(format!(
                    "notify --send: no channel: give --notify KIND=TARGET, set {}, or write notify = [...] in the document's top golive block",
                    crate::notify::NOTIFY_ENV
                )));
            }
            let done = golive_deploy::notify::settle(&d, &crate::notify::sender(&channels), crate::notify::SETTLE, &Cli).await?;
            let (k, _) = golive_deploy::Kept::read(&d.store, d.id()).await?;
            let open: Vec<String> = golive_deploy::notify::deliveries(&k)
                .into_iter()
                .filter(|(_, ch, state, _)| state != "sent" && channels.iter().any(|c| &c.name == ch))
                .map(|(key, ch, state, detail)| format!("{key} on {ch}: {state} {detail}"))
                .collect();
            println!(
                "deployment {}: {} sent now, {} not delivered",
                d.id(),
                done.sent.len(),
                open.len()
            );
            for o in &open {
                println!("  {o}");
            }
            Ok(if open.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        .await,
    )
}

/// After `golive run`: the scheduled start recorded when one was given,
/// then what became due sent on `channels`.
pub async fn after_run(
    store: &str,
    id: &str,
    at: Option<jiff::Timestamp>,
    channels: &[golive_deploy::channel::Channel],
) -> Result<(), String> {
    if at.is_none() && channels.is_empty() {
        return Ok(());
    }
    let d = open(store, Some(id)).await.map_err(|e| e.to_string())?;
    if let Some(at) = at {
        match d.schedule(at, &Cli).await {
            Ok(()) => {}
            Err(golive_deploy::Error::Refused(r)) => eprintln!("golive: --at: {}", r.message),
            Err(e) => return Err(e.to_string()),
        }
    }
    crate::notify::settle(&d, channels, &Cli).await;
    Ok(())
}

/// Sign `payload` with `ssh-keygen -Y sign -n golive -f KEY` (a private
/// key file, or a public one whose key the agent holds): the armored
/// signature, or ssh-keygen's own words.
pub fn ssh_keygen_sign(key: &Path, payload: &[u8]) -> Result<String, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-Y",
            "sign",
            "-n",
            golive_deploy::sshsig::NAMESPACE,
            "-f",
        ])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("--ssh-key: cannot run ssh-keygen (OpenSSH 8.2 or newer signs): {e}")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(payload)
            .map_err(|e| format!("--ssh-key: ssh-keygen: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("--ssh-key: ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "--ssh-key {}: ssh-keygen -Y sign: {}",
            key.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
