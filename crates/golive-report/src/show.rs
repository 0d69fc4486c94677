//! `golive show`: what golive reads in a runbook, as text or JSON.
//!
//! The JSON shape (documented in docs/show-json.md):
//! `{ file, title, summary, header, stages: [{ id, address, title, kind, line,
//! declared, items_found, loose…, items: [item], groups: [{ …, items: [item] }] }],
//! placeholders: { NAME: [line, …] } }`.

use golive_runbook::{
    Annotation, Blank, CommandBlock, Declared, Field, Group, Item, ItemKind, Loose, Runbook, Stage,
    Target,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Write `golive show --format json` to `out` as it is produced: one item's
/// JSON at a time, never the whole document's tree, so the output of a 50 MB
/// runbook needs little more memory than its import. Pretty-printed with
/// sorted keys, exactly as `serde_json::to_string_pretty` of the whole tree.
pub fn write_runbook_json(rb: &Runbook, out: impl std::io::Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    // keep the writer's own error (a closed pipe stays a closed pipe)
    serde_json::to_writer_pretty(&mut out, &RunbookJson(rb)).map_err(|e| {
        match e.io_error_kind() {
            Some(kind) => std::io::Error::from(kind),
            None => std::io::Error::other(e),
        }
    })?;
    std::io::Write::write_all(&mut out, b"\n")?;
    std::io::Write::flush(&mut out)
}

/// The whole document; its stages, groups and items are serialised lazily.
struct RunbookJson<'a>(&'a Runbook);

impl Serialize for RunbookJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let rb = self.0;
        let mut header = json!({
            "front_matter": rb.front_matter.as_ref().map(|f| f.text.clone()),
        });
        loose_json(&mut header, &rb.header);
        let small = into_map(json!({
            "file": rb.path,
            "title": rb.title.as_ref().map(|t| t.text.clone()),
            "summary": summary_json(rb),
            "header": header,
            "placeholders": placeholder_lines(rb),
            "annotation_placeholders": placeholder_lines_where(rb, true),
        }));
        Merged {
            small,
            lazy: vec![("stages", Lazy::Stages(rb))],
        }
        .serialize(ser)
    }
}

/// A JSON object from small entries built at once and big ones serialised
/// when their turn comes, all in sorted key order (as a `Map` keeps them).
struct Merged<'a> {
    small: Map<String, Value>,
    /// Sorted by key.
    lazy: Vec<(&'static str, Lazy<'a>)>,
}

/// The big parts of the document, serialised one element at a time.
enum Lazy<'a> {
    Stages(&'a Runbook),
    Groups(&'a Runbook, &'a [Group]),
    Items(&'a Runbook, &'a [usize]),
}

impl Serialize for Merged<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(self.small.len() + self.lazy.len()))?;
        let mut lazy = self.lazy.iter().peekable();
        for (key, value) in &self.small {
            while let Some((k, v)) = lazy.next_if(|(k, _)| *k < key.as_str()) {
                map.serialize_entry(k, v)?;
            }
            map.serialize_entry(key, value)?;
        }
        for (k, v) in lazy {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Lazy<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match *self {
            Lazy::Stages(rb) => ser.collect_seq(rb.stages.iter().map(|s| stage_json(rb, s))),
            Lazy::Groups(rb, groups) => ser.collect_seq(groups.iter().map(|g| group_json(rb, g))),
            Lazy::Items(rb, items) => {
                ser.collect_seq(items.iter().map(|&i| item_json_of(&rb.items[i])))
            }
        }
    }
}

fn stage_json<'a>(rb: &'a Runbook, s: &'a Stage) -> Merged<'a> {
    let mut v = json!({
        "id": s.id,
        "address": s.address,
        "title": s.title(),
        "kind": s.kind.as_str(),
        "line": s.heading.loc.line,
        "declared": declared_json(&s.heading.declared),
        "items_found": s.all_items().count(),
        "criteria": criteria_json(rb, &s.criteria),
        "signers": s.signers,
    });
    loose_json(&mut v, &s.loose);
    Merged {
        small: into_map(v),
        lazy: vec![
            ("groups", Lazy::Groups(rb, &s.groups)),
            ("items", Lazy::Items(rb, &s.items)),
        ],
    }
}

fn group_json<'a>(rb: &'a Runbook, g: &'a Group) -> Merged<'a> {
    let mut v = json!({
        "id": g.id,
        "address": g.address,
        "title": g.title(),
        "line": g.heading.loc.line,
        "declared": declared_json(&g.heading.declared),
        "items_found": g.items.len(),
        "criteria": criteria_json(rb, &g.criteria),
        "choose_one": g.choose_one.iter().map(|c| json!({
            "title": c.title,
            "line": c.loc.line,
            "items": c.items.iter().map(|&i| &rb.items[i].id).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    loose_json(&mut v, &g.loose);
    Merged {
        small: into_map(v),
        lazy: vec![("items", Lazy::Items(rb, &g.items))],
    }
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn summary_json(rb: &Runbook) -> Value {
    let kind = |k: ItemKind| rb.items.iter().filter(|i| i.kind == k).count();
    json!({
        "stages": rb.stages.len(),
        "groups": rb.groups().count(),
        "items": rb.items.len(),
        "tasks": kind(ItemKind::Task),
        "steps": kind(ItemKind::Step),
        "rows": kind(ItemKind::Row),
        "subchecks": rb.items.iter().map(|i| i.subchecks.len()).sum::<usize>(),
        "blanks": rb.all_blanks().count(),
        "command_blocks": rb.all_command_blocks().count(),
        "annotations": rb.all_annotations().count(),
        "placeholders": placeholder_lines(rb).len(),
    })
}

/// Lines of every use of each placeholder in the document's text (uses in
/// `golive` annotations are listed apart).
fn placeholder_lines(rb: &Runbook) -> BTreeMap<String, Vec<u32>> {
    placeholder_lines_where(rb, false)
}

fn placeholder_lines_where(rb: &Runbook, in_annotation: bool) -> BTreeMap<String, Vec<u32>> {
    let mut map: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for p in rb
        .placeholders
        .iter()
        .filter(|p| p.in_annotation == in_annotation)
    {
        map.entry(p.name.clone()).or_default().push(p.loc.line);
    }
    map
}

fn declared_json(d: &Declared) -> Value {
    if *d == Declared::default() {
        return Value::Null;
    }
    json!({
        "items": d.items.as_ref().map(|x| x.0),
        "budget": d.budget.as_ref().map(|b| json!({
            "seconds": b.seconds, "text": b.text, "strict": b.strict,
        })),
        "optional": d.optional,
    })
}

fn loose_json(v: &mut Value, l: &Loose) {
    v["fields"] = l.fields.iter().map(field_json).collect();
    v["blanks"] = l.blanks.iter().map(blank_json).collect();
    v["commands"] = l.commands.iter().map(command_json).collect();
    v["annotations"] = l.annotations.iter().map(annotation_json).collect();
}

fn field_json(f: &Field) -> Value {
    json!({ "label": f.label, "value": f.value, "line": f.loc.line, "choices": f.choices })
}

/// Rollback criteria with the rule each states (`null` when a person
/// judges).
fn criteria_json(rb: &Runbook, criteria: &[golive_runbook::Criterion]) -> Value {
    use golive_engine::rules::{RuleKind, rule_of};
    criteria
        .iter()
        .map(|c| {
            let rule = match rule_of(&c.text) {
                RuleKind::SmokeBelow { min, of } => {
                    json!({ "kind": "smoke-below", "min": min, "of": of })
                }
                RuleKind::HealthChecksFailing => json!({ "kind": "health-checks-failing" }),
                RuleKind::Sustained {
                    what,
                    limit,
                    window_s,
                } => json!({ "kind": "threshold", "what": what, "limit": limit, "window_s": window_s }),
                RuleKind::Baseline {
                    what,
                    factor,
                    window_s,
                } => json!({ "kind": "baseline", "what": what, "factor": factor, "window_s": window_s }),
                RuleKind::Judgement => Value::Null,
            };
            json!({
                "text": c.text,
                "line": c.loc.line,
                "item": c.item.map(|i| &rb.items[i].id),
                "rule": rule,
            })
        })
        .collect()
}

fn blank_json(b: &Blank) -> Value {
    json!({ "id": b.id, "label": b.label, "line": b.loc.line, "column": b.loc.col })
}

fn command_json(c: &CommandBlock) -> Value {
    json!({
        "line": c.loc.line,
        "info": c.info,
        "context": c.context,
        "commands": c.commands.iter().map(|k| json!({
            "line": k.loc.line, "text": k.text, "expected": k.expected,
        })).collect::<Vec<_>>(),
    })
}

fn annotation_json(a: &Annotation) -> Value {
    let mut v = json!({ "line": a.loc.line });
    match (&a.table, &a.error) {
        (Some(t), _) => v["keys"] = serde_json::to_value(t).unwrap_or(Value::Null),
        (None, Some((msg, loc))) => {
            v["error"] = json!({ "message": msg, "line": loc.line, "column": loc.col })
        }
        _ => {}
    }
    v
}

fn item_json_of(i: &Item) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(i.id));
    v.insert("address".into(), json!(i.address));
    v.insert("kind".into(), json!(i.kind.as_str()));
    v.insert("title".into(), json!(i.title));
    if let Some(t) = &i.text {
        v.insert("text".into(), json!(t));
    }
    if let Some(s) = &i.section {
        v.insert("section".into(), json!(s));
    }
    v.insert("line".into(), json!(i.loc.line));
    v.insert("checked".into(), json!(i.checked()));
    v.insert("declared".into(), declared_json(&i.declared));
    v.insert("optional".into(), json!(i.optional));
    v.insert(
        "subchecks".into(),
        i.subchecks
            .iter()
            .map(|s| {
                json!({
                    "id": s.id, "text": s.text, "line": s.loc.line,
                    "checked": s.marker.checked, "depth": s.depth,
                })
            })
            .collect(),
    );
    v.insert("fields".into(), i.fields.iter().map(field_json).collect());
    v.insert("blanks".into(), i.blanks.iter().map(blank_json).collect());
    v.insert(
        "commands".into(),
        i.commands.iter().map(command_json).collect(),
    );
    v.insert(
        "annotations".into(),
        i.annotations.iter().map(annotation_json).collect(),
    );
    Value::Object(v)
}

pub fn item_json(rb: &Runbook, t: Target) -> Value {
    match t {
        Target::Item(i) => item_json_of(&rb.items[i]),
        Target::SubCheck(i, k) => {
            let s = &rb.items[i].subchecks[k];
            json!({
                "item": rb.items[i].id, "id": s.id, "text": s.text,
                "line": s.loc.line, "checked": s.marker.checked,
            })
        }
    }
}

pub fn item_text(rb: &Runbook, t: Target) -> String {
    let mut out = String::new();
    match t {
        Target::Item(i) => {
            let it = &rb.items[i];
            let _ = writeln!(out, "{}  {}", it.address, it.title);
            let _ = writeln!(out, "  id       {}", it.id);
            let _ = writeln!(out, "  kind     {}", it.kind.as_str());
            let _ = writeln!(out, "  at       {}:{}", rb.path, it.loc.line);
            let _ = writeln!(out, "  checked  {}", it.checked());
            if let Some(b) = &it.declared.budget {
                let _ = writeln!(out, "  budget   {} ({} s)", b.text, b.seconds);
            }
            for s in &it.subchecks {
                let _ = writeln!(
                    out,
                    "  {}[{}] {}  (line {})",
                    "  ".repeat(s.depth as usize - 1),
                    if s.marker.checked { "x" } else { " " },
                    s.text,
                    s.loc.line
                );
            }
            for f in &it.fields {
                let _ = writeln!(out, "  {}: {}  (line {})", f.label, f.value, f.loc.line);
            }
            for b in &it.blanks {
                let _ = writeln!(
                    out,
                    "  blank {}  \"{}\"  (line {})",
                    b.id, b.label, b.loc.line
                );
            }
            for c in it.commands.iter().flat_map(|c| &c.commands) {
                let _ = writeln!(
                    out,
                    "  $ {}  (line {})",
                    c.text.replace('\n', "\n    "),
                    c.loc.line
                );
                if let Some(e) = &c.expected {
                    let _ = writeln!(out, "    expected: {}", e.replace('\n', " / "));
                }
            }
            for a in &it.annotations {
                let _ = writeln!(out, "  golive block at line {}", a.loc.line);
            }
        }
        Target::SubCheck(i, k) => {
            let s = &rb.items[i].subchecks[k];
            let _ = writeln!(
                out,
                "[{}] {}",
                if s.marker.checked { "x" } else { " " },
                s.text
            );
            let _ = writeln!(out, "  id       {}", s.id);
            let _ = writeln!(
                out,
                "  item     {} ({})",
                rb.items[i].id, rb.items[i].address
            );
            let _ = writeln!(out, "  at       {}:{}", rb.path, s.loc.line);
        }
    }
    out.trim_end().to_string()
}

fn count_text(found: usize, d: &Declared) -> String {
    let mut s = format!("{found} item{}", if found == 1 { "" } else { "s" });
    if let Some((n, _)) = d.items
        && n != found
    {
        let _ = write!(s, " (declares {n})");
    }
    if let Some(b) = &d.budget {
        let _ = write!(
            s,
            " · budget {}{}",
            if b.strict { "<" } else { "" },
            minutes(b.seconds)
        );
    }
    if d.optional {
        let _ = write!(s, " · {}", d.condition.as_deref().unwrap_or("optional"));
    }
    s
}

fn minutes(secs: u64) -> String {
    if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

fn item_line(out: &mut String, it: &Item) {
    let mark = match (&it.marker, it.kind) {
        (Some(m), _) if m.checked => "[x]",
        (Some(_), _) => "[ ]",
        (None, _) => " » ",
    };
    let mut extra = Vec::new();
    if let Some(r) = it.field("Responsible") {
        extra.push(r.value.clone());
    }
    if let Some(b) = &it.declared.budget {
        extra.push(format!("budget {}", minutes(b.seconds)));
    }
    let n = |k: usize, w: &str| format!("{k} {w}{}", if k == 1 { "" } else { "s" });
    if !it.subchecks.is_empty() {
        extra.push(n(it.subchecks.len(), "sub-check"));
    }
    if !it.blanks.is_empty() {
        extra.push(n(it.blanks.len(), "blank"));
    }
    let cmds: usize = it.commands.iter().map(|c| c.commands.len()).sum();
    if cmds > 0 {
        extra.push(n(cmds, "command"));
    }
    if !it.annotations.is_empty() {
        extra.push("automated".into());
    }
    let _ = write!(out, "      {:<8} {mark} {}", it.address, it.title);
    if !extra.is_empty() {
        let _ = write!(out, "  · {}", extra.join(" · "));
    }
    out.push('\n');
}

pub fn runbook_text(rb: &Runbook) -> String {
    let mut out = String::new();
    let title = rb.title.as_ref().map_or("(untitled)", |t| t.text.as_str());
    let s = summary_json(rb);
    let _ = writeln!(out, "{title}  ({})", rb.path);
    let _ = writeln!(
        out,
        "{} stages · {} groups · {} items ({} tasks, {} steps, {} table rows) · {} sub-checks · {} blanks · {} command blocks · {} annotations · {} placeholders",
        s["stages"],
        s["groups"],
        s["items"],
        s["tasks"],
        s["steps"],
        s["rows"],
        s["subchecks"],
        s["blanks"],
        s["command_blocks"],
        s["annotations"],
        s["placeholders"]
    );
    for f in &rb.header.fields {
        let _ = writeln!(out, "  {}: {}", f.label, f.value);
    }
    for st in &rb.stages {
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<4} {}  [{}]  {}",
            st.address,
            st.title(),
            st.kind.as_str(),
            count_text(st.all_items().count(), &st.heading.declared)
        );
        for &i in &st.items {
            item_line(&mut out, &rb.items[i]);
        }
        for g in &st.groups {
            let _ = writeln!(
                out,
                "  {:<6} {}  {}",
                g.address,
                g.title(),
                count_text(g.items.len(), &g.heading.declared)
            );
            for &i in &g.items {
                item_line(&mut out, &rb.items[i]);
            }
        }
    }
    let places = placeholder_lines(rb);
    let _ = writeln!(out, "\nPlaceholders ({})", places.len());
    for (name, lines) in &places {
        let list: Vec<String> = lines.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "  {:<24} {:>3}×  lines {}",
            name,
            lines.len(),
            list.join(", ")
        );
    }
    let blanks: Vec<&Blank> = {
        let mut b: Vec<&Blank> = rb.all_blanks().collect();
        b.sort_by_key(|b| b.loc.start);
        b
    };
    let _ = writeln!(out, "\nBlanks ({})", blanks.len());
    for b in blanks {
        let _ = writeln!(
            out,
            "  {:>5}:{:<3} {:<32} {}",
            b.loc.line, b.loc.col, b.label, b.id
        );
    }
    let mut blocks: Vec<&CommandBlock> = rb.all_command_blocks().collect();
    blocks.sort_by_key(|c| c.loc.start);
    let _ = writeln!(out, "\nCommand blocks ({})", blocks.len());
    for c in blocks {
        for k in &c.commands {
            let first = k.text.lines().next().unwrap_or("").trim();
            let more = if k.text.lines().count() > 1 {
                " …"
            } else {
                ""
            };
            let _ = write!(out, "  {:>5}  {first}{more}", k.loc.line);
            if let Some(e) = &k.expected {
                let _ = write!(out, "   → expect {}", e.lines().next().unwrap_or(""));
            }
            out.push('\n');
        }
    }
    out
}
