#!/usr/bin/env bash
# `golive lint` against markdownlint-cli2, the linter teams run on Markdown
# checklists today, as whole processes on the same files, in one hyperfine run.
# Needs hyperfine (Debian) and markdownlint-cli2 (npm); installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
command -v markdownlint-cli2 >/dev/null || npm install -g markdownlint-cli2
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp examples/aiwg-production.md "$work/seed.md"
cargo bench -q -p golive-runbook --bench import_lint -- --generate 10000 >"$work/gen10k.md"
for f in seed gen10k; do
  hyperfine -N -i --warmup 3 --min-runs 20 --export-markdown "$work/$f.md.result" \
    "target/release/golive lint $work/$f.md" \
    "markdownlint-cli2 $work/$f.md"
  cat "$work/$f.md.result"
done
