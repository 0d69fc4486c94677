//! What the lifecycle's commands say when they succeed: the lines
//! `golive sign`, `decide`, `done`, `gate`, `rollback` and `finish` print,
//! and the server returns in its answers (`said`), so a command given
//! against a server prints what it prints against a local store.
//!
//! ```text
//! 1.1.1 All tests passing signed by Dana Lead as Release Manager in deployment d-20261201T101500-3f2a9c1e
//! smoke gate: 19/20 passed (target 19/20): PASS
//! ```

use golive_deploy::lifecycle::SignResult;
use golive_deploy::time::minutes_text;
use golive_deploy::{
    Continued, Decided, Finished, GateResult, Raised, RolledBack, Signed, StepDone,
};
use golive_runbook::Runbook;

/// One line per item signed.
pub fn signed(rb: &Runbook, id: &str, all: &[Signed]) -> Vec<String> {
    all.iter()
        .map(|s| {
            let it = &rb.items[s.item];
            let how = match s.result {
                SignResult::Done if s.overrides => "signed, overriding its failed checks,",
                SignResult::Done => "signed",
                SignResult::NotApplicable => "signed N/A",
                SignResult::Failed => "signed FAILED",
            };
            format!(
                "{} {} {how} by {} as {} in deployment {id}",
                it.address, it.title, s.name, s.role
            )
        })
        .collect()
}

/// A signature of the go/no-go decision, or the decision it completed.
pub fn decided(id: &str, o: &Decided) -> Vec<String> {
    if !o.taken() {
        return vec![format!(
            "{} signed by {} as {}; waiting for: {}",
            o.verdict,
            o.name,
            o.role,
            o.waiting.join(", ")
        )];
    }
    let mut out = vec![format!(
        "{}: decided by {} in deployment {id}",
        o.verdict,
        o.required.join(", ")
    )];
    if !o.overrides.is_empty() {
        out.push(format!(
            "taken over {} override(s) of failed checks:",
            o.overrides.len()
        ));
        out.extend(o.overrides.iter().map(|l| format!("  {l}")));
    }
    out
}

/// A step done or skipped, and what the record says with it.
pub fn step_done(s: &StepDone) -> Vec<String> {
    let mut out = vec![format!(
        "{} {} by {}",
        s.label,
        if s.skipped { "skipped" } else { "done" },
        s.name
    )];
    out.extend(s.lines.iter().cloned());
    out
}

/// A gate's count and what a failure did.
pub fn gate(g: &GateResult) -> Vec<String> {
    let t = &g.tally;
    vec![format!(
        "{} gate: {}/{} passed (target {}/{}): {}",
        g.gate.name(),
        t.passed,
        t.total,
        t.target,
        t.total,
        match g.raised {
            Raised::Nothing => "PASS",
            Raised::Already => "FAIL (the rollback is raised already)",
            Raised::Started =>
                "FAIL: ROLLBACK INITIATED with automatic authority; the Rollback Steps run now",
            Raised::Decision => "FAIL: the rollback decision is raised",
        }
    )]
}

/// A rollback signed or started.
pub fn rolled_back(r: &RolledBack) -> Vec<String> {
    vec![match r {
        RolledBack::Automatic { name, role } => format!(
            "ROLLBACK INITIATED by {name} ({role}, automatic authority): run the Rollback Steps with golive done"
        ),
        RolledBack::Started { by } => format!(
            "ROLLBACK INITIATED by {}: run the Rollback Steps with golive done",
            by.join(" + ")
        ),
        RolledBack::Signed {
            name,
            role,
            authority,
        } => format!(
            "rollback signed by {name} as {role}; waiting for the rest of: {}",
            authority.join(" + ")
        ),
    }]
}

/// A decision to continue instead of rolling back, signed or complete.
pub fn continued(c: &Continued, name: &str, role: &str) -> Vec<String> {
    vec![match c {
        Continued::Resolved { by } => format!(
            "ROLLBACK DECISION RESOLVED: {} decided to continue; the deployment goes on",
            by.join(" + ")
        ),
        Continued::Signed { waiting } => format!(
            "decision to continue signed by {name} as {role}; waiting for: {}",
            waiting.join(" + ")
        ),
    }]
}

/// The end of a deployment.
pub fn finished(id: &str, f: &Finished) -> Vec<String> {
    let target = f
        .target_seconds
        .map(|t| format!(" (target < {})", minutes_text(t as f64)))
        .unwrap_or_default();
    vec![if f.outcome == "SUCCESS" {
        format!(
            "SUCCESS: deployment {id} took {}{target}, production {}",
            minutes_text(f.seconds),
            f.health
        )
    } else {
        format!(
            "ROLLED BACK: deployment {id} rolled back in {}{target}",
            minutes_text(f.seconds)
        )
    }]
}
