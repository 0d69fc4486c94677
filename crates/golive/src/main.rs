//! golive: executable production deployment checklists.
//!
//! The binary owns printing and exit codes; the crates below it return data.
//! Exit codes: 0 success, 1 findings (lint) or failed checks, 2 bad input.

mod show;

use clap::{Parser, Subcommand, ValueEnum};
use golive_runbook::{LintOptions, Runbook, lint, parse_runbook, render_text};
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

#[derive(Subcommand)]
enum Command {
    /// Check a runbook for faults: declared counts, duplicate ids, annotations,
    /// unbound placeholders, unclosed fences, skipped heading levels.
    Lint {
        /// The Markdown runbook.
        file: PathBuf,
        /// Bind a placeholder: `--var DOMAIN=example.test`. With any variable
        /// given, every placeholder used in a command block must be bound.
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("golive: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Lint { file, vars, format } => {
            let rb = load(&file)?;
            let vars = parse_vars(&vars)?;
            let opts = LintOptions {
                vars: (!vars.is_empty()).then_some(vars),
            };
            let diags = lint(&rb, &opts);
            match format {
                Format::Text => {
                    print!("{}", render_text(&rb.path, &rb.source, &diags));
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
            Ok(if diags.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Show { file, item, format } => {
            let rb = load(&file)?;
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
                Format::Text => print!("{}", show::runbook_text(&rb)),
                Format::Json => println!("{}", pretty(&show::runbook_json(&rb))),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Read and import a runbook; a missing or non-UTF-8 file is a one-line error.
fn load(path: &Path) -> Result<Runbook, String> {
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
    Ok(parse_runbook(&shown, &text))
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
