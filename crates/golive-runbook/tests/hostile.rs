//! Documents written to be slow: many blanks on one long line. The work of
//! import and lint is measured by what they allocate (a count this test's
//! allocator keeps per thread, the same on every run), not by a clock:
//! doubling the input may at most double the work, plus a margin.

use golive_runbook::{LintOptions, lint, parse_runbook};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are const-initialised thread-locals, which never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        BYTES.with(|c| c.set(c.get() + layout.size() as u64));
        // SAFETY: the caller's layout is passed through unchanged
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        BYTES.with(|c| c.set(c.get() + new_size as u64));
        // SAFETY: as for `alloc`: the arguments are passed through unchanged
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations and bytes allocated by importing and linting `text`.
fn work(text: &str) -> (u64, u64) {
    let (a0, b0) = (ALLOCS.with(Cell::get), BYTES.with(Cell::get));
    let rb = parse_runbook("hostile.md", text);
    let findings = lint(&rb, &LintOptions::default());
    let blanks = rb.all_blanks().count();
    drop((rb, findings));
    assert!(blanks > 0, "the document has blanks");
    (ALLOCS.with(Cell::get) - a0, BYTES.with(Cell::get) - b0)
}

/// Work for `n` and `2n` repetitions: what grew more than 2.5 times.
fn superlinear(name: &str, doc: impl Fn(usize) -> String, n: usize) -> Option<String> {
    let (a1, b1) = work(&doc(n));
    let (a2, b2) = work(&doc(2 * n));
    let ratio = |x: u64, y: u64| y as f64 / x as f64;
    (ratio(a1, a2) > 2.5 || ratio(b1, b2) > 2.5).then(|| {
        format!(
            "{name}: {n} → {} repetitions: allocations {a1} → {a2} ({:.1}×), bytes {b1} → {b2} ({:.1}×)",
            2 * n,
            ratio(a1, a2),
            ratio(b1, b2)
        )
    })
}

/// One 21 KB line of `[DOMAIN] ____ **x:** ` × 1,000 took 38 s to lint and
/// `____ ` × 4,000 took 12 s: every blank's id was found by trying `-2`,
/// `-3` … against every id taken before it, and an item's id (its whole
/// title) was repeated in each of its blanks' ids.
#[test]
fn blanks_on_one_long_line_take_linear_work() {
    let item = |line: String| format!("# Hostile\n\n## Checks\n\n- [ ] **item**\n  {line}\n");
    let cases = [
        superlinear("blanks in an item", |n| item("____ ".repeat(n)), 200),
        superlinear(
            "blanks and fields in an item",
            |n| item("[DOMAIN] ____ **x:** ".repeat(n)),
            200,
        ),
        superlinear(
            "blanks and fields in an item's title",
            |n| {
                format!(
                    "# Hostile\n\n## Checks\n\n- [ ] {}\n",
                    "[DOMAIN] ____ **x:** ".repeat(n)
                )
            },
            200,
        ),
        superlinear(
            "blanks and fields outside items",
            |n| {
                format!(
                    "# Hostile\n\n## Checks\n\n{}\n",
                    "[DOMAIN] ____ **x:** ".repeat(n)
                )
            },
            200,
        ),
        superlinear(
            "sub-checks of one title",
            |n| item("\n  - [ ] same ____".repeat(n)),
            200,
        ),
    ];
    let failed: Vec<String> = cases.into_iter().flatten().collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
