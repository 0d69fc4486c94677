//! Placeholders in shell commands are substituted quoted for the context they
//! sit in, so a value is always one literal word and never runs as code.

use crate::spec::{SpecError, Vars};

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

/// `value` quoted for insertion into a POSIX shell script at a point where
/// the script is in the given quoting state.
fn quote_for(value: &str, state: Quote) -> String {
    match state {
        // 'abc' with each ' written as '\''
        Quote::None => format!("'{}'", value.replace('\'', "'\\''")),
        // close the single-quoted string, add the value quoted, reopen
        Quote::Single => format!("'{}'", quote_for(value, Quote::None)),
        Quote::Double => {
            let mut out = String::with_capacity(value.len() + 8);
            for c in value.chars() {
                if matches!(c, '\\' | '"' | '$' | '`') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

/// Quote `value` for the spot at byte `at` of `script`.
pub fn quote_into_script(script: &str, at: usize, value: &str) -> String {
    quote_for(value, state_at(script, at))
}

/// The quoting state just before byte `at`.
fn state_at(script: &str, at: usize) -> Quote {
    let mut state = Quote::None;
    let mut chars = script[..at].chars();
    while let Some(c) = chars.next() {
        match (state, c) {
            (Quote::None, '\\') | (Quote::Double, '\\') => {
                chars.next();
            }
            (Quote::None, '\'') => state = Quote::Single,
            (Quote::Single, '\'') => state = Quote::None,
            (Quote::None, '"') => state = Quote::Double,
            (Quote::Double, '"') => state = Quote::None,
            _ => {}
        }
    }
    state
}

/// Substitute every `[NAME]` in a shell script with its value, quoted for
/// where it stands. A value holding a NUL byte cannot be passed to a shell and
/// is refused.
pub fn substitute_shell(script: &str, vars: &Vars) -> Result<String, SpecError> {
    let mut out = String::with_capacity(script.len());
    let mut last = 0;
    for (s, e, name) in golive_runbook::text::scan_placeholders(script) {
        let value = vars
            .get(&name)
            .ok_or_else(|| SpecError::Unbound(name.clone()))?;
        if value.contains('\0') {
            return Err(SpecError::Invalid(
                format!("[{name}]"),
                "a value with a NUL byte cannot be passed to a shell".into(),
            ));
        }
        out.push_str(&script[last..s]);
        out.push_str(&quote_into_script(script, s, value));
        last = e;
    }
    out.push_str(&script[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    fn run(script: &str) -> (String, i32) {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    #[test]
    fn each_quoting_context_gives_the_literal_value() {
        let mut vars = Vars::new();
        let v = "a'b\"c$(echo X)`echo Y`;\\n\nz";
        vars.set("V", v);
        for template in [
            "printf %s [V]",
            "printf %s \"[V]\"",
            "printf %s '[V]'",
            "printf %s pre[V]post",
            "printf %s \"pre [V] post\"",
        ] {
            let script = substitute_shell(template, &vars).expect("bound");
            let (out, code) = run(&script);
            assert_eq!(code, 0, "{template}");
            let expect = template
                .trim_start_matches("printf %s ")
                .trim_matches(['"', '\''])
                .replace("[V]", v);
            assert_eq!(out, expect, "{template} → {script}");
        }
    }

    fn hostile() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just(";".to_string()),
                Just("$(".to_string()),
                Just(")".to_string()),
                Just("`".to_string()),
                Just("'".to_string()),
                Just("\"".to_string()),
                Just("\\".to_string()),
                Just("\n".to_string()),
                Just("|".to_string()),
                Just("&".to_string()),
                Just("$HOME".to_string()),
                Just("${IFS}".to_string()),
                Just(" ".to_string()),
                Just("*".to_string()),
                Just("touch PWNED".to_string()),
                "[a-z]{0,4}".prop_map(|s| s),
            ],
            0..12,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        /// No value, however hostile, runs as a command: the script prints it
        /// back literally and the marker file is never created.
        #[test]
        fn injected_values_never_run(value in hostile(), template in 0usize..4) {
            let dir = std::env::temp_dir().join(format!("golive-inject-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            let mut vars = Vars::new();
            vars.set("V", &value);
            let templates = [
                "printf %s [V]",
                "printf %s \"[V]\"",
                "printf %s '[V]'",
                "printf %s x[V]y",
            ];
            let script = substitute_shell(templates[template], &vars).expect("bound");
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .current_dir(&dir)
                .output()
                .expect("sh");
            let printed = String::from_utf8_lossy(&out.stdout).into_owned();
            let expect = match template {
                3 => format!("x{value}y"),
                _ => value.clone(),
            };
            prop_assert_eq!(printed, expect);
            prop_assert!(!dir.join("PWNED").exists(), "an injected command ran: {}", script);
        }
    }
}
