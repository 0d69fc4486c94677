#!/usr/bin/env bash
# Wall time and peak memory of `golive demo` (release binary already built):
# the success path and a rollback path, RUNS times each.
#
#     bash bench/demo.sh [RUNS]
#
# Peak memory is the demo process's own (GNU time's maximum resident set);
# each golive command it runs is a process of its own, measured apart below.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release -q -p golive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| path | run | wall s | peak RSS MB | outcome | rollback |"
echo "|---|---:|---:|---:|---|---|"
for path in success error-rate down; do
  for i in $(seq "$runs"); do
    args=(demo --out "$work/$path-$i")
    [ "$path" = success ] || args+=(--fault "$path")
    /usr/bin/time -f "%e %M" -o "$work/time" target/release/golive "${args[@]}" >"$work/out" 2>&1 || true
    read -r wall rss < <(tail -1 "$work/time")
    outcome=$(awk -F': ' '/^Outcome:/ { print $2 }' "$work/out")
    rb=$(awk '/^Rolled back in/ { print $4 " " $5 " " $6 " " $7 }' "$work/out")
    printf '| %s | %d | %.2f | %.1f | %s | %s |\n' "$path" "$i" "$wall" "$(echo "$rss / 1024" | bc -l)" "$outcome" "${rb:--}"
  done
done
# the largest of the commands the demo runs: a smoke run, alone
out="$work/success-1"
/usr/bin/time -f "%M" -o "$work/time" target/release/golive status --store "$out/golive.db" >/dev/null
echo
echo "peak RSS of one command the demo runs (golive status on its store): $(echo "$(cat "$work/time") / 1024" | bc -l | cut -c1-5) MB"
