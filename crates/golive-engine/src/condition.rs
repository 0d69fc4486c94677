//! Conditions: CEL expressions compiled once, evaluated against an
//! observation. A false condition comes back with the actual values of the
//! fields it reads, so a failure shows what was seen beside what was expected.

use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as Cel};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Longest expression accepted, in characters.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of brackets accepted: the parser recurses per level, and a
/// stack overflow would abort the process.
pub const MAX_DEPTH: usize = 24;
/// Deepest expression tree accepted (a flat `a + b + …` chain is deep too):
/// evaluation recurses per level.
pub const MAX_TREE_DEPTH: usize = 64;
/// Most nested comprehensions (`all`, `exists`, `map` …) accepted: each level
/// multiplies the work.
pub const MAX_COMPREHENSIONS: usize = 3;

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    pub source: String,
    program: Program,
    /// Field paths the expression reads (`cert.days_left`, `status`).
    paths: Vec<String>,
    /// The same, from the expression's tree: each variable the expression
    /// reads and the fields selected from it, macro variables left out
    /// (`records.exists(r, r.type == 'A')` reads `records` only).
    free: Vec<String>,
}

/// Why an expression does not compile; `line`/`column` are 1-based, within
/// the expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at {line}:{column} of the expression)")]
pub struct ConditionError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// A field read by a condition and the value observed there.
pub type Actual = (String, Value);

fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // without the strings extension only the standard string functions exist
        let _ = env.add_extension(cel::extensions::strings);
        Arc::new(env)
    })
}

impl Condition {
    /// Compile `source`, refusing expressions too long or too deep to parse
    /// safely.
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        let at = |message: String, line: usize, column: usize| ConditionError {
            message,
            line,
            column,
        };
        if source.trim().is_empty() {
            return Err(at("the expression is empty".into(), 1, 1));
        }
        if source.chars().count() > MAX_LEN {
            return Err(at(
                format!("the expression is longer than {MAX_LEN} characters"),
                1,
                1,
            ));
        }
        let (depth, line, col) = max_depth(source);
        if depth > MAX_DEPTH {
            return Err(at(
                format!("brackets nest deeper than {MAX_DEPTH} levels"),
                line,
                col,
            ));
        }
        let program = env().compile(source).map_err(|e| {
            let first = e.errors.first();
            let (line, col) = first.map_or((1, 1), |p| {
                (p.pos.0.max(1) as usize, p.pos.1.max(0) as usize + 1)
            });
            let msg = first.map_or_else(|| "does not parse".to_string(), |p| p.msg.clone());
            at(msg, line, col)
        })?;
        let (depth, comprehensions) = tree_depth(program.expression());
        if depth > MAX_TREE_DEPTH {
            return Err(at(
                format!("the expression is more than {MAX_TREE_DEPTH} operations deep"),
                1,
                1,
            ));
        }
        if comprehensions > MAX_COMPREHENSIONS {
            return Err(at(
                format!("more than {MAX_COMPREHENSIONS} nested macros (all, exists, map, filter)"),
                1,
                1,
            ));
        }
        let free = free_paths(program.expression());
        Ok(Condition {
            source: source.to_string(),
            program,
            paths: referenced_paths(source),
            free,
        })
    }

    fn context(obs: &Value) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(env().clone());
        if let Value::Object(map) = obs {
            for (k, v) in map {
                ctx.add_variable_from_value(k.clone(), to_cel(v));
            }
        }
        ctx
    }

    /// Evaluate as a condition: true or false, with the actual values of the
    /// fields it reads.
    pub fn eval_bool(
        &self,
        obs: &Value,
        _now: jiff::Timestamp,
    ) -> Result<(bool, Vec<Actual>), String> {
        match self.program.execute(&Self::context(obs)) {
            Ok(Cel::Bool(b)) => Ok((b, self.actual_values(obs))),
            Ok(other) => Err(format!(
                "it gives {}, not true or false",
                show(&to_json(&other))
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Evaluate as a value (for `fill`).
    pub fn eval_value(&self, obs: &Value, _now: jiff::Timestamp) -> Result<Value, String> {
        self.program
            .execute(&Self::context(obs))
            .map(|v| to_json(&v))
            .map_err(|e| e.to_string())
    }

    /// The field paths the expression reads (`cert.days_left`,
    /// `baseline.error_rate`).
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The variables the expression reads, with the fields it selects of
    /// them (`cert.days_left`), from its tree: what lint checks against a
    /// kind's observation.
    pub fn reads(&self) -> &[String] {
        &self.free
    }

    /// The fields the expression reads that the observation has.
    pub fn actual_values(&self, obs: &Value) -> Vec<Actual> {
        self.paths
            .iter()
            .filter_map(|p| lookup(obs, p).map(|v| (p.clone(), v.clone())))
            .collect()
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// Depth of the expression tree and of comprehension nesting, walked without
/// recursion.
fn tree_depth(root: &cel::IdedExpr) -> (usize, usize) {
    use cel::common::ast::{EntryExpr, Expr};
    let (mut max, mut max_c) = (0, 0);
    let mut stack: Vec<(&cel::IdedExpr, usize, usize)> = vec![(root, 1, 0)];
    while let Some((e, d, c)) = stack.pop() {
        max = max.max(d);
        max_c = max_c.max(c);
        match &e.expr {
            Expr::Call(call) => {
                stack.extend(call.target.as_deref().map(|t| (t, d + 1, c)));
                stack.extend(call.args.iter().map(|a| (a, d + 1, c)));
            }
            Expr::Select(s) => stack.push((&s.operand, d + 1, c)),
            Expr::List(l) => stack.extend(l.elements.iter().map(|x| (x, d + 1, c))),
            Expr::Map(m) => {
                for en in &m.entries {
                    if let EntryExpr::MapEntry(me) = &en.expr {
                        stack.push((&me.key, d + 1, c));
                        stack.push((&me.value, d + 1, c));
                    }
                }
            }
            Expr::Struct(s) => {
                for en in &s.entries {
                    if let EntryExpr::StructField(f) = &en.expr {
                        stack.push((&f.value, d + 1, c));
                    }
                }
            }
            Expr::Comprehension(k) => {
                for x in [
                    &k.iter_range,
                    &k.accu_init,
                    &k.loop_cond,
                    &k.loop_step,
                    &k.result,
                ] {
                    stack.push((x, d + 1, c + 1));
                }
            }
            _ => {}
        }
    }
    (max, max_c)
}

/// The free variables of an expression and the field chains selected from
/// them, in the order met, walked without recursion; the variables a macro
/// binds are not free inside it.
fn free_paths(root: &cel::IdedExpr) -> Vec<String> {
    use cel::common::ast::{EntryExpr, Expr};
    let mut out: Vec<String> = Vec::new();
    let mut stack: Vec<(&cel::IdedExpr, Vec<&str>)> = vec![(root, Vec::new())];
    while let Some((e, bound)) = stack.pop() {
        match &e.expr {
            Expr::Ident(name) if !bound.contains(&name.as_str()) && !out.contains(name) => {
                out.push(name.clone());
            }
            Expr::Select(_) => {
                // a chain of selections down to a variable reads that path
                let mut fields = Vec::new();
                let mut at = e;
                while let Expr::Select(sel) = &at.expr {
                    fields.push(sel.field.as_str());
                    at = &sel.operand;
                }
                match &at.expr {
                    Expr::Ident(name) if !bound.contains(&name.as_str()) => {
                        fields.reverse();
                        let path = std::iter::once(name.as_str())
                            .chain(fields)
                            .collect::<Vec<_>>()
                            .join(".");
                        if !out.contains(&path) {
                            out.push(path);
                        }
                    }
                    _ => stack.push((at, bound)),
                }
            }
            Expr::Call(call) => {
                stack.extend(call.target.as_deref().map(|t| (t, bound.clone())));
                stack.extend(call.args.iter().map(|a| (a, bound.clone())));
            }
            Expr::List(l) => stack.extend(l.elements.iter().map(|x| (x, bound.clone()))),
            Expr::Map(m) => {
                for en in &m.entries {
                    if let EntryExpr::MapEntry(me) = &en.expr {
                        stack.push((&me.key, bound.clone()));
                        stack.push((&me.value, bound.clone()));
                    }
                }
            }
            Expr::Struct(st) => {
                for en in &st.entries {
                    if let EntryExpr::StructField(f) = &en.expr {
                        stack.push((&f.value, bound.clone()));
                    }
                }
            }
            Expr::Comprehension(k) => {
                stack.push((&k.iter_range, bound.clone()));
                stack.push((&k.accu_init, bound.clone()));
                let mut inner = bound.clone();
                inner.push(k.iter_var.as_str());
                inner.extend(k.iter_var2.as_deref());
                inner.push(k.accu_var.as_str());
                for x in [&k.loop_cond, &k.loop_step, &k.result] {
                    stack.push((x, inner.clone()));
                }
            }
            _ => {}
        }
    }
    out
}

/// Deepest bracket nesting outside string literals, and where it is reached.
fn max_depth(src: &str) -> (usize, usize, usize) {
    let (mut depth, mut max, mut at) = (0usize, 0usize, (1, 1));
    let (mut line, mut col) = (1, 0);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in src.chars() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    at = (line, col);
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max, at.0, at.1)
}

const KEYWORDS: &[&str] = &[
    "true", "false", "null", "in", "has", "size", "int", "uint", "double", "string",
];

/// Dotted identifier paths in `src` outside string literals; a method call's
/// name is dropped (`body.contains(` reads `body`).
fn referenced_paths(src: &str) -> Vec<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            i += 1;
            continue;
        }
        let after_dot = i > 0 && chars[i - 1] == '.';
        if (c.is_ascii_alphabetic() || c == '_')
            && !after_dot
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            let mut path: String = chars[start..i]
                .iter()
                .collect::<String>()
                .trim_end_matches('.')
                .to_string();
            if chars.get(i) == Some(&'(') {
                match path.rsplit_once('.') {
                    Some((head, _)) => path = head.to_string(),
                    None => continue,
                }
            }
            let root = path.split('.').next().unwrap_or("");
            if !KEYWORDS.contains(&root) && !out.contains(&path) {
                out.push(path);
            }
            continue;
        }
        i += 1;
    }
    out
}

pub(crate) fn lookup<'a>(obs: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obs, |v, k| v.get(k))
}

/// JSON into CEL, integers as `Int` so arithmetic works.
pub fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => {
            let map: HashMap<Key, Cel> = o
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// CEL back into JSON (for fills and messages).
pub fn to_json(v: &Cel) -> Value {
    match v {
        Cel::Null => Value::Null,
        Cel::Bool(b) => Value::Bool(*b),
        Cel::Int(i) => Value::from(*i),
        Cel::UInt(u) => Value::from(*u),
        Cel::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Cel::String(s) => Value::String(s.to_string()),
        Cel::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Cel::List(l) => Value::Array(l.iter().map(to_json).collect()),
        Cel::Map(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m.map.iter() {
                let key = match k {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                out.insert(key, to_json(v));
            }
            Value::Object(out)
        }
        other => Value::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    #[test]
    fn true_false_and_actual_values() {
        let c = Condition::compile("cert.days_left > 30 && cert.chain_valid").expect("compiles");
        let obs = json!({ "cert": { "days_left": 12, "chain_valid": true } });
        let (pass, actual) = c.eval_bool(&obs, now()).expect("evaluates");
        assert!(!pass);
        assert_eq!(
            actual,
            vec![
                ("cert.days_left".into(), json!(12)),
                ("cert.chain_valid".into(), json!(true))
            ]
        );
    }

    #[test]
    fn arithmetic_on_observed_integers() {
        let c = Condition::compile("cert.days_left - 50 > 0").expect("compiles");
        let (pass, _) = c
            .eval_bool(&json!({ "cert": { "days_left": 80 } }), now())
            .expect("evaluates");
        assert!(pass);
    }

    #[test]
    fn strings_methods_and_missing_fields() {
        let c = Condition::compile("headers['x-version'].startsWith('v1') && body.contains('ok')")
            .expect("compiles");
        let obs = json!({ "headers": { "x-version": "v1.1.0" }, "body": "all ok" });
        assert!(c.eval_bool(&obs, now()).expect("evaluates").0);
        assert_eq!(c.paths, vec!["headers", "body"]);
        let missing = Condition::compile("json.status == 'healthy'").expect("compiles");
        assert!(missing.eval_bool(&json!({ "json": {} }), now()).is_err());
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = Condition::compile("status == ").expect_err("incomplete");
        assert_eq!(e.line, 1);
        assert!(e.column >= 1);
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        let e = Condition::compile(&deep).expect_err("too deep");
        assert!(e.message.contains("nest"), "{e}");
        let chain = format!("{}1", "x + ".repeat(300));
        let e = Condition::compile(&chain).expect_err("too deep a chain");
        assert!(e.message.contains("operations deep"), "{e}");
        let nested = "[1].all(a, [1].all(b, [1].all(c, [1].all(d, true))))";
        assert!(Condition::compile(nested).is_err());
        assert!(Condition::compile("[1].all(a, [1].exists(b, a == b))").is_ok());
    }

    #[test]
    fn the_deepest_accepted_chain_evaluates_on_a_small_stack() {
        let chain = format!("{}1 == 61", "x + ".repeat(60));
        let c = Condition::compile(&chain).expect("60 terms are accepted");
        let handle = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                c.eval_bool(&json!({ "x": 1 }), jiff::Timestamp::now())
                    .map(|r| r.0)
            })
            .expect("thread");
        assert_eq!(handle.join().expect("no overflow"), Ok(true));
    }

    /// Regression: the command kind's default condition used `has()` on a
    /// bare name, which CEL rejects, so no command check without `expect`
    /// could be planned.
    #[test]
    fn every_kinds_default_condition_compiles() {
        for k in golive_probe::KINDS {
            assert!(
                Condition::compile(k.default_expect).is_ok(),
                "{}: {}",
                k.name,
                k.default_expect
            );
        }
    }

    #[test]
    fn fills_give_values() {
        let c = Condition::compile("cert.not_after").expect("compiles");
        let v = c
            .eval_value(
                &json!({ "cert": { "not_after": "2027-01-11T10:58:12Z" } }),
                now(),
            )
            .expect("value");
        assert_eq!(v, json!("2027-01-11T10:58:12Z"));
    }
}
