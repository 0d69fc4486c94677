//! Shared by the runbook crate's integration tests: the fixture files.

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (name, text) of the reference checklist, every `tests/fixtures/*.md` and
/// every checklist of the corpus of other teams' shapes, `tests/corpus/*.md`.
pub fn fixtures() -> Vec<(String, String)> {
    let mut paths = vec![root().join("examples/aiwg-production.md")];
    for dir in ["tests/fixtures", "tests/corpus"] {
        let mut more: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .expect(dir)
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        more.sort();
        paths.extend(more);
    }
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("fixture is UTF-8");
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                text,
            )
        })
        .collect()
}
