//! Feed arbitrary bytes to the importer, lint and export: none may panic, and
//! an export with no outcomes must give the input back.
//!
//!     mkdir -p corpus/import && cargo fuzz run import corpus/import ../tests/corpus ../tests/fixtures -- -dict=import.dict
//!
//! The dictionary holds the tokens of the shapes golive reads (tasks, steps,
//! tables, blanks, `golive` blocks, and other teams' shapes: bold table rows,
//! phases, criteria bullets, sign-off tables, choice lines, choose-one
//! options, optional markers); the corpus directories are the fixtures.
#![no_main]

use golive_runbook::{LintOptions, Outcomes, export, lint, parse_runbook, render_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rb = parse_runbook("fuzz.md", text);
    let diags = lint(&rb, &LintOptions::default());
    let _ = render_text("fuzz.md", text, &diags);
    assert_eq!(export(&rb, &Outcomes::default()).ok().as_deref(), Some(text));
    let ticks = rb.items.iter().map(|i| (i.address.clone(), true)).collect();
    let fills = rb.all_blanks().map(|b| (b.id.clone(), "x".to_string())).collect();
    let _ = export(&rb, &Outcomes { ticks, fills });
    // other teams' shapes: repeated titles still give distinct ids, and
    // criteria, choices and options point into the text and the items
    let mut ids = std::collections::HashSet::new();
    for item in &rb.items {
        assert!(ids.insert(item.id.as_str()));
    }
    for stage in &rb.stages {
        for c in stage.criteria.iter().chain(stage.groups.iter().flat_map(|g| g.criteria.iter())) {
            assert!(c.loc.end <= text.len());
            assert!(c.item.is_none_or(|i| i < rb.items.len()));
        }
        for g in &stage.groups {
            for option in &g.choose_one {
                assert!(option.items.iter().all(|i| g.items.contains(i)));
            }
        }
    }
});
