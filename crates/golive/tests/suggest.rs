//! `golive suggest`: blocks proposed from a checklist's own words, measured
//! against the reference's hand-written blocks, and `--write` changing no
//! byte but the blocks it inserts.

mod common;

use common::root;
use golive_runbook::parse_runbook;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn golive(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("golive runs");
    (
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
        out.status.code().unwrap_or(-1),
    )
}

/// A fresh directory under the target directory for this test.
fn scratch(name: &str) -> PathBuf {
    let dir = root()
        .join("target")
        .join("suggest-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The text without its `golive` blocks: each fence, from its opening line
/// to its closing one.
fn strip_blocks(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if !inside && t == "```golive" {
            inside = true;
            continue;
        }
        if inside {
            if t == "```" {
                inside = false;
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

/// The text without the blocks `golive suggest --write` inserted: each
/// block whose first line is `suggested = …`, and the blank line before it.
fn remove_suggested(text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let opens = |k: usize| {
            lines.get(k).is_some_and(|l| l.trim() == "```golive")
                && lines
                    .get(k + 1)
                    .is_some_and(|l| l.trim_start().starts_with("suggested = "))
        };
        if lines[i].trim().is_empty() && opens(i + 1) {
            let mut k = i + 2;
            while k < lines.len() && lines[k].trim() != "```" {
                k += 1;
            }
            // a block at the end of a file that ended without a newline
            // ends without one too, and the line before it got one
            if k + 1 == lines.len() && !lines[k].ends_with('\n') {
                let cut = if out.ends_with("\r\n") { 2 } else { 1 };
                out.truncate(out.len() - cut);
            }
            i = k + 1;
            continue;
        }
        out.push_str(lines[i]);
        i += 1;
    }
    out
}

/// Item id → the probe kinds of its check blocks (`suggested` ones when
/// `suggested`, the others when not).
fn kinds(path: &str, text: &str, suggested: bool) -> BTreeMap<String, Vec<String>> {
    let rb = parse_runbook(path, text);
    let mut out = BTreeMap::new();
    for item in &rb.items {
        let ks: Vec<String> = item
            .annotations
            .iter()
            .filter_map(|a| a.table.as_ref())
            .filter(|t| t.contains_key("suggested") == suggested)
            .filter_map(|t| t.get("check").and_then(|v| v.as_str()).map(str::to_string))
            .collect();
        if !ks.is_empty() {
            out.insert(item.id.clone(), ks);
        }
    }
    out
}

#[test]
fn suggest_proposes_the_probe_kind_of_most_of_the_references_own_blocks() {
    let original =
        std::fs::read_to_string(root().join("examples/aiwg-production.md")).expect("seed");
    let written = kinds("seed.md", &original, false);
    assert!(
        written.len() >= 30,
        "the reference annotates {} items",
        written.len()
    );
    let dir = scratch("coverage");
    let copy = dir.join("stripped.md");
    let stripped = strip_blocks(&original);
    assert!(!stripped.contains("```golive"));
    std::fs::write(&copy, &stripped).expect("write");
    let shown = copy.to_string_lossy().into_owned();
    let (_, err, code) = golive(&["suggest", &shown, "--write"]);
    assert_eq!(code, 0, "{err}");
    let after = std::fs::read_to_string(&copy).expect("read");
    let proposed = kinds("stripped.md", &after, true);
    let mut same = 0;
    let mut missed = Vec::new();
    for (id, ks) in &written {
        match proposed.get(id) {
            Some(p) if p.iter().any(|k| ks.contains(k)) => same += 1,
            other => missed.push(format!("{id}: written {ks:?}, proposed {other:?}")),
        }
    }
    let share = same as f64 / written.len() as f64;
    println!(
        "golive suggest proposed the same probe kind for {same} of the {} annotated items of the reference ({:.0} %)",
        written.len(),
        share * 100.0
    );
    assert!(
        share >= 0.70,
        "{same}/{} ({:.0} %); missed:\n{}",
        written.len(),
        share * 100.0,
        missed.join("\n")
    );
    // every proposed block lints: no error anywhere in the written file
    let (out, _, code) = golive(&["lint", &shown, "--format", "json"]);
    let errors = common::findings_of(&out, "error");
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(code, 0);
    // and none of them runs before a person reviews it
    let unreviewed = common::findings_of(&out, "warning")
        .iter()
        .filter(|d| d["code"] == "unreviewed-suggestion")
        .count();
    assert_eq!(unreviewed, proposed.values().map(Vec::len).sum::<usize>());
    let (plan, _, _) = golive(&["plan", &shown, "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan).expect("plan json");
    assert_eq!(
        plan["checks"].as_array().map(Vec::len),
        Some(0),
        "a suggested block is not planned: {plan}"
    );
}

/// A criterion written against the baseline gets a check that compares
/// with it, held for the criterion's window; once reviewed (the `suggested`
/// line removed) it lints clean and plans as a rollback check.
#[test]
fn a_criterion_against_the_baseline_gets_a_check_comparing_with_it() {
    let dir = scratch("baseline");
    let path = dir.join("criteria.md");
    std::fs::write(
        &path,
        "# Release\n\n## Rollback Procedure\n\n### Rollback Decision Criteria\n\n\
- [ ] **Error rate >2x baseline for 5 minutes**\n\
- [ ] **p95 latency >1.5x baseline**\n\
- [ ] **Customers complain on social media**\n",
    )
    .expect("write");
    let file = path.to_string_lossy().into_owned();
    let (out, err, code) = golive(&["suggest", &file, "--write"]);
    assert_eq!(code, 0, "{out}{err}");
    let written = std::fs::read_to_string(&path).expect("read");
    for line in [
        "expect = \"error_rate <= 2.0 * baseline.error_rate\"",
        "for = \"5m\"",
        "expect = \"latency_ms.p95 <= 1.5 * baseline.latency_ms.p95\"",
        "on_fail = \"rollback\"",
    ] {
        assert!(written.contains(line), "{line} in:\n{written}");
    }
    let reviewed: String = written
        .lines()
        .filter(|l| !l.trim_start().starts_with("suggested = "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, &reviewed).expect("write");
    let (out, err, code) = golive(&["lint", &file]);
    assert_eq!(code, 0, "{out}{err}");
    let rb = parse_runbook(&file, &reviewed);
    let judged = rb
        .items
        .iter()
        .find(|i| i.title == "Customers complain on social media")
        .expect("item");
    assert!(judged.annotations.is_empty(), "a person judges that one");
    let mut vars = golive_probe::Vars::new();
    vars.set("DOMAIN", "shop.example.test");
    let plan = golive_engine::plan(&rb, &vars, &[], &toml::Table::new()).expect("plan");
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    let fields: Vec<Vec<&str>> = plan.checks.iter().map(|c| c.baseline_fields()).collect();
    assert_eq!(fields, [vec!["error_rate"], vec!["latency_ms.p95"]]);
    assert!(
        plan.checks
            .iter()
            .all(|c| c.on_fail.as_deref() == Some("rollback"))
    );
    assert_eq!(plan.checks[0].hold, std::time::Duration::from_secs(300));
}

#[test]
fn suggest_write_round_trip_removing_the_blocks_gives_back_the_input() {
    let dir = scratch("roundtrip");
    let seed = std::fs::read_to_string(root().join("examples/aiwg-production.md")).expect("seed");
    let mut inputs: Vec<(String, String)> = vec![("stripped-seed.md".into(), strip_blocks(&seed))];
    for f in ["tests/fixtures/crlf.md"]
        .into_iter()
        .map(PathBuf::from)
        .chain(
            std::fs::read_dir(root().join("tests/corpus"))
                .expect("corpus")
                .map(|e| e.expect("entry").path()),
        )
    {
        let text = std::fs::read_to_string(root().join(&f)).expect("read");
        let name = Path::new(&f)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        inputs.push((name, text));
    }
    // and a file that ends without a newline right after an item
    inputs.push((
        "no-final-newline.md".into(),
        "# T\n\n## Checks\n\n- [ ] SSL certificate valid".into(),
    ));
    let mut inserted_somewhere = 0;
    for (name, text) in inputs {
        let path = dir.join(&name);
        std::fs::write(&path, &text).expect("write");
        let shown = path.to_string_lossy().into_owned();
        let (diff, err, code) = golive(&["suggest", &shown]);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            text,
            "{name}: a diff alone changes nothing"
        );
        let (_, err, code) = golive(&["suggest", &shown, "--write"]);
        assert_eq!(code, 0, "{name}: {err}");
        let after = std::fs::read_to_string(&path).expect("read");
        if after != text {
            inserted_somewhere += 1;
            assert!(diff.starts_with("--- a/"), "{name}: {diff}");
            // the diff printed before says exactly what --write did
            let added: usize = diff
                .lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count();
            let removed: usize = diff
                .lines()
                .filter(|l| l.starts_with('-') && !l.starts_with("---"))
                .count();
            assert_eq!(
                after.lines().count() as isize - text.lines().count() as isize,
                added as isize - removed as isize,
                "{name}"
            );
        }
        assert_eq!(
            remove_suggested(&after),
            text,
            "{name}: only the blocks were added"
        );
        // the blocks belong to the items they were proposed for
        let before = parse_runbook(&name, &text);
        let rb = parse_runbook(&name, &after);
        assert_eq!(before.items.len(), rb.items.len(), "{name}");
        for (a, b) in before.items.iter().zip(&rb.items) {
            assert_eq!(a.id, b.id, "{name}");
        }
    }
    assert!(
        inserted_somewhere >= 8,
        "{inserted_somewhere} files got blocks"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Wherever a checklist puts its items (mutated corpus checklists and
    /// fixtures), the proposed blocks are the only change, and each lands
    /// in the item it was proposed for.
    #[test]
    fn suggested_blocks_are_the_only_change_to_any_checklist(
        which in 0usize..64,
        cut in proptest::prelude::any::<proptest::sample::Index>(),
        insert in proptest::prop_oneof![
            proptest::strategy::Just("\n- [ ] SSL certificate valid\n"),
            proptest::strategy::Just("\n1. Restart the `/health` pods\n"),
            proptest::strategy::Just("\n**Step 9: Check DNS records**\n"),
            proptest::strategy::Just("\n   - [ ] 5xx rates normal\n"),
            proptest::strategy::Just("\r\n> - [ ] Rate limiting working\r\n"),
            proptest::strategy::Just("- [ ] p95 within SLA"),
        ],
    ) {
        let mut texts: Vec<String> = ["tests/corpus", "tests/fixtures"]
            .iter()
            .flat_map(|d| std::fs::read_dir(root().join(d)).expect("dir").map(|e| e.expect("entry").path()))
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .map(|p| std::fs::read_to_string(p).expect("read"))
            .collect();
        texts.sort();
        let mut text = texts[which % texts.len()].clone();
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, insert);
        let rb = parse_runbook("p.md", &text);
        let proposed = golive_engine::suggest::suggest(&rb);
        let inserts = golive_engine::suggest::insertions(&rb, &proposed);
        let after = golive_engine::suggest::apply(&text, &inserts);
        proptest::prop_assert_eq!(remove_suggested(&after), text.clone());
        let again = parse_runbook("p.md", &after);
        proptest::prop_assert_eq!(again.items.len(), rb.items.len());
        for s in &proposed {
            let it = &again.items[s.item];
            proptest::prop_assert!(
                it.annotations.iter().any(|a| a.table.as_ref().is_some_and(|t| t.contains_key("suggested"))),
                "the block proposed for {} is not in it:\n{}", it.id, after
            );
        }
    }
}
