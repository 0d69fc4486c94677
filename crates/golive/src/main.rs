//! golive: executable production deployment checklists.
//!
//! The binary owns printing and exit codes; the crates below it return data.
//! Exit codes: 0 success, 1 findings (lint) or failed checks, 2 bad input.

mod agent;
mod demo;
mod deploy;
mod notify;
mod remote;
mod serve;
mod vars;
mod watch;

use golive_deploy::record;
use golive_report::{loadview, run as checks, show};
use golive_sample as sample;

use clap::{Parser, Subcommand, ValueEnum};
use golive_runbook::{LintOptions, Runbook, lint, render_text};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "golive",
    version,
    about = "Executable production deployment checklists"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum RunFormat {
    Text,
    Json,
    Junit,
}

/// Variables of a run.
#[derive(clap::Args)]
struct VarArgs {
    /// Bind a placeholder: `--var DOMAIN=shop.example.test`.
    #[arg(long = "var", value_name = "K=V")]
    vars: Vec<String>,
    /// Read variables from a file: a TOML table or NAME=value lines.
    #[arg(long = "vars-file", value_name = "FILE")]
    vars_files: Vec<PathBuf>,
    /// Bind a secret placeholder from the environment or a file:
    /// `--secret API_TOKEN=env:API_TOKEN`. Its value never appears in output.
    #[arg(long = "secret", value_name = "NAME=env:VAR")]
    secrets: Vec<String>,
    /// Trust this CA (PEM) for every http and tls check that names none.
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_file: Option<String>,
    /// Ask this nameserver (ip[:port]) in every dns check that names none.
    #[arg(long, value_name = "IP[:PORT]")]
    nameserver: Option<String>,
}

impl VarArgs {
    /// Options given for the whole run, applied to each check that takes them.
    fn defaults(&self) -> toml::Table {
        let mut t = toml::Table::new();
        if let Some(ca) = &self.ca_file {
            t.insert("ca_file".into(), toml::Value::String(ca.clone()));
        }
        if let Some(ns) = &self.nameserver {
            t.insert("nameserver".into(), toml::Value::String(ns.clone()));
        }
        t
    }
}

/// A fault the demo's new version brings.
#[derive(Clone, Copy, clap::ValueEnum)]
enum DemoFault {
    ErrorRate,
    Latency,
    Down,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Verify a deployment's event chain (the newest deployment by default).
    Verify {
        deployment: Option<String>,
        /// A head printed earlier (by status, a report or an alert) and kept
        /// elsewhere: the chain must still reach it.
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<golive_store::Head>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// Write each signed sign-off of a deployment to DIR: its payload
    /// (`N-ITEM.payload`), its signature (`.sig`) and an `allowed_signers`
    /// file of the roster's keys, so `ssh-keygen -Y verify` checks each
    /// one without golive (DIR/VERIFY.txt has the commands).
    Signatures {
        deployment: Option<String>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// Write a deployment's kept state again from its chain (when `audit
    /// verify` finds it missing, damaged, behind or different), and say
    /// what was done. The chain is verified first.
    Rebuild {
        deployment: Option<String>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
}

#[derive(Subcommand)]
enum AgentsAction {
    /// Add a probe agent at a location (or move it there): prints its
    /// token once, alone on the last line.
    Add {
        name: String,
        #[arg(long, value_name = "NAME")]
        location: String,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// The agents, their locations and last heartbeats.
    List {
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Add a person (or change their roles and email) and print a new
    /// token for them, once, alone on the last line.
    Add {
        name: String,
        /// A role they hold (repeat for more); `viewer` alone only looks.
        #[arg(long = "role", required = true, value_name = "ROLE")]
        roles: Vec<String>,
        #[arg(long)]
        email: Option<String>,
        /// A public key that signs their sign-offs through the API (the
        /// line of their `.pub` file, or the file); repeatable.
        #[arg(long = "ssh-key", value_name = "KEY|FILE")]
        ssh_keys: Vec<String>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// List the people and their tokens (ids and dates, never a token).
    List {
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// Revoke a token by its id, or every token of a person by name.
    Revoke {
        id: String,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// Add the people of a roster file (`roster.toml`); prints a token for
    /// each person new to the server.
    Import {
        file: PathBuf,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
}

#[derive(Subcommand)]
enum RunbooksAction {
    /// Register a runbook's text with the store, by its SHA-256 (printed).
    Add {
        file: PathBuf,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// List the registered runbooks.
    List {
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// The war room: serve the JSON API (`/api/v1/`, described at
    /// `/openapi.json`), the live page and the event streams over the
    /// store, with golive's health contract (`/health`, `/ready`, `/live`,
    /// `/version`, `/metrics`). Stops cleanly on Ctrl-C or SIGTERM.
    Serve {
        #[arg(
            long,
            env = "GOLIVE_LISTEN",
            default_value = "127.0.0.1:8080",
            value_name = "ADDR"
        )]
        listen: std::net::SocketAddr,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        /// Serve HTTPS with this certificate chain (PEM).
        #[arg(
            long,
            env = "GOLIVE_TLS_CERT",
            value_name = "PEM",
            requires = "tls_key"
        )]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(
            long,
            env = "GOLIVE_TLS_KEY",
            value_name = "PEM",
            requires = "tls_cert"
        )]
        tls_key: Option<PathBuf>,
        /// Requests per second per client address (bursts of 4×); 0: no limit.
        #[arg(
            long,
            env = "GOLIVE_RATE_LIMIT",
            default_value_t = 50.0,
            value_name = "N"
        )]
        rate_limit: f64,
        /// The largest request body accepted, in bytes.
        #[arg(
            long,
            env = "GOLIVE_BODY_LIMIT",
            default_value_t = 65536,
            value_name = "BYTES"
        )]
        body_limit: usize,
        /// Mark the session cookie Secure (on with --tls-cert; say it behind
        /// a TLS-terminating proxy).
        #[arg(long, env = "GOLIVE_SECURE_COOKIE")]
        secure_cookie: bool,
        /// Log one JSON object per line (else plain lines).
        #[arg(long, env = "GOLIVE_LOG_JSON")]
        log_json: bool,
        /// Send every deployment's communication plan on these channels
        /// (`slack=URL`, `teams=URL`, `webhook=URL`,
        /// `email=smtp://[USER@]HOST:PORT?from=ADDR`; repeatable); default:
        /// GOLIVE_NOTIFY.
        #[arg(long = "notify", value_name = "KIND=TARGET")]
        notify: Vec<String>,
        /// A proxy that authenticates people (oauth2-proxy and the like):
        /// its address or range (`10.0.0.0/8`); repeatable. Only from these
        /// is --identity-header believed.
        #[arg(
            long = "trusted-proxy",
            env = "GOLIVE_TRUSTED_PROXIES",
            value_delimiter = ',',
            value_name = "CIDR",
            requires = "identity_header"
        )]
        trusted_proxies: Vec<String>,
        /// The header the trusted proxy names the person in (their email or
        /// their name on the server): `X-Forwarded-Email`. From any other
        /// address the header is refused and logged.
        #[arg(
            long,
            env = "GOLIVE_IDENTITY_HEADER",
            value_name = "HEADER",
            requires = "trusted_proxies"
        )]
        identity_header: Option<String>,
        /// A roster file whose `[groups]` say who the names the
        /// communication plans send to stand for (`"Executive team" =
        /// ["cto@example.test"]`); the people stay the server's.
        #[arg(long, env = "GOLIVE_GROUPS", value_name = "FILE")]
        groups: Option<PathBuf>,
        /// How long a browser's login lasts, in hours (single sign-on's
        /// sessions also end when the provider's session does).
        #[arg(
            long,
            env = "GOLIVE_SESSION_HOURS",
            default_value_t = 12,
            value_name = "HOURS"
        )]
        session_hours: i64,
        /// How long a location's probe agents may be quiet before its
        /// checks are given up as could not observe, and alerted.
        #[arg(
            long,
            env = "GOLIVE_AGENT_WINDOW",
            default_value = "30s",
            value_name = "DURATION"
        )]
        agent_window: String,
        #[command(flatten)]
        oidc: serve::OidcArgs,
    },
    /// The communication plan of a deployment: `--preview` prints every
    /// message it sends, with its recipients and channels, sending
    /// nothing; `--send` delivers what is queued or due (retrying failed
    /// deliveries). Exit 0 all delivered, 1 some not, 2 bad input.
    Notify {
        /// The deployment (default: the newest).
        deployment: Option<String>,
        #[arg(long, conflicts_with = "send")]
        preview: bool,
        #[arg(long)]
        send: bool,
        /// The channels (default: GOLIVE_NOTIFY, and the document's).
        #[arg(long = "notify", value_name = "KIND=TARGET")]
        notify: Vec<String>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// The server's people and their tokens.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// The server's probe agents and their tokens.
    Agents {
        #[command(subcommand)]
        action: AgentsAction,
    },
    /// A probe agent: claims the checks of its location from a server, runs
    /// them from here, and posts their results; it only calls out (HTTPS),
    /// and keeps results while the server is unreachable. Stops cleanly on
    /// Ctrl-C or SIGTERM.
    Agent {
        /// The server (`golive serve`).
        #[arg(long, env = "GOLIVE_SERVER", value_name = "URL")]
        server: String,
        /// The agent's token (`golive agents add` printed it).
        #[arg(long, env = "GOLIVE_AGENT_TOKEN", hide_env_values = true)]
        token: String,
        /// Where it runs: the location the server knows it at.
        #[arg(long, env = "GOLIVE_LOCATION", value_name = "NAME")]
        location: String,
        /// How many checks it runs at once.
        #[arg(
            long,
            env = "GOLIVE_CONCURRENCY",
            default_value_t = 4,
            value_name = "N"
        )]
        concurrency: usize,
        /// How often it beats its heart and, when idle, looks for checks.
        #[arg(
            long,
            env = "GOLIVE_EVERY",
            default_value = "2s",
            value_name = "DURATION"
        )]
        every: String,
        /// A CA certificate (PEM) to verify the server's HTTPS with.
        #[arg(long, env = "GOLIVE_SERVER_CA", value_name = "PEM")]
        server_ca: Option<String>,
        /// Log one JSON object per line (else plain lines).
        #[arg(long, env = "GOLIVE_LOG_JSON")]
        log_json: bool,
        /// Serve the agent's own `/metrics` (Prometheus text) and `/live`
        /// here, for the machine's monitoring (an address it listens on,
        /// the one thing it does not call out for).
        #[arg(long, env = "GOLIVE_METRICS_LISTEN", value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        vars: VarArgs,
    },
    /// The runbooks registered with the store (what a server deploys from).
    Runbooks {
        #[command(subcommand)]
        action: RunbooksAction,
    },
    /// Check a runbook for faults: declared counts, annotations, unbound
    /// placeholders, unclosed fences, skipped heading levels; warn of repeated
    /// titles and suggested blocks not reviewed yet. Exit 0 no error, 1 an
    /// error, 2 unreadable input.
    Lint {
        /// The Markdown runbook.
        file: PathBuf,
        /// Bind a placeholder: `--var DOMAIN=example.test`. With any variable
        /// given, every placeholder used in a command block must be bound.
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The channels a deployment will send on (default: GOLIVE_NOTIFY):
        /// with email among them, a recipient the roster has no address
        /// for is a finding.
        #[arg(long = "notify", value_name = "KIND=TARGET")]
        notify: Vec<String>,
    },
    /// List what `golive run` would check, with resolved targets, and which
    /// items stay manual.
    Plan {
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Only these items, groups or stages (id or address); repeatable.
        #[arg(long)]
        only: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run every automated check of a runbook against the real systems.
    /// Exit 0: all passed; 1: a check failed or could not observe; 2: bad input.
    Run {
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Only these items, groups or stages (id or address); repeatable.
        #[arg(long)]
        only: Vec<String>,
        /// How many checks run at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Run `command` checks (they execute shell commands).
        #[arg(long)]
        allow_commands: bool,
        #[arg(long, value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
        /// Where the deployment is recorded: a SQLite path, `sqlite://PATH`
        /// or `postgres://…`.
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        /// Start a new deployment even when one of this runbook is open.
        #[arg(long, conflicts_with = "deployment")]
        new: bool,
        /// Continue this deployment (default: the open one of this runbook).
        #[arg(long)]
        deployment: Option<String>,
        /// Run again the commands an interrupted run had started.
        #[arg(long)]
        confirm_rerun: bool,
        /// The deployment's scheduled start (RFC 3339, `2026-12-02T14:00:00Z`):
        /// the communication plan's announcement and support alert go now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Send the communication plan's messages: `slack=URL`, `teams=URL`,
        /// `webhook=URL`, `email=smtp://[USER@]HOST:PORT?from=ADDR` (a
        /// target may be `env:NAME`); repeatable. Default: GOLIVE_NOTIFY.
        #[arg(long = "notify", value_name = "KIND=TARGET")]
        notify: Vec<String>,
    },
    /// Sign items of a deployment as a person holding their Responsible
    /// role: `golive sign [--deployment ID] ITEM… --as NAME --role ROLE`.
    /// An ITEM is an item, or a group or stage by address (`2.1`, `3.*`):
    /// each of its items signed, each its own event; one refusal and none is
    /// recorded. `--na` (not applicable) and `--failed` (checked, and it
    /// failed) need `--comment`, as does signing done over failing checks.
    /// Exit 0 recorded, 1 refused (nothing recorded), 2 bad input.
    Sign {
        /// `ITEM…`; a first name that is a deployment id (`d-…`) picks that
        /// deployment (default: the newest).
        #[arg(num_args = 1.., value_name = "ITEM")]
        names: Vec<String>,
        /// The deployment (default: the newest).
        #[arg(long)]
        deployment: Option<String>,
        /// Who acts (not with --server: the token says who).
        #[arg(long = "as", value_name = "NAME", required_unless_present = "server")]
        name: Option<String>,
        /// The role to act in (with --server: by default the one the item,
        /// the decision or the rollback asks, when the person holds it).
        #[arg(long, required_unless_present = "server")]
        role: Option<String>,
        /// Not applicable to this deployment (why, in --comment).
        #[arg(long, conflicts_with = "failed")]
        na: bool,
        /// Checked, and it failed (what, in --comment).
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        comment: Option<String>,
        /// A file kept as evidence (its SHA-256 and size are recorded).
        #[arg(long)]
        evidence: Vec<PathBuf>,
        /// People and roles (TOML); default: roster.toml beside the runbook,
        /// else the document's Contact Information.
        #[arg(long)]
        roster: Option<PathBuf>,
        /// Sign each sign-off with this SSH key (`ssh-keygen -Y sign -n
        /// golive`; a private key file, or a public one whose key the agent
        /// holds): it must be one of the person's `ssh_keys` on the roster.
        #[arg(long, value_name = "FILE")]
        ssh_key: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Sign a stage that names the roles signing it (the Final Sign-off's
    /// role blocks or sign-off table), once the deployment has ended.
    #[command(name = "sign-off")]
    SignOff {
        /// `[DEPLOYMENT] [STAGE]`: the stage by address or id; default the
        /// last stage with signers.
        #[arg(num_args = 0..=2, value_name = "[DEPLOYMENT] [STAGE]")]
        names: Vec<String>,
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        roster: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// Set aside an item the document marks optional (`(if needed)`,
    /// `(optional)` …), with the reason: it counts as complete and leaves the
    /// gates' counts.
    Skip {
        /// `DEPLOYMENT ITEM`, or `ITEM` alone for the newest deployment.
        #[arg(num_args = 1..=2, value_name = "[DEPLOYMENT] ITEM")]
        names: Vec<String>,
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        roster: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// Choose the option of a "choose one" group (`Deployment Pattern: Choose
    /// One` over `#### Option A: …`): its items are required, the other
    /// options' set aside.
    Choose {
        /// `[DEPLOYMENT] OPTION`: `GROUP/N` (as `2.1/3`), or the option's
        /// title or slug.
        #[arg(num_args = 1..=2, value_name = "[DEPLOYMENT] OPTION")]
        names: Vec<String>,
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        roster: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// Sign the go/no-go decision: `golive decide [DEPLOYMENT] go|no-go --as
    /// NAME --role ROLE [--reason …]`. GO needs every pre-deployment item
    /// complete; the decision needs the distinct people the document names.
    Decide {
        /// `[DEPLOYMENT] go|no-go`.
        #[arg(num_args = 1..=2, value_name = "[DEPLOYMENT] go|no-go")]
        names: Vec<String>,
        /// Who acts (not with --server: the token says who).
        #[arg(long = "as", value_name = "NAME", required_unless_present = "server")]
        name: Option<String>,
        /// The role to act in (with --server: by default the one the item,
        /// the decision or the rollback asks, when the person holds it).
        #[arg(long, required_unless_present = "server")]
        role: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        roster: Option<PathBuf>,
        /// Sign the decision with this SSH key (`ssh-keygen -Y sign -n
        /// golive`): it must be one of the person's `ssh_keys` on the roster.
        #[arg(long, value_name = "FILE")]
        ssh_key: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Mark a procedure step done (after GO, in document order):
    /// `golive done [DEPLOYMENT] STEP --as NAME [--skipped] [--comment …]`.
    Done {
        /// `[DEPLOYMENT] STEP`.
        #[arg(num_args = 1..=2, value_name = "[DEPLOYMENT] STEP")]
        names: Vec<String>,
        /// Who acts (not with --server: the token says who).
        #[arg(long = "as", value_name = "NAME", required_unless_present = "server")]
        name: Option<String>,
        /// Record an optional step (or a step of an optional phase) as skipped.
        #[arg(long, conflicts_with = "run")]
        skipped: bool,
        /// Run the step's command blocks first; the step is done when they
        /// succeed (needs --allow-commands).
        #[arg(long)]
        run: bool,
        #[arg(long)]
        allow_commands: bool,
        /// Run again a step an interrupted run had started.
        #[arg(long)]
        confirm_rerun: bool,
        #[command(flatten)]
        vars: VarArgs,
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        roster: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Evaluate a gate from the record: `golive gate [DEPLOYMENT]
    /// smoke|verification --as NAME`. Exit 0 pass, 1 fail (the rollback
    /// decision is raised).
    Gate {
        #[arg(num_args = 1..=2, value_name = "[DEPLOYMENT] smoke|verification")]
        names: Vec<String>,
        /// Who acts (not with --server: the token says who).
        #[arg(long = "as", value_name = "NAME", required_unless_present = "server")]
        name: Option<String>,
        #[arg(long)]
        roster: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Start the rollback with the authority the document names.
    Rollback {
        deployment: Option<String>,
        /// Who acts (not with --server: the token says who).
        #[arg(long = "as", value_name = "NAME", required_unless_present = "server")]
        name: Option<String>,
        /// The role to act in (with --server: by default the one the item,
        /// the decision or the rollback asks, when the person holds it).
        #[arg(long, required_unless_present = "server")]
        role: Option<String>,
        #[arg(long)]
        reason: String,
        /// Decide, with the reason, not to roll back the raised decision:
        /// signed by every role of the manual rollback authority, then the
        /// deployment goes on.
        #[arg(long = "continue")]
        continue_: bool,
        #[arg(long)]
        roster: Option<PathBuf>,
        /// Sign with this SSH key (`ssh-keygen -Y sign -n golive`; a
        /// private key file, or a public one whose key the agent holds): it
        /// must be one of the person's `ssh_keys` on the roster.
        #[arg(long, value_name = "FILE")]
        ssh_key: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// End a deployment: SUCCESS once every step is done and the gates
    /// passed (refused while a rollback decision is open), or ROLLED BACK
    /// once the rollback is done.
    Finish {
        deployment: Option<String>,
        /// Who acts (not with --server: the token says who).
        #[arg(long = "as", value_name = "NAME", required_unless_present = "server")]
        name: Option<String>,
        #[arg(long)]
        roster: Option<PathBuf>,
        /// Sign with this SSH key (`ssh-keygen -Y sign -n golive`; a
        /// private key file, or a public one whose key the agent holds): it
        /// must be one of the person's `ssh_keys` on the roster.
        #[arg(long, value_name = "FILE")]
        ssh_key: Option<PathBuf>,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// A recorded deployment as a document: `md` is the runbook filled in
    /// (boxes ticked, measured values, signers and dates, the Checklist
    /// Summary); `json` the deployment and its events.
    Report {
        deployment: Option<String>,
        #[arg(long, default_value = "md", value_parser = ["md", "json", "junit", "html"])]
        format: String,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// The state of a deployment (the newest by default): items complete per
    /// group as the Checklist Summary counts them, pending sign-offs, checks.
    Status {
        deployment: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print the document's Status Update Template, filled from the live
        /// state (phase, progress, ETA, issues, next).
        #[arg(long)]
        message: bool,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// The tamper-evident record: `golive audit verify [DEPLOYMENT]` walks a
    /// deployment's event chain and names the first row that was edited,
    /// deleted or reordered. Exit 0 intact, 1 tampered, 2 no such store or
    /// deployment.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Run one probe ad hoc and print what it observed, as curl, dig or
    /// `openssl s_client` would: `golive probe tls shop.example.test:443`.
    Probe {
        /// http, tls, dns, tcp, command, file or load.
        kind: String,
        /// What to probe: a URL, host:port, name, path or command.
        target: String,
        /// Probe options: `record=AAAA`, `nameserver=127.0.0.1:53`, `insecure=true`.
        #[arg(value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// A CEL condition over the observation; exit 1 when it is false.
        #[arg(long)]
        expect: Option<String>,
        /// How long the probe may take (default: 10s; 10m for load).
        #[arg(long)]
        timeout: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// load: the number of requests (default 100 without --duration).
        #[arg(long, short = 'n')]
        requests: Option<u64>,
        /// load: requests in flight at once, one connection each.
        #[arg(long, short = 'c')]
        concurrency: Option<u64>,
        /// load: the threads that drive the connections, from 1 to the
        /// concurrency (default: one per 25 connections, at most one per core).
        #[arg(long, short = 't')]
        threads: Option<u64>,
        /// load: run for this long (`10s`, `1m`) instead of a count.
        #[arg(long, short = 'z')]
        duration: Option<String>,
        /// load: a fixed rate, requests per second (latency is then measured
        /// from when each request was due).
        #[arg(long, short = 'q')]
        rate: Option<f64>,
        /// load: speak HTTP/2 (ALPN over TLS, prior knowledge over http).
        #[arg(long)]
        http2: bool,
    },
    /// Hypercare: run the watched checks on an interval into the
    /// deployment's record, with sustained-rule windows (`for`), alerts on
    /// changes, and a daily health-check report.
    Watch {
        /// A runbook file (its newest deployment) or a deployment id.
        target: String,
        /// How often the checks run.
        #[arg(long, default_value = "30s")]
        interval: String,
        /// Stop after this many evaluations (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
        /// Repeat an alert this often while it stays firing.
        #[arg(long, default_value = "1h")]
        remind: String,
        /// Send alerts to `slack=URL` or `pagerduty=URL` (routing key from
        /// GOLIVE_PAGERDUTY_ROUTING_KEY); repeatable.
        #[arg(long = "webhook", value_name = "KIND=URL")]
        webhooks: Vec<String>,
        /// Send the communication plan's messages (what becomes due, the
        /// retries) after each evaluation: `slack=URL`, `teams=URL`,
        /// `webhook=URL`, `email=smtp://…`; repeatable. Default:
        /// GOLIVE_NOTIFY and the document's.
        #[arg(long = "notify", value_name = "KIND=TARGET")]
        notify: Vec<String>,
        /// Where the daily health-check reports go (default: `hypercare/`
        /// beside the store).
        #[arg(long)]
        report_dir: Option<PathBuf>,
        /// Watch only these items, groups or stages; repeatable.
        #[arg(long)]
        only: Vec<String>,
        #[command(flatten)]
        vars: VarArgs,
        #[arg(long, env = "GOLIVE_STORE", default_value = record::DEFAULT_STORE)]
        store: String,
    },
    /// A whole deployment on this machine: the sample service at v1.0.0,
    /// the demo runbook through every stage to v1.1.0 (or, with --fault,
    /// to a rollback), then the reports. Exit 0 SUCCESS, 3 ROLLED BACK.
    Demo {
        /// Make v1.1.0 misbehave: error-rate, latency or down.
        #[arg(long, value_enum)]
        fault: Option<DemoFault>,
        /// Leave the sample service running afterwards.
        #[arg(long)]
        keep: bool,
        /// Where the reports and the store go (default: a new folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Another runbook than the built-in demo one.
        #[arg(long)]
        runbook: Option<PathBuf>,
        /// Send the communication plan's messages (status updates, the
        /// completion or rollback notice, the report) on these channels:
        /// `slack=URL`, `teams=URL`, `webhook=URL`, `email=smtp://…`;
        /// repeatable.
        #[arg(long = "notify", value_name = "KIND=TARGET")]
        notify: Vec<String>,
    },
    /// One call of a running sample service's admin API:
    /// `golive sample-admin DIR ACTION [ARG]` (version V, maintenance
    /// on|off, snapshot, restore [NAME], cache/clear, faults JSON, webhook URL).
    SampleAdmin {
        /// The sample service's folder (its --dir).
        dir: PathBuf,
        action: String,
        arg: Option<String>,
    },
    /// A sample service honouring the reference checklist's contract, on
    /// 127.0.0.1: HTTPS with a CA made at start, health endpoints, a login,
    /// metrics, a rate limit, maintenance mode, and an admin API that switches
    /// the version and injects faults (docs/sample-service.md).
    SampleService {
        /// The HTTPS address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// The plain HTTP address (it redirects to HTTPS).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http_listen: std::net::SocketAddr,
        #[arg(long, default_value = "v1.0.0")]
        version: String,
        /// Its data, CA, admin token and snapshots (default: a new folder
        /// under the system's temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where `/api/v1/test-alert` delivers (a Slack-compatible webhook).
        #[arg(long)]
        webhook: Option<String>,
        /// Requests to /api/… per address per minute.
        #[arg(long, default_value_t = 60)]
        rate_limit: u64,
    },
    /// Show what golive reads in a runbook: stages, groups, items with their
    /// sub-checks, fields, blanks and commands, and every placeholder.
    Show {
        /// The Markdown runbook.
        file: PathBuf,
        /// Show one item only: by id, address (1.2.3) or unique id suffix.
        item: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Propose `golive` blocks for items whose words or commands name
    /// something a probe checks; prints a unified diff. Each block is marked
    /// `suggested` and does not run until a person reviews it and removes
    /// that line.
    Suggest {
        /// The Markdown runbook.
        file: PathBuf,
        /// Insert the blocks into the file (no other byte changes) instead of
        /// printing the diff.
        #[arg(long)]
        write: bool,
    },
}

fn main() -> ExitCode {
    quiet_when_the_reader_leaves();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("golive: {msg}");
            ExitCode::from(2)
        }
    }
}

/// The exit status of a command whose reader closed its output, as SIGPIPE
/// gives a shell (128 + 13).
const READER_LEFT: u8 = 141;

/// `golive show … | head` closes golive's standard output early; printing
/// then fails, and Rust's print macros panic. End the way Unix tools do when
/// their reader has gone (the exit status SIGPIPE would give), with no panic
/// message and no stack trace. Any other panic is reported as before.
fn quiet_when_the_reader_leaves() {
    // (a write that returns its error instead of panicking ends the same way)
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload_as_str().unwrap_or_default();
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(i32::from(READER_LEFT));
        }
        report(info);
    }));
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    if let Some(done) = through_server(&cli.command) {
        return done;
    }
    match cli.command {
        Command::Lint {
            file,
            vars,
            format,
            notify: notify_specs,
        } => {
            let rb = load(&file)?;
            let channels = notify::channels(&rb, &notify_specs)?;
            let vars = parse_vars(&vars)?;
            let opts = LintOptions {
                vars: (!vars.is_empty()).then_some(vars),
            };
            let mut diags = lint(&rb, &opts);
            let given: Vec<String> = opts.vars.iter().flat_map(|v| v.keys().cloned()).collect();
            diags.extend(golive_engine::lint::lint_checks(
                &rb,
                opts.vars.is_some().then_some(given.as_slice()),
            ));
            // what a deployment will use, and why one could not complete
            let ready = golive_deploy::roster_for(&rb, None)
                .map(|roster| golive_deploy::lifecycle::readiness(&rb, &roster));
            let at = rb
                .lines
                .loc(&rb.source, 0, rb.source.find('\n').unwrap_or(0));
            match &ready {
                Ok(r) => diags.extend(r.blockers.iter().map(|b| golive_runbook::Diagnostic {
                    severity: golive_runbook::Severity::Warning,
                    code: "cannot-complete",
                    message: format!("a deployment of this document cannot complete: {b}"),
                    loc: at,
                    label: None,
                    help: Some("docs/deployments.md, \"Sign-offs\", shows the roster".into()),
                })),
                Err(e) => diags.push(golive_runbook::Diagnostic {
                    severity: golive_runbook::Severity::Warning,
                    code: "cannot-complete",
                    message: format!("the roster cannot be read: {e}"),
                    loc: at,
                    label: None,
                    help: None,
                }),
            }
            if let Some(email) = channels.iter().find(|c| c.needs_addresses())
                && let Ok(roster) = golive_deploy::roster_for(&rb, None)
            {
                for (name, loc) in golive_deploy::notify::unaddressed(&rb, &roster) {
                    diags.push(golive_runbook::Diagnostic {
                        severity: golive_runbook::Severity::Warning,
                        code: "unaddressed-recipient",
                        message: format!(
                            "{name} has no email address, and the plan sends by {}",
                            email.shown()
                        ),
                        loc,
                        label: None,
                        help: Some(format!(
                            "name its addresses in {}: [groups] \"{name}\" = [\"someone@example.test\"], or give the people holding the role a contact",
                            roster.file.display()
                        )),
                    });
                }
            }
            diags.sort_by(|a, b| a.loc.start.cmp(&b.loc.start).then(a.code.cmp(b.code)));
            match format {
                Format::Text => {
                    print!("{}", render_text(&rb.path, &rb.source, &diags));
                    if let Ok(r) = &ready {
                        println!("{}: a deployment will use:", rb.path);
                        for line in r.lines() {
                            println!("  {line}");
                        }
                    }
                    if diags.is_empty() {
                        println!("{}: no findings", rb.path);
                    } else {
                        println!(
                            "{}: {} finding{}",
                            rb.path,
                            diags.len(),
                            if diags.len() == 1 { "" } else { "s" }
                        );
                    }
                }
                Format::Json => {
                    let v = serde_json::json!({
                        "file": rb.path,
                        "deployment": ready.as_ref().ok().map(|r| r.lines()),
                        "findings": diags.iter().map(|d| serde_json::json!({
                            "severity": d.severity,
                            "code": d.code,
                            "message": d.message,
                            "line": d.loc.line,
                            "column": d.loc.col,
                            "start": d.loc.start,
                            "end": d.loc.end,
                            "label": d.label,
                            "help": d.help,
                        })).collect::<Vec<_>>(),
                    });
                    println!("{}", pretty(&v));
                }
            }
            // warnings say what was read unusually; only errors fail lint
            let errors = diags
                .iter()
                .any(|d| d.severity == golive_runbook::Severity::Error);
            Ok(if errors {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Plan {
            file,
            vars,
            only,
            format,
        } => {
            let (rb, plan, redact, _) = prepare(&file, &vars, &only)?;
            if !plan.problems.is_empty() {
                eprint!("{}", checks::render_problems(&rb, &plan, &redact));
                return Ok(ExitCode::from(2));
            }
            match format {
                Format::Text => print!("{}", checks::plan_text(&rb, &plan, &redact)),
                Format::Json => println!("{}", pretty(&checks::plan_json(&rb, &plan, &redact))),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            file,
            vars,
            only,
            concurrency,
            allow_commands,
            format,
            store,
            new,
            deployment,
            confirm_rerun,
            at,
            notify: notify_specs,
        } => {
            let (rb, plan, redact, bound) = prepare(&file, &vars, &only)?;
            let channels = notify::channels(&rb, &notify_specs)?;
            let at = at
                .map(|t| {
                    t.parse::<jiff::Timestamp>().map_err(|e| {
                        format!("--at `{t}`: {e}; write RFC 3339 such as 2026-12-02T14:00:00Z")
                    })
                })
                .transpose()?;
            if !plan.problems.is_empty() {
                eprint!("{}", checks::render_problems(&rb, &plan, &redact));
                eprintln!(
                    "golive: {} finding(s) keep the runbook from running as written; nothing was run",
                    plan.problems.len()
                );
                return Ok(ExitCode::from(2));
            }
            let rt = runtime()?;
            let progress =
                std::sync::Arc::new(deploy::RunProgress::new(plan.checks.len(), &redact));
            let outcome = rt.block_on(record::run(
                &rb,
                &plan,
                &redact,
                &record::Run {
                    store: &store,
                    only: &only,
                    opts: golive_engine::RunOptions {
                        concurrency,
                        allow_commands,
                        // the deployment's record decides: recorded or compared
                        baselines: Default::default(),
                    },
                    new,
                    deployment: deployment.as_deref(),
                    confirm_rerun,
                    vars: &bound,
                },
                progress,
            ))?;
            rt.block_on(deploy::after_run(
                &store,
                &outcome.deployment,
                at,
                &channels,
            ))?;
            let (results, stop) = (outcome.results, outcome.stop);
            match format {
                RunFormat::Text => {
                    print!("{}", checks::run_text(&rb, &results, &plan.manual, &redact))
                }
                RunFormat::Json => println!(
                    "{}",
                    pretty(&checks::run_json(&rb, &results, &plan.manual, &redact))
                ),
                RunFormat::Junit => print!("{}", checks::run_junit(&rb, &results, &redact)),
            }
            let bad = results.iter().any(|r| {
                matches!(
                    r.outcome,
                    golive_engine::Outcome::Failed | golive_engine::Outcome::Error(_)
                )
            });
            let bad = bad || matches!(stop, golive_deploy::procedure::Stop::Failed(..));
            Ok(if bad {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Audit {
            action:
                AuditAction::Verify {
                    deployment,
                    head,
                    store,
                },
        } => runtime()?.block_on(deploy::verify(&store, deployment.as_deref(), head.as_ref())),
        Command::Audit {
            action:
                AuditAction::Signatures {
                    deployment,
                    out,
                    store,
                },
        } => runtime()?.block_on(deploy::signatures(&store, deployment.as_deref(), &out)),
        Command::Audit {
            action: AuditAction::Rebuild { deployment, store },
        } => runtime()?.block_on(deploy::rebuild(&store, deployment.as_deref())),
        Command::Serve {
            listen,
            store,
            tls_cert,
            tls_key,
            rate_limit,
            body_limit,
            secure_cookie,
            log_json,
            notify: notify_specs,
            trusted_proxies,
            identity_header,
            groups,
            session_hours,
            agent_window,
            oidc,
        } => {
            let mut cfg = golive_server::Config::new(listen, &store);
            if session_hours < 1 {
                return Err(format!(
                    "--session-hours {session_hours}: a login lasts at least 1 hour"
                ));
            }
            cfg.session_hours = session_hours;
            cfg.agent_window = golive_probe::parse_duration(&agent_window)
                .map_err(|e| format!("--agent-window {agent_window}: {e}"))?;
            cfg.oidc = oidc.config()?;
            // one secret for every replica's proxy CSRF tokens, when given
            cfg.csrf_secret = std::env::var("GOLIVE_CSRF_SECRET")
                .ok()
                .filter(|s| s.trim().len() >= 16)
                .map(|s| s.trim().as_bytes().to_vec());
            cfg.notify = notify::server_channels(&notify_specs)?;
            cfg.trusted_proxies = trusted_proxies
                .iter()
                .map(|c| golive_server::auth::Cidr::parse(c))
                .collect::<Result<_, _>>()?;
            cfg.identity_header = identity_header
                .as_deref()
                .map(golive_server::auth::identity_header)
                .transpose()?;
            if let Some(f) = groups {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| format!("--groups {}: {e}", f.display()))?;
                cfg.groups = golive_engine::roster::Roster::groups_from_toml(
                    &text,
                    &f.display().to_string(),
                )?;
            }
            cfg.secure_cookie = secure_cookie || tls_cert.is_some();
            cfg.tls = tls_cert.zip(tls_key);
            cfg.rate = golive_server::limit::Rate {
                per_second: rate_limit,
                burst: rate_limit * 4.0,
            };
            cfg.body_limit = body_limit;
            runtime()?.block_on(serve::serve(cfg, log_json))
        }
        Command::Notify {
            deployment,
            preview,
            send,
            notify: specs,
            store,
        } => {
            if !preview && !send {
                return Err("notify: say --preview (print, send nothing) or --send".into());
            }
            runtime()?.block_on(deploy::notify(
                &store,
                deployment.as_deref(),
                preview,
                &specs,
            ))
        }
        Command::Agents { action } => {
            let rt = runtime()?;
            match action {
                AgentsAction::Add {
                    name,
                    location,
                    store,
                } => rt.block_on(serve::agents_add(&store, &name, &location)),
                AgentsAction::List { store } => rt.block_on(serve::agents_list(&store)),
            }
        }
        Command::Agent {
            server,
            token,
            location,
            concurrency,
            every,
            server_ca,
            log_json,
            metrics_listen,
            vars,
        } => {
            let every = golive_probe::parse_duration(&every)
                .map_err(|e| format!("--every {every}: {e}"))?;
            let bound = vars::bind(&vars.vars, &vars.vars_files, &vars.secrets)?;
            let settings = agent::Settings {
                server,
                token,
                location,
                concurrency: concurrency.clamp(1, 256),
                ca: server_ca,
                vars: bound,
                defaults: vars.defaults(),
                every,
                metrics_listen,
            };
            serve::init_log(log_json);
            runtime()?.block_on(agent::run(settings, serve::stopped()))
        }
        Command::Users { action } => {
            let rt = runtime()?;
            match action {
                UsersAction::Add {
                    name,
                    roles,
                    email,
                    ssh_keys,
                    store,
                } => rt.block_on(serve::users_add(
                    &store,
                    &name,
                    &roles,
                    email.as_deref(),
                    &ssh_keys,
                )),
                UsersAction::List { store } => rt.block_on(serve::users_list(&store)),
                UsersAction::Revoke { id, store } => rt.block_on(serve::users_revoke(&store, &id)),
                UsersAction::Import { file, store } => {
                    rt.block_on(serve::users_import(&store, &file))
                }
            }
        }
        Command::Runbooks { action } => {
            let rt = runtime()?;
            match action {
                RunbooksAction::Add { file, store } => {
                    rt.block_on(serve::runbooks_add(&store, &file))
                }
                RunbooksAction::List { store } => rt.block_on(serve::runbooks_list(&store)),
            }
        }
        Command::SignOff {
            names,
            name,
            role,
            comment,
            roster,
            store,
        } => {
            // one name: a deployment id when it is one, else the stage
            let (deployment, stage) = match names.as_slice() {
                [] => (None, None),
                [one] if one.starts_with("d-") => (Some(one.as_str()), None),
                [one] => (None, Some(one.as_str())),
                [d, st, ..] => (Some(d.as_str()), Some(st.as_str())),
            };
            runtime()?.block_on(deploy::sign_off(deploy::SignOff {
                store: &store,
                deployment,
                sign_off: golive_deploy::SignOff {
                    stage,
                    name: &name,
                    role: &role,
                    comment: comment.as_deref(),
                    roster: roster.as_deref(),
                },
            }))
        }
        Command::Skip {
            names,
            name,
            role,
            reason,
            roster,
            store,
        } => {
            let (deployment, item) = deployment_and(&names, "skip takes [DEPLOYMENT] ITEM")?;
            runtime()?.block_on(deploy::skip(deploy::Skip {
                store: &store,
                deployment,
                skip: golive_deploy::Skip {
                    item,
                    name: &name,
                    role: &role,
                    reason: &reason,
                    roster: roster.as_deref(),
                },
            }))
        }
        Command::Choose {
            names,
            name,
            role,
            roster,
            store,
        } => {
            let (deployment, option) = deployment_and(&names, "choose takes [DEPLOYMENT] OPTION")?;
            runtime()?.block_on(deploy::choose(deploy::Choose {
                store: &store,
                deployment,
                choose: golive_deploy::Choose {
                    option,
                    name: &name,
                    role: &role,
                    roster: roster.as_deref(),
                },
            }))
        }
        Command::Sign {
            names,
            deployment,
            name,
            role,
            na,
            failed,
            comment,
            evidence,
            roster,
            ssh_key,
            store,
            remote: _,
        } => {
            let signer = ssh_key.map(|key| {
                move |payload: &[u8]| {
                    deploy::ssh_keygen_sign(&key, payload)
                        .map(golive_deploy::sshsig::Signed::over_given)
                }
            });
            // `golive sign DEPLOYMENT ITEM` as before: a first name that is a
            // deployment id
            let (deployment, items) = match (deployment.as_deref(), names.as_slice()) {
                (None, [d, rest @ ..]) if !rest.is_empty() && d.starts_with("d-") => {
                    (Some(d.as_str()), rest)
                }
                (d, all) => (d, all),
            };
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            runtime()?.block_on(deploy::sign(deploy::Sign {
                store: &store,
                deployment,
                more: &items[1..],
                sign: golive_deploy::Sign {
                    item: items[0],
                    name: name.as_deref().unwrap_or_default(),
                    role: role.as_deref().unwrap_or_default(),
                    result: if na {
                        golive_deploy::lifecycle::SignResult::NotApplicable
                    } else if failed {
                        golive_deploy::lifecycle::SignResult::Failed
                    } else {
                        golive_deploy::lifecycle::SignResult::Done
                    },
                    comment: comment.as_deref(),
                    evidence: &evidence,
                    roster: roster.as_deref(),
                    signer: signer
                        .as_ref()
                        .map(|f| f as golive_deploy::sshsig::Signer<'_>),
                },
            }))
        }
        Command::Decide {
            names,
            name,
            role,
            reason,
            roster,
            ssh_key,
            store,
            remote: _,
        } => {
            let signer = ssh_key.map(|key| {
                move |payload: &[u8]| {
                    deploy::ssh_keygen_sign(&key, payload)
                        .map(golive_deploy::sshsig::Signed::over_given)
                }
            });
            let (deployment, verdict) =
                deployment_and(&names, "decide takes [DEPLOYMENT] go|no-go")?;
            let go = match verdict.to_lowercase().as_str() {
                "go" => true,
                "no-go" | "nogo" => false,
                other => return Err(format!("decide: `{other}` is neither go nor no-go")),
            };
            runtime()?.block_on(deploy::decide(deploy::Decide {
                store: &store,
                deployment,
                decide: golive_deploy::Decide {
                    go,
                    name: name.as_deref().unwrap_or_default(),
                    role: role.as_deref().unwrap_or_default(),
                    reason: reason.as_deref(),
                    roster: roster.as_deref(),
                    signer: signer
                        .as_ref()
                        .map(|f| f as golive_deploy::sshsig::Signer<'_>),
                },
            }))
        }
        Command::Report {
            deployment,
            format,
            store,
            remote: _,
        } => runtime()?.block_on(deploy::report(&store, deployment.as_deref(), &format)),
        Command::Done {
            names,
            name,
            skipped,
            run,
            allow_commands,
            confirm_rerun,
            vars,
            comment,
            roster,
            store,
            remote: _,
        } => {
            let (deployment, step) = deployment_and(&names, "done takes [DEPLOYMENT] STEP")?;
            let bound = vars::bind(&vars.vars, &vars.vars_files, &vars.secrets)?;
            runtime()?.block_on(deploy::done(deploy::Done {
                store: &store,
                deployment,
                done: golive_deploy::Done {
                    step,
                    name: name.as_deref().unwrap_or_default(),
                    skipped,
                    comment: comment.as_deref(),
                    roster: roster.as_deref(),
                    run,
                    allow_commands,
                    confirm_rerun,
                    vars: &bound,
                },
            }))
        }
        Command::Gate {
            names,
            name,
            roster,
            store,
            remote: _,
        } => {
            let (deployment, which) =
                deployment_and(&names, "gate takes [DEPLOYMENT] smoke|verification")?;
            runtime()?.block_on(deploy::gate(
                &store,
                deployment,
                which,
                name.as_deref().unwrap_or_default(),
                roster.as_deref(),
            ))
        }
        Command::Rollback {
            deployment,
            name,
            role,
            reason,
            continue_,
            roster,
            ssh_key,
            store,
            remote: _,
        } => runtime()?.block_on(deploy::rollback(
            &store,
            deployment.as_deref(),
            name.as_deref().unwrap_or_default(),
            role.as_deref().unwrap_or_default(),
            &reason,
            continue_,
            roster.as_deref(),
            ssh_key.as_deref(),
        )),
        Command::Finish {
            deployment,
            name,
            roster,
            ssh_key,
            store,
            remote: _,
        } => runtime()?.block_on(deploy::finish(
            &store,
            deployment.as_deref(),
            name.as_deref().unwrap_or_default(),
            roster.as_deref(),
            ssh_key.as_deref(),
        )),
        Command::Status {
            deployment,
            format,
            message,
            store,
            remote: _,
        } => runtime()?.block_on(deploy::status(
            &store,
            deployment.as_deref(),
            format == Format::Json,
            message,
        )),
        Command::Probe {
            kind,
            target,
            mut options,
            expect,
            timeout,
            format,
            requests,
            concurrency,
            threads,
            duration,
            rate,
            http2,
        } => {
            // the load flags are options of the probe, spelled as oha does;
            // a refusal of one names the flag
            let mut flags = Vec::new();
            for (key, flag, value) in [
                ("requests", "--requests", requests.map(|n| n.to_string())),
                (
                    "concurrency",
                    "--concurrency",
                    concurrency.map(|n| n.to_string()),
                ),
                ("threads", "--threads", threads.map(|n| n.to_string())),
                (
                    "duration",
                    "--duration",
                    duration.map(|d| format!("\"{d}\"")),
                ),
                ("rate", "--rate", rate.map(|r| format!("{r:?}"))),
                ("http2", "--http2", http2.then(|| "true".to_string())),
            ] {
                if let Some(v) = value {
                    options.push(format!("{key}={v}"));
                    flags.push((key, flag));
                }
            }
            probe_command(
                &kind,
                &target,
                &options,
                &flags,
                expect.as_deref(),
                timeout.as_deref(),
                format,
            )
        }
        Command::Watch {
            target,
            interval,
            count,
            remind,
            webhooks,
            notify: notify_specs,
            report_dir,
            only,
            vars,
            store,
        } => {
            let duration = |flag: &str, v: &str| {
                golive_probe::parse_duration(v)
                    .map_err(|e| format!("--{flag}: {e}"))
                    .and_then(|d| {
                        if d.is_zero() {
                            Err(format!("--{flag} must be longer than zero"))
                        } else {
                            Ok(d)
                        }
                    })
            };
            let interval = duration("interval", &interval)?;
            let remind = duration("remind", &remind)?;
            let hooks = webhooks
                .iter()
                .map(|w| {
                    let key = std::env::var(golive_deploy::alert::ROUTING_KEY_ENV).ok();
                    golive_deploy::alert::Hook::parse(w, key.as_deref())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let bound = vars::bind(&vars.vars, &vars.vars_files, &vars.secrets)?;
            let report_dir = report_dir.unwrap_or_else(|| watch::default_report_dir(&store));
            runtime()?.block_on(watch::watch(
                &store,
                &target,
                report_dir,
                &notify_specs,
                golive_deploy::watch::Watch {
                    interval,
                    count,
                    remind,
                    hooks,
                    only: &only,
                    vars: &bound,
                    defaults: vars.defaults(),
                    notify: None,
                },
            ))
        }
        Command::Demo {
            fault,
            keep,
            out,
            runbook,
            notify,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            rt.block_on(demo::demo(demo::Demo {
                fault: fault.map(|f| match f {
                    DemoFault::ErrorRate => sample::Fault::ErrorRate,
                    DemoFault::Latency => sample::Fault::Latency,
                    DemoFault::Down => sample::Fault::Down,
                }),
                keep,
                out,
                runbook,
                notify,
            }))
        }
        Command::SampleAdmin { dir, action, arg } => {
            let (body, ok) =
                runtime()?.block_on(sample::admin_call(&dir, &action, arg.as_deref()))?;
            println!("{body}");
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::SampleService {
            listen,
            http_listen,
            version,
            dir,
            webhook,
            rate_limit,
        } => {
            let dir = dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("golive-sample-{}", std::process::id()))
            });
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            runtime()?.block_on(async {
                let s = sample::start(sample::Options {
                    https: listen,
                    http: http_listen,
                    version: version.clone(),
                    dir: dir.clone(),
                    webhook,
                    rate_limit,
                    faulty: None,
                })
                .await?;
                // the tokens go to files only the owner reads, never to the
                // terminal
                sample::write_info(&dir, &s)?;
                let token_file = dir.join("admin-token");
                // one write, and no failure if nobody reads it any more
                let text = format!(
                    "sample service {version}\n  https://localhost:{}/  (CA: {})\n  http://localhost:{}/   (redirects to HTTPS)\n  demo login: POST /login {{\"username\":\"{}\",\"password\":\"{}\"}}\n  admin API token in {}\n",
                    s.https.port(),
                    s.ca_file.display(),
                    s.http.port(),
                    sample::DEMO_USER.0,
                    sample::DEMO_USER.1,
                    token_file.display()
                );
                {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                }
                std::future::pending::<()>().await;
                Ok::<_, String>(ExitCode::SUCCESS)
            })
        }
        Command::Suggest { file, write } => suggest(&file, write),
        Command::Show { file, item, format } => {
            let rb = load(&file)?;
            // a tree golive did not read in full is not shown as the document
            if !rb.limits.is_empty() {
                eprint!("{}", render_text(&rb.path, &rb.source, &rb.limits));
                return Ok(ExitCode::from(2));
            }
            if let Some(name) = item {
                let target = rb.resolve(&name).map_err(|e| format!("{}: {e}", rb.path))?;
                let out = match format {
                    Format::Text => show::item_text(&rb, target),
                    Format::Json => pretty(&show::item_json(&rb, target)),
                };
                println!("{out}");
                return Ok(ExitCode::SUCCESS);
            }
            match format {
                Format::Text => {
                    print!("{}", show::runbook_text(&rb));
                    if let Ok(roster) = golive_deploy::roster_for(&rb, None) {
                        let ready = golive_deploy::lifecycle::readiness(&rb, &roster);
                        println!("\nA deployment will use");
                        for line in ready.lines() {
                            println!("  {line}");
                        }
                        for b in &ready.blockers {
                            println!("  cannot complete: {b}");
                        }
                    }
                }
                Format::Json => {
                    if let Err(e) = show::write_runbook_json(&rb, std::io::stdout().lock()) {
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(ExitCode::from(READER_LEFT));
                        }
                        return Err(format!("cannot write the output: {e}"));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `[DEPLOYMENT] X` positionals: the deployment is optional (newest).
/// A lifecycle command given with `--server`: the same command through the
/// server's API, as the token's person.
fn through_server(c: &Command) -> Option<Result<ExitCode, String>> {
    use serde_json::json;
    let r = match c {
        Command::Sign { remote, .. }
        | Command::Decide { remote, .. }
        | Command::Done { remote, .. }
        | Command::Gate { remote, .. }
        | Command::Rollback { remote, .. }
        | Command::Finish { remote, .. }
        | Command::Report { remote, .. }
        | Command::Status { remote, .. } => remote,
        _ => return None,
    };
    r.server.as_ref()?;
    Some((|| {
        let client = remote::Client::new(r)?;
        let rt = runtime()?;
        match c {
            Command::Sign {
                names,
                deployment,
                role,
                na,
                failed,
                comment,
                ssh_key,
                ..
            } => {
                let (deployment, items) = match (deployment.as_deref(), names.as_slice()) {
                    (None, [d, rest @ ..]) if !rest.is_empty() && d.starts_with("d-") => {
                        (Some(d.as_str()), rest)
                    }
                    (d, all) => (d, all),
                };
                let result = if *na {
                    "na"
                } else if *failed {
                    "failed"
                } else {
                    "done"
                };
                let body = json!({
                    "item": items[0], "more": &items[1..], "role": role, "result": result, "comment": comment,
                });
                match ssh_key {
                    Some(key) if items.len() > 1 => Err(format!(
                        "--ssh-key {}: against a server a signature signs one item: sign them one by one",
                        key.display()
                    )),
                    Some(key) => rt.block_on(client.signed_write(
                        deployment,
                        "signoffs",
                        body,
                        &items[0],
                        Some(result),
                        role.as_deref(),
                        key,
                    )),
                    None => rt.block_on(client.write(deployment, "signoffs", body)),
                }
            }
            Command::Decide {
                names,
                role,
                reason,
                ssh_key,
                ..
            } => {
                let (deployment, verdict) =
                    deployment_and(names, "decide takes [DEPLOYMENT] go|no-go")?;
                let body = json!({ "verdict": verdict, "role": role, "reason": reason });
                match ssh_key {
                    Some(key) => rt.block_on(client.signed_write(
                        deployment,
                        "decision",
                        body,
                        "decision",
                        Some(verdict),
                        role.as_deref(),
                        key,
                    )),
                    None => rt.block_on(client.write(deployment, "decision", body)),
                }
            }
            Command::Done {
                names,
                skipped,
                run,
                comment,
                ..
            } => {
                if *run {
                    return Err("done --run runs a step's commands on this machine: give it against a local store, not --server".into());
                }
                let (deployment, step) = deployment_and(names, "done takes [DEPLOYMENT] STEP")?;
                rt.block_on(client.write(
                    deployment,
                    "steps",
                    json!({ "step": step, "skipped": skipped, "comment": comment }),
                ))
            }
            Command::Gate { names, .. } => {
                let (deployment, which) =
                    deployment_and(names, "gate takes [DEPLOYMENT] smoke|verification")?;
                rt.block_on(client.write(deployment, "gates", json!({ "gate": which })))
            }
            Command::Rollback {
                deployment,
                role,
                reason,
                continue_,
                ssh_key,
                ..
            } => {
                let body = json!({ "role": role, "reason": reason, "continue": continue_ });
                match ssh_key {
                    Some(key) => rt.block_on(client.signed_write(
                        deployment.as_deref(),
                        "rollback",
                        body,
                        if *continue_ { "continue" } else { "rollback" },
                        None,
                        role.as_deref(),
                        key,
                    )),
                    None => rt.block_on(client.write(deployment.as_deref(), "rollback", body)),
                }
            }
            Command::Finish {
                deployment,
                ssh_key,
                ..
            } => match ssh_key {
                Some(key) => rt.block_on(client.signed_write(
                    deployment.as_deref(),
                    "finish",
                    json!({}),
                    "finish",
                    None,
                    None,
                    key,
                )),
                None => rt.block_on(client.write(deployment.as_deref(), "finish", json!({}))),
            },
            Command::Report {
                deployment, format, ..
            } => {
                let name = if format == "junit" {
                    "report.junit".to_string()
                } else {
                    format!("report.{format}")
                };
                rt.block_on(client.print(deployment.as_deref(), |id| {
                    format!("/api/v1/deployments/{id}/reports/{name}")
                }))
            }
            Command::Status {
                deployment,
                format,
                message,
                ..
            } => {
                let f = if *message {
                    "message"
                } else if *format == Format::Json {
                    "json"
                } else {
                    "text"
                };
                rt.block_on(client.print(deployment.as_deref(), |id| {
                    format!("/api/v1/deployments/{id}?format={f}")
                }))
            }
            _ => Err("not a command a server takes".into()),
        }
    })())
}

fn deployment_and<'a>(
    names: &'a [String],
    usage: &str,
) -> Result<(Option<&'a str>, &'a str), String> {
    match names {
        [x] => Ok((None, x.as_str())),
        [d, x] => Ok((Some(d.as_str()), x.as_str())),
        _ => Err(usage.to_string()),
    }
}

/// Load a runbook, bind its variables and plan its checks.
fn prepare(
    file: &Path,
    args: &VarArgs,
    only: &[String],
) -> Result<
    (
        Runbook,
        golive_engine::Plan,
        golive_deploy::vars::Redactor,
        golive_probe::Vars,
    ),
    String,
> {
    let rb = load(file)?;
    let vars = vars::bind(&args.vars, &args.vars_files, &args.secrets)?;
    let redact = golive_deploy::vars::Redactor::new(&vars);
    let plan = golive_engine::plan(&rb, &vars, only, &args.defaults())?;
    Ok((rb, plan, redact, vars))
}

/// `golive suggest`: the diff of the proposed blocks, or the file with them.
fn suggest(file: &Path, write: bool) -> Result<ExitCode, String> {
    let rb = load(file)?;
    if !rb.limits.is_empty() {
        eprint!("{}", render_text(&rb.path, &rb.source, &rb.limits));
        return Ok(ExitCode::from(2));
    }
    let proposed = golive_engine::suggest::suggest(&rb);
    if proposed.is_empty() {
        eprintln!(
            "golive: no item of {} names something a probe checks",
            rb.path
        );
        return Ok(ExitCode::SUCCESS);
    }
    let inserts = golive_engine::suggest::insertions(&rb, &proposed);
    if !write {
        print!(
            "{}",
            golive_engine::suggest::unified_diff(&rb.path, &rb.source, &inserts)
        );
        eprintln!(
            "golive: {} block(s) proposed; review each, then apply with --write",
            proposed.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let text = golive_engine::suggest::apply(&rb.source, &inserts);
    // the new text replaces the old at once: a kill leaves one or the other
    let tmp = file.with_extension("md.golive-suggest");
    std::fs::write(&tmp, &text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", file.display())
    })?;
    eprintln!(
        "golive: {} block(s) inserted into {}, each marked `suggested`: review them, then delete that line to let them run",
        proposed.len(),
        rb.path
    );
    Ok(ExitCode::SUCCESS)
}

/// The runtime for probes. Checks wait on the network, not the CPU: one
/// thread starts fastest (a run of the seed's smoke tests is 0.5 ms quicker
/// than on a multi-threaded runtime, 7.9 against 8.4 ms). Blocking work
/// (file hashing, name lookups) gets threads with stacks large enough for any
/// condition the compiler accepts.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn probe_command(
    kind: &str,
    target: &str,
    options: &[String],
    flags: &[(&str, &str)],
    expect: Option<&str>,
    timeout: Option<&str>,
    format: Format,
) -> Result<ExitCode, String> {
    let k = golive_probe::kind(kind).ok_or_else(|| {
        let known: Vec<&str> = golive_probe::KINDS.iter().map(|k| k.name).collect();
        format!("unknown probe kind `{kind}` (known: {})", known.join(", "))
    })?;
    let given = timeout
        .map(golive_probe::parse_duration)
        .transpose()
        .map_err(|e| format!("--timeout: {e}"))?;
    let timeout = given.unwrap_or(k.default_timeout);
    let mut table = toml::Table::new();
    let key = if k.name == "command" {
        "command"
    } else {
        "target"
    };
    table.insert(key.into(), toml::Value::String(target.into()));
    for o in options {
        let (key, value) = o
            .split_once('=')
            .ok_or_else(|| format!("`{o}`: options are KEY=VALUE, e.g. record=AAAA"))?;
        if !k.options.contains(&key) {
            return Err(format!(
                "a {} probe has no option `{key}` (options: {})",
                k.name,
                k.options.join(", ")
            ));
        }
        let v = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        table.insert(key.into(), v);
    }
    let vars = golive_probe::Vars::new();
    let spec = golive_probe::Spec {
        kind: k.name,
        table: &table,
        vars: &vars,
        commands: Vec::new(),
        timeout,
    };
    let probe = (k.build)(&spec).map_err(|e| match e {
        golive_probe::SpecError::Invalid(key, msg) => {
            match flags.iter().find(|(k, _)| *k == key.as_str()) {
                Some((_, flag)) => format!("{flag}: {msg}"),
                None => golive_probe::SpecError::Invalid(key, msg).to_string(),
            }
        }
        e => e.to_string(),
    })?;
    let timeout = golive_probe::timeout_for(&*probe, given, k.default_timeout, "--timeout")?;
    let condition = expect
        .map(golive_engine::Condition::compile)
        .transpose()
        .map_err(|e| format!("--expect: {e}"))?;
    let observed = runtime()?.block_on(async {
        match tokio::time::timeout(timeout, probe.observe()).await {
            Ok(r) => r,
            Err(_) => Err(golive_probe::ProbeError::Timeout(timeout)),
        }
    });
    let obs = match observed {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "golive: {} {}: could not observe: {e}",
                k.name,
                probe.target()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let verdict = match &condition {
        Some(c) => Some(
            c.eval_bool(&obs, golive_probe_now())
                .map_err(|e| format!("--expect: {e}"))?,
        ),
        None => None,
    };
    match format {
        Format::Json => {
            let mut v =
                serde_json::json!({ "kind": k.name, "target": probe.target(), "observation": obs });
            if let (Some(c), Some((pass, _))) = (&condition, &verdict) {
                v["expect"] = serde_json::json!(c.source);
                v["passed"] = serde_json::json!(pass);
            }
            println!("{}", pretty(&v));
        }
        Format::Text => {
            if k.name == "load" {
                print!("{}", loadview::summary(&probe.target(), &obs));
            } else {
                println!("{} {}", k.name, probe.target());
                print_flat("", &obs);
            }
            if let (Some(c), Some((pass, actual))) = (&condition, &verdict) {
                let shown: Vec<String> = actual.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                println!(
                    "
{}: {}",
                    if *pass { "PASS" } else { "FAIL" },
                    c.source
                );
                if !*pass {
                    println!("actual: {}", shown.join(", "));
                }
            }
        }
    }
    Ok(match verdict {
        Some((false, _)) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn golive_probe_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Print an observation as `path: value` lines.
fn print_flat(prefix: &str, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                print_flat(&p, v);
            }
        }
        serde_json::Value::String(s) => {
            let shown: String = s.chars().take(200).collect();
            let more = if s.chars().count() > 200 { "…" } else { "" };
            println!("  {prefix}: {:?}{more}", shown);
        }
        other => println!("  {prefix}: {other}"),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Read and import a runbook; a missing or non-UTF-8 file is a one-line error.
pub(crate) fn load(path: &Path) -> Result<Runbook, String> {
    Ok(read_source(path)?.runbook())
}

/// Read a runbook's text, as the lifecycle receives it; a missing or
/// non-UTF-8 file is a one-line error.
pub(crate) fn read_source(path: &Path) -> Result<golive_deploy::Source, String> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
            _ => e.to_string(),
        };
        format!("cannot read {shown}: {why}")
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let col = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        format!(
            "{shown}:{line}:{col}: not UTF-8 text (byte 0x{:02x}); save the file as UTF-8",
            e.as_bytes()[at]
        )
    })?;
    Ok(golive_deploy::Source::new(shown, text))
}

/// `K=V` pairs into a map; a pair without `=` is bad input.
fn parse_vars(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            format!("--var {p}: expected NAME=VALUE, e.g. --var DOMAIN=example.test")
        })?;
        let k = k.trim().trim_start_matches('[').trim_end_matches(']');
        if k.is_empty() {
            return Err(format!("--var {p}: the name before `=` is empty"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
