#!/usr/bin/env bash
# Documents written to be slow or to crash: many blanks on one line, deep
# nesting, big generated runbooks. Prints wall time, peak memory (max RSS) and
# exit code of each golive command on each, one line apiece. Needs GNU time
# (/usr/bin/time). GOLIVE=path measures another build of the binary; LIMIT
# stops each command after that many seconds (default 600; exit 124).
set -euo pipefail
cd "$(dirname "$0")/.."
golive=${GOLIVE:-target/release/golive}
[ -n "${GOLIVE:-}" ] || cargo build --release -q -p golive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

repeat() { # repeat TEXT N
  local i
  for ((i = 0; i < $2; i++)); do printf '%s' "$1"; done
}
head='# Hostile\n\n## Checks\n\n'
for n in 1000 2000; do
  { printf "$head- [ ] "; repeat '[DOMAIN] ____ **x:** ' "$n"; echo; } >"$work/title-$n.md"
  { printf "$head- [ ] **item**\n  "; repeat '[DOMAIN] ____ **x:** ' "$n"; echo; } >"$work/line-$n.md"
done
{ printf "$head- [ ] **item**\n  "; repeat '____ ' 4000; echo; } >"$work/blanks-4000.md"
{ printf "$head"; repeat '> ' 10000; echo '- [ ] **x**'; } >"$work/quotes-10000.md"
{ printf "$head"; repeat '- ' 100000; echo '[ ] x'; } >"$work/lists-100000.md"
for n in 20000 40000; do
  {
    printf "$head- [ ] **x**\n  \`\`\`golive\n"
    for ((i = 0; i < n; i++)); do printf '  k%d = 1\n' "$i"; done
    printf '  ```\n'
  } >"$work/keys-$n.md"
done
# 5, 20 and 50 MB, shaped like the import benchmark's runbooks
for items in 17500 70000 175000; do
  cargo bench -q -p golive-runbook --bench import_lint -- --generate "$items" >"$work/gen-$items.md"
done

measure() { # measure FILE COMMAND...
  local file=$1
  shift
  local rc=0 secs kib
  /usr/bin/time -o "$work/time" -f '%e %M' timeout "${LIMIT:-600}" "$golive" "$@" "$work/$file" \
    >/dev/null 2>&1 || rc=$?
  read -r secs kib < <(tail -n 1 "$work/time")
  printf '%-18s %-20s %8s s %10s KiB  exit %s\n' "$file" "$*" "$secs" "$kib" "$rc"
}
for f in title-1000 title-2000 line-1000 line-2000 blanks-4000; do
  measure "$f.md" lint
done
for f in keys-20000 keys-40000; do
  measure "$f.md" lint
  measure "$f.md" plan
done
for f in quotes-10000 lists-100000; do
  for c in lint show plan; do measure "$f.md" "$c"; done
done
for items in 17500 70000 175000; do
  measure "gen-$items.md" lint
  measure "gen-$items.md" plan
  measure "gen-$items.md" show
  measure "gen-$items.md" show --format json
done
