//! Import details that golden files show only indirectly.

use golive_runbook::{ItemKind, parse_runbook};

#[test]
fn crlf_checkbox_spans_are_exactly_three_bytes() {
    let text = "## S\r\n\r\n- [ ] **One**\r\n  - [x] sub\r\n";
    let rb = parse_runbook("t.md", text);
    let m = rb.items[0].marker.as_ref().expect("marker");
    assert_eq!(&text[m.loc.range()], "[ ]");
    let s = &rb.items[0].subchecks[0];
    assert_eq!(&text[s.marker.loc.range()], "[x]");
    assert!(s.marker.checked);
    assert_eq!((s.loc.line, s.marker.loc.col), (4, 5));
}

#[test]
fn placeholders_split_by_the_parser_are_found_whole() {
    let rb = parse_runbook("t.md", "## S\n\n- [ ] Ping [DOMAIN] and v[VERSION]/x\n");
    let names: Vec<&str> = rb.placeholders.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["DOMAIN", "VERSION"]);
    assert_eq!(rb.placeholders[0].loc.col, 12);
}

#[test]
fn a_document_without_stages_still_has_items() {
    let rb = parse_runbook("t.md", "# Quick list\n\n- [ ] first\n- [x] second\n");
    assert_eq!(rb.stages.len(), 1);
    assert_eq!(rb.stages[0].title(), "Quick list");
    assert_eq!(rb.items.len(), 2);
    assert_eq!(rb.items[1].address, "1.2");
    assert!(rb.items[1].checked());
}

#[test]
fn step_owns_its_blocks_until_a_foreign_field_paragraph() {
    let text = "## P\n\n### Phase 1 (5 minutes)\n\n**Step 1.1: Do it (2 minutes)**\n```bash\necho hi\n# Expected: hi\n```\n- [ ] done\n- **Time:** ____\n\n**Rollback Trigger:** if it fails:\n```bash\necho undo\n```\n";
    let rb = parse_runbook("t.md", text);
    assert_eq!(rb.items.len(), 1);
    let step = &rb.items[0];
    assert_eq!(step.kind, ItemKind::Step);
    assert_eq!(step.declared.budget.as_ref().map(|b| b.seconds), Some(120));
    assert_eq!(step.commands.len(), 1);
    assert_eq!(step.commands[0].commands[0].expected.as_deref(), Some("hi"));
    assert_eq!(step.subchecks.len(), 1);
    assert_eq!(step.blanks.len(), 1);
    let group = &rb.stages[0].groups[0];
    assert_eq!(group.loose.commands.len(), 1);
    assert_eq!(
        group.loose.commands[0].context.as_deref(),
        Some("Rollback Trigger")
    );
}

#[test]
fn multi_line_commands_and_expected_output() {
    let text = "## S\n\n- [ ] **T**\n  ```bash\n  for i in 1 2; do\n    echo $i\n  done\n  # Expected output:\n  # 1\n  # 2\n\n  curl -s \\\n    http://x/\n  # Expected: 200\n  ```\n";
    let rb = parse_runbook("t.md", text);
    let cmds = &rb.items[0].commands[0].commands;
    assert_eq!(cmds.len(), 2);
    assert_eq!(cmds[0].text, "for i in 1 2; do\n  echo $i\ndone");
    assert_eq!(cmds[0].expected.as_deref(), Some("1\n2"));
    assert_eq!(cmds[1].expected.as_deref(), Some("200"));
    assert_eq!(cmds[1].loc.line, 12);
}

#[test]
fn annotation_errors_point_into_the_markdown_file() {
    let text =
        "## S\n\n- [ ] **T**\n  ```golive\n  check = \"http\"\n  expect = \"status == 200\n  ```\n";
    let rb = parse_runbook("t.md", text);
    let a = &rb.items[0].annotations[0];
    let (_, loc) = a.error.as_ref().expect("error");
    assert_eq!(loc.line, 6);
    assert!(a.table.is_none());
    let ok = parse_runbook(
        "t.md",
        "## S\n\n- [ ] **T**\n  ```golive\n  check = \"tcp\"\n  ```\n",
    );
    let table = ok.items[0].annotations[0].table.as_ref().expect("table");
    assert_eq!(table["check"].as_str(), Some("tcp"));
}
