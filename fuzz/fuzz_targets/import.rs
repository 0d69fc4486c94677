//! Feed arbitrary bytes to the importer, lint and export: none may panic, and
//! an export with no outcomes must give the input back.
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
});
