//! Export: unfilled exports are the input byte for byte; filled exports change
//! exactly the chosen spans.

mod common;

use golive_runbook::{Outcomes, export, parse_runbook};

#[test]
fn unfilled_export_round_trips_every_fixture() {
    let fixtures = common::fixtures();
    assert!(fixtures.len() >= 10, "the seed and at least nine fixtures");
    for (name, text) in fixtures {
        let rb = parse_runbook(&name, &text);
        let out = export(&rb, &Outcomes::default()).expect("export");
        assert!(out == text, "{name} does not round-trip");
    }
}

fn seed_outcomes() -> Outcomes {
    Outcomes {
        ticks: vec![
            ("1.1.1".into(), true),
            ("pre-deployment-checklist/infrastructure-readiness/ssl-certificates-valid".into(), true),
            ("ssl-certificates-valid/1".into(), true),
            ("ssl-certificates-valid/3".into(), true),
            ("4.1.1".into(), true),
            ("decision/go".into(), true),
        ],
        fills: vec![
            (
                "pre-deployment-checklist/infrastructure-readiness/ssl-certificates-valid#certificate-expiry-date".into(),
                "2027-02-25T10:58:12Z".into(),
            ),
            (
                "pre-deployment-checklist/infrastructure-readiness/ssl-certificates-valid#certificate-matches-domain".into(),
                "shop.example.test".into(),
            ),
            (
                "smoke-testing-checklist/critical-workflow-tests/test-1-application-responds#result".into(),
                "200".into(),
            ),
            (
                "smoke-testing-checklist/critical-workflow-tests/test-1-application-responds#time".into(),
                "2026-11-27 14:02 UTC".into(),
            ),
            (
                "pre-deployment-go-no-go-decision#deployment-lead".into(),
                "Release Manager\nwith a second line".into(),
            ),
        ],
    }
}

#[test]
fn filled_export_of_the_seed_matches_the_expected_file() {
    let (_, seed) = common::fixtures().remove(0);
    let rb = parse_runbook("aiwg-production.md", &seed);
    let out = export(&rb, &seed_outcomes()).expect("export");
    let golden = common::root().join("tests/golden/aiwg-production.filled.md");
    if std::env::var_os("GOLIVE_BLESS").is_some() {
        std::fs::write(&golden, &out).expect("bless");
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file");
    assert!(
        out == expected,
        "filled export differs from tests/golden/aiwg-production.filled.md"
    );
}

#[test]
fn filled_export_touches_only_the_chosen_spans() {
    let (_, seed) = common::fixtures().remove(0);
    let rb = parse_runbook("aiwg-production.md", &seed);
    let outcomes = seed_outcomes();
    let patches = golive_runbook::export::patches(&rb, &outcomes).expect("patches");
    assert_eq!(patches.len(), outcomes.ticks.len() + outcomes.fills.len());
    let out = export(&rb, &outcomes).expect("export");
    // Walk the output: outside the patched spans it must equal the seed.
    let mut sorted = patches.clone();
    sorted.sort();
    let (mut src, mut dst) = (0usize, 0usize);
    for p in &sorted {
        let keep = p.start - src;
        assert_eq!(
            &out[dst..dst + keep],
            &seed[src..p.start],
            "text before line {}",
            p.line
        );
        dst += keep;
        assert_eq!(&out[dst..dst + p.text.len()], p.text);
        dst += p.text.len();
        src = p.end;
    }
    assert_eq!(&out[dst..], &seed[src..]);
    // and the changed lines are exactly the patched ones
    let changed: Vec<usize> = seed
        .lines()
        .zip(out.lines())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i + 1)
        .collect();
    let mut lines: Vec<usize> = sorted.iter().map(|p| p.line as usize).collect();
    lines.dedup();
    assert_eq!(changed, lines);
    assert_eq!(
        seed.lines().count(),
        out.lines().count(),
        "a value with a newline stays on its line"
    );
    // the filled document still imports to the same structure, now ticked
    let again = parse_runbook("filled.md", &out);
    assert_eq!(again.items.len(), rb.items.len());
    let ticked: Vec<&str> = again
        .items
        .iter()
        .filter(|i| i.checked())
        .map(|i| i.address.as_str())
        .collect();
    assert_eq!(ticked, ["1.1.1", "1.2.2", "2.1", "4.1.1"]);
}

#[test]
fn unknown_names_are_refused_and_nothing_is_written() {
    let (_, seed) = common::fixtures().remove(0);
    let rb = parse_runbook("aiwg-production.md", &seed);
    let bad_item = Outcomes {
        ticks: vec![("9.9.9".into(), true)],
        fills: vec![],
    };
    assert!(export(&rb, &bad_item).is_err());
    let bad_blank = Outcomes {
        ticks: vec![],
        fills: vec![("nope#x".into(), "v".into())],
    };
    assert!(export(&rb, &bad_blank).is_err());
    let step = Outcomes {
        ticks: vec![("3.1.1".into(), true)],
        fills: vec![],
    };
    let err = export(&rb, &step).expect_err("a step has no checkbox");
    assert!(err.to_string().contains("no checkbox"));
}

#[test]
fn table_rows_tick_with_their_own_symbol_and_escape_pipes() {
    let text = "## S\n\n| Done | Check | Owner |\n|---|---|---|\n| ☐ | Backups fresh | ____ |\n| [ ] | Alerts on | DBA |\n";
    let rb = parse_runbook("t.md", text);
    assert_eq!(rb.items.len(), 2);
    let blank = rb.items[0].blanks[0].id.clone();
    let out = export(
        &rb,
        &Outcomes {
            ticks: vec![("1.1".into(), true), ("1.2".into(), true)],
            fills: vec![(blank, "a|b".into())],
        },
    )
    .expect("export");
    assert!(out.contains("| ☑ | Backups fresh | a\\|b |"), "{out}");
    assert!(out.contains("| [x] | Alerts on |"), "{out}");
    let again = parse_runbook("t.md", &out);
    assert!(again.items.iter().all(|i| i.checked()));
    assert_eq!(again.items[0].title, "Backups fresh");
}
