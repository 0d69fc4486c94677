//! Rollback criteria as rules: the document's Rollback Decision Criteria,
//! each read into something the engine can evaluate, and who may act on it.
//!
//! ```text
//! - [ ] Smoke tests <19/20 passing (95% threshold)        → SmokeBelow { min: 19, of: 20 }, automatic
//! - [ ] Health checks failing (any endpoint returning non-200) → HealthChecksFailing, automatic
//! - [ ] Error rate >1% sustained for >5 minutes          → Sustained { what: "Error rate", limit: ">1%", window: 300 s }
//! - [ ] Data loss detected                               → Judgement (a person decides)
//! ```

use golive_runbook::Runbook;

/// What a criterion asks.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// Fewer than `min` of `of` smoke tests passed.
    SmokeBelow { min: usize, of: usize },
    /// A health check (an item whose title names one) failed or could not
    /// observe.
    HealthChecksFailing,
    /// A measured value beyond `limit` at every evaluation for `window_s`
    /// seconds (evaluated by watching; Prometheus alerting-rule semantics).
    Sustained {
        what: String,
        limit: String,
        window_s: u64,
    },
    /// A measured value more than `factor` times its baseline, the value
    /// recorded before GO (`Error rate >2x baseline`), for `window_s`
    /// seconds (0: at any evaluation).
    Baseline {
        what: String,
        factor: f64,
        window_s: u64,
    },
    /// A person's judgement: the rule names it, a person raises it.
    Judgement,
}

/// One criterion of the document as a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackRule {
    /// The criterion's item.
    pub item: usize,
    pub kind: RuleKind,
    /// Whether the rule may start the rollback with the automatic authority
    /// (the document's: failing health checks; and the smoke threshold).
    pub automatic: bool,
}

/// The rules of the document's rollback criteria written as items (the
/// reference's Rollback Decision Criteria): those a person can sign and a
/// check can watch. Criteria written as plain bullets have a rule too
/// ([`rule_of`]) but no item.
pub fn rollback_rules(rb: &Runbook) -> Vec<RollbackRule> {
    let mut out = Vec::new();
    for s in &rb.stages {
        let all = s
            .criteria
            .iter()
            .chain(s.groups.iter().flat_map(|g| g.criteria.iter()));
        for i in all.filter_map(|c| c.item) {
            let kind = rule_of(&rb.items[i].title);
            let automatic = matches!(
                kind,
                RuleKind::SmokeBelow { .. } | RuleKind::HealthChecksFailing
            );
            out.push(RollbackRule {
                item: i,
                kind,
                automatic,
            });
        }
    }
    out.sort_by_key(|r| r.item);
    out
}

/// The rule a criterion's text states.
pub fn rule_of(title: &str) -> RuleKind {
    let t = title.to_lowercase();
    if t.contains("smoke")
        && let Some(lt) = t.find('<')
    {
        let rest = &t[lt + 1..];
        let min: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let of: String = rest[min.len()..]
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let (Ok(min), Ok(of)) = (min.parse(), of.parse()) {
            return RuleKind::SmokeBelow { min, of };
        }
    }
    if t.contains("health check") {
        return RuleKind::HealthChecksFailing;
    }
    if let Some(at) = t.find("sustained for") {
        let head = &title[..at];
        let (what, limit) = match head.find('>') {
            Some(gt) => (head[..gt].trim().to_string(), head[gt..].trim().to_string()),
            None => (head.trim().to_string(), String::new()),
        };
        let window = t[at + "sustained for".len()..]
            .trim()
            .trim_start_matches(['>', '<', ' '])
            .to_string();
        let window_s = golive_runbook::text::parse_budget(
            window
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .as_str(),
        )
        .map_or(0, |b| b.seconds);
        return RuleKind::Sustained {
            what,
            limit,
            window_s,
        };
    }
    let title = title.trim_start_matches(['⚠', '\u{fe0f}', '🚨', ' ']);
    let t = title.to_lowercase();
    let Some(gt) = t.find('>') else {
        return RuleKind::Judgement;
    };
    let what = title[..gt].trim().trim_end_matches(['*', ' ']).trim();
    let rest = t[gt + 1..].trim_start_matches(['=', ' ']);
    let window_s = t
        .find(" for ")
        .and_then(|at| {
            let words: Vec<&str> = t[at + 5..].split_whitespace().take(2).collect();
            golive_runbook::text::parse_budget(&words.join(" "))
        })
        .map_or(0, |b| b.seconds);
    if what.is_empty() || !what.chars().any(char::is_alphabetic) {
        return RuleKind::Judgement;
    }
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let after = rest[number.len()..].trim_start();
    if let Ok(factor) = number.parse::<f64>()
        && (after.starts_with('x') || after.starts_with('×'))
        && after.contains("baseline")
    {
        return RuleKind::Baseline {
            what: what.to_string(),
            factor,
            window_s,
        };
    }
    if !number.is_empty() {
        let limit: String = std::iter::once('>')
            .chain(
                rest.chars()
                    .take_while(|c| !c.is_whitespace() && *c != '*' && *c != ':'),
            )
            .collect();
        return RuleKind::Sustained {
            what: what.to_string(),
            limit,
            window_s,
        };
    }
    RuleKind::Judgement
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bullets_with_thresholds_and_baselines_become_rules() {
        assert_eq!(
            rule_of("⚠️ Error rate >2x baseline: roll back at once"),
            RuleKind::Baseline {
                what: "Error rate".into(),
                factor: 2.0,
                window_s: 0
            }
        );
        assert_eq!(
            rule_of("Response time > 2x baseline for 5 minutes"),
            RuleKind::Baseline {
                what: "Response time".into(),
                factor: 2.0,
                window_s: 300
            }
        );
        assert_eq!(
            rule_of("Error rate > 1%"),
            RuleKind::Sustained {
                what: "Error rate".into(),
                limit: ">1%".into(),
                window_s: 0
            }
        );
        assert_eq!(rule_of("Customer complaints spike"), RuleKind::Judgement);
        assert_eq!(rule_of("Data loss detected"), RuleKind::Judgement);
    }

    #[test]
    fn the_seeds_criteria_become_rules() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/aiwg-production.md"
        ))
        .expect("example");
        let rb = golive_runbook::parse_runbook("aiwg.md", &text);
        let rules = rollback_rules(&rb);
        assert_eq!(rules.len(), 12);
        assert_eq!(rules[0].kind, RuleKind::SmokeBelow { min: 19, of: 20 });
        assert_eq!(rules[1].kind, RuleKind::HealthChecksFailing);
        assert!(rules[1].automatic);
        assert_eq!(
            rules[2].kind,
            RuleKind::Sustained {
                what: "Error rate".into(),
                limit: ">1%".into(),
                window_s: 300
            }
        );
        assert_eq!(
            rules[5].kind,
            RuleKind::Sustained {
                what: "p99 latency".into(),
                limit: ">5s".into(),
                window_s: 600
            }
        );
        assert_eq!(rules[4].kind, RuleKind::Judgement);
        assert!(!rules[4].automatic);
    }
}
