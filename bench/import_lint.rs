//! Benchmark: import + lint of the reference checklist and of generated
//! runbooks, side by side with a bare pulldown-cmark parse of the same text
//! (the floor any Markdown tool pays). Peak memory per size is read from a
//! child process's VmHWM, so it grows with the input alone.
//!
//!     cargo bench -p golive-runbook --bench import_lint
//!
//! A child run: `import_lint --memory ITEMS` prints the peak RSS in KiB;
//! `import_lint --generate ITEMS` prints a generated runbook (bench/lint.sh).

use golive_runbook::{LintOptions, lint, parse_runbook};
use pulldown_cmark::{Options, Parser};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A runbook of `items` items in the seed's shapes: 10 items a group, 10
/// groups a stage; every item with sub-checks, fields, blanks, a placeholder,
/// and every fifth a shell block.
pub fn generate(items: usize) -> String {
    let mut s = String::with_capacity(items * 420);
    s.push_str("# Generated Deployment Checklist\n\n**Version:** [VERSION NUMBER]\n\n");
    for i in 0..items {
        if i % 100 == 0 {
            let n = (items - i).min(100);
            s.push_str(&format!("## Stage {} ({n} items)\n\n", i / 100 + 1));
        }
        if i % 10 == 0 {
            let n = (items - i).min(10);
            s.push_str(&format!(
                "### Group {} ({n} items, 15 minutes)\n\n",
                i / 10 + 1
            ));
        }
        s.push_str(&format!(
            "- [ ] **Check number {i} passes**\n  - [ ] Endpoint [DOMAIN] answers (count: ____)\n  - [ ] Latency below target: ________ ms\n  - **Verification:** `curl -s https://[DOMAIN]/health` returns 200\n  - **Responsible:** DevOps Engineer\n  - **Sign-off:** ________________\n"
        ));
        if i % 5 == 0 {
            s.push_str("  ```bash\n  curl -s https://[DOMAIN]/health | jq '.status'\n  # Expected: \"healthy\"\n  ```\n");
        }
        s.push('\n');
    }
    s
}

fn import_lint(text: &str) -> usize {
    let rb = parse_runbook("bench.md", text);
    let diags = lint(&rb, &LintOptions::default());
    rb.items.len() + diags.len()
}

fn bare_parse(text: &str) -> usize {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    Parser::new_ext(text, opts).into_offset_iter().count()
}

/// Median and 90th percentile of `f` over runs filling about `budget`.
fn time(budget: Duration, mut f: impl FnMut() -> usize) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        black_box(f());
        samples.push(t.elapsed());
    }
    samples.sort();
    let n = samples.len();
    (samples[n / 2], samples[n * 9 / 10], n)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--generate") {
        let items: usize = args.get(pos + 1).and_then(|n| n.parse().ok()).unwrap_or(0);
        print!("{}", generate(items));
        return;
    }
    if let Some(pos) = args.iter().position(|a| a == "--memory") {
        let items: usize = args.get(pos + 1).and_then(|n| n.parse().ok()).unwrap_or(0);
        let bare = args.iter().any(|a| a == "--bare");
        let before = peak_rss_kib();
        let text = generate(items);
        let n = if bare {
            bare_parse(&text)
        } else {
            import_lint(&text)
        };
        println!("{} {} {}", before, peak_rss_kib(), n);
        return;
    }
    let seed_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/aiwg-production.md"
    );
    let seed = std::fs::read_to_string(seed_path).expect("examples/aiwg-production.md");
    let budget = Duration::from_secs(2);
    println!(
        "import + lint, median (p90) of repeated runs; ratio = golive / bare pulldown-cmark parse"
    );
    println!(
        "{:<28} {:>10} {:>18} {:>18} {:>7}",
        "input", "bytes", "golive ms", "bare parse ms", "ratio"
    );
    let mut cases = vec![("seed (aiwg-production.md)".to_string(), seed)];
    for n in [1_000, 10_000] {
        cases.push((format!("generated {n} items"), generate(n)));
    }
    for (name, text) in &cases {
        let (g50, g90, _) = time(budget, || import_lint(text));
        let (b50, b90, _) = time(budget, || bare_parse(text));
        println!(
            "{:<28} {:>10} {:>8.3} ({:>7.3}) {:>8.3} ({:>7.3}) {:>6.1}x",
            name,
            text.len(),
            ms(g50),
            ms(g90),
            ms(b50),
            ms(b90),
            g50.as_secs_f64() / b50.as_secs_f64()
        );
    }
    println!(
        "\npeak memory: VmHWM of a child process that generates the text, imports and lints it"
    );
    println!("(bare: the same child running only the pulldown-cmark parse)");
    println!(
        "{:>8} {:>12} {:>12} {:>14} {:>16}",
        "items", "start KiB", "peak KiB", "KiB per item", "bare peak KiB"
    );
    let exe = std::env::current_exe().expect("current exe");
    let child = |n: usize, bare: bool| -> Vec<u64> {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--memory", &n.to_string()]);
        if bare {
            cmd.arg("--bare");
        }
        let out = cmd.output().expect("child run");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    for n in [1_000, 10_000, 100_000] {
        if let ([start, peak, _], [_, bare_peak, _]) = (&child(n, false)[..], &child(n, true)[..]) {
            println!(
                "{:>8} {:>12} {:>12} {:>14.2} {:>16}",
                n,
                start,
                peak,
                peak.saturating_sub(*start) as f64 / n as f64,
                bare_peak
            );
        }
    }
}
