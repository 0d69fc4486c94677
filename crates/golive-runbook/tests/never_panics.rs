//! The importer, lint and export never panic, whatever the input: arbitrary
//! text, and arbitrary mutations of the fixtures. `PROPTEST_CASES` sets the
//! number of cases (2,000 per property by default).

mod common;

use golive_runbook::{LintOptions, Outcomes, export, lint, parse_runbook, render_text};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn exercise(text: &str) {
    let rb = parse_runbook("fuzz.md", text);
    let mut vars = BTreeMap::new();
    vars.insert("DOMAIN".to_string(), "x".to_string());
    for opts in [LintOptions::default(), LintOptions { vars: Some(vars) }] {
        let diags = lint(&rb, &opts);
        let _ = render_text("fuzz.md", text, &diags);
        for d in &diags {
            assert!(d.loc.start <= d.loc.end && d.loc.end <= text.len());
            assert!(text.is_char_boundary(d.loc.start) && text.is_char_boundary(d.loc.end));
        }
    }
    // export with nothing is the identity
    assert_eq!(export(&rb, &Outcomes::default()).expect("export"), text);
    // ticking every item and filling every blank never breaks either
    let outcomes = Outcomes {
        ticks: rb
            .items
            .iter()
            .filter(|i| i.marker.is_some())
            .map(|i| (i.address.clone(), true))
            .collect(),
        fills: rb
            .all_blanks()
            .map(|b| (b.id.clone(), "v|\n".to_string()))
            .collect(),
    };
    let _ = export(&rb, &outcomes);
    let mut ids = std::collections::HashSet::new();
    for item in &rb.items {
        let _ = rb.resolve(&item.id);
        assert!(item.loc.start <= item.loc.end && item.loc.end <= text.len());
        // repeated titles get distinct ids
        assert!(
            ids.insert(item.id.as_str()),
            "two items with the id {}",
            item.id
        );
        if let Some(first) = item.repeats {
            assert!(rb.items[first].loc.start < item.loc.start);
        }
    }
    // the facts read from other teams' shapes point into the text
    for stage in &rb.stages {
        let groups = stage.groups.iter();
        let criteria = stage
            .criteria
            .iter()
            .chain(groups.clone().flat_map(|g| g.criteria.iter()));
        for c in criteria {
            assert!(c.loc.end <= text.len() && text.is_char_boundary(c.loc.start));
            assert!(c.item.is_none_or(|i| i < rb.items.len()));
        }
        for g in groups {
            for choice in &g.choose_one {
                assert!(choice.items.iter().all(|&i| g.items.contains(&i)));
            }
        }
        assert!(stage.signers.iter().all(|s| !s.trim().is_empty()));
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters that matter to Markdown and to golive's scanners.
fn markdown_char() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("- [ ] ".to_string()),
        Just("[x]".to_string()),
        Just("**".to_string()),
        Just("```".to_string()),
        Just("```golive\n".to_string()),
        Just("____".to_string()),
        Just("[DOMAIN]".to_string()),
        Just("| ☐ |".to_string()),
        Just("## ".to_string()),
        Just("### ".to_string()),
        Just("(3 items)".to_string()),
        Just("**Step 1.1: x**\n".to_string()),
        Just("  ".to_string()),
        Just("\t".to_string()),
        Just("1. ".to_string()),
        Just("> ".to_string()),
        Just("---\n".to_string()),
        Just("=".to_string()),
        Just("\"".to_string()),
        // other teams' shapes
        Just("| **Staging Deployment** | | |\n".to_string()),
        Just("| Role | Name | Signature | Date |\n|---|---|---|---|\n| Lead | | | |\n".to_string()),
        Just("## Phase 2: Deploy\n".to_string()),
        Just("Rollback if:\n- Error rate > 1%\n".to_string()),
        Just("- ⚠️ **Error rate >2x baseline**: stop\n".to_string()),
        Just("**Deployment Lead:**\n- Name: ____\n- Signature: ____\n".to_string()),
        Just("**Status**: ☐ Success ☐ Rolled Back\n".to_string()),
        Just("SUCCESS / ROLLBACK / PARTIAL".to_string()),
        Just("### Pattern: Choose One\n".to_string()),
        Just("#### Option A: Blue-Green\n".to_string()),
        Just("(if needed)".to_string()),
        Just("`/health` returns 200 OK".to_string()),
        Just("```bash\ncurl -s https://[DOMAIN]/health\n```\n".to_string()),
        "\\PC{0,3}".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        exercise(&text);
    }

    #[test]
    fn markdown_soup_never_panics(parts in prop::collection::vec(markdown_char(), 0..120)) {
        exercise(&parts.concat());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..3, markdown_char()), 1..8),
    ) {
        let fixtures = fixtures_cached();
        let (_, base) = &fixtures[which % fixtures.len()];
        let mut text = base.clone();
        for (at, op, insert) in edits {
            if text.is_empty() { text.push_str(&insert); continue; }
            let mut i = at.index(text.len());
            while !text.is_char_boundary(i) { i -= 1; }
            match op {
                0 => text.insert_str(i, &insert),
                1 => {
                    let mut j = (i + insert.len()).min(text.len());
                    while !text.is_char_boundary(j) { j -= 1; }
                    text.replace_range(i..j, "");
                }
                _ => {
                    let mut j = (i + insert.len()).min(text.len());
                    while !text.is_char_boundary(j) { j -= 1; }
                    text.replace_range(i..j, &insert);
                }
            }
        }
        exercise(&text);
    }
}

fn fixtures_cached() -> &'static [(String, String)] {
    static CELL: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    CELL.get_or_init(common::fixtures)
}
