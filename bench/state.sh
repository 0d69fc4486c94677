#!/usr/bin/env bash
# `golive run` and `golive status` on one deployment holding 10, 10,000 and
# 1,000,000 events, on SQLite and on PostgreSQL: with the state kept by each
# append, neither reads the record, so each figure should stay within 1.5x
# of the 10-event one. The run is the reference's eight smoke checks against
# the local stand-in (as bench/smoke.sh); the events are a hypercare watch's
# (crates/golive-deploy/examples/fill.rs). PostgreSQL: a database of its
# own on 127.0.0.1:5432 (GOLIVE_BENCH_PG names another server), dropped
# after. Needs hyperfine and jq (Debian); installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine jq psql; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine jq postgresql-client; }
done
cargo build --release -q -p golive -p golive-testkit
cargo build --release -q -p golive-deploy --example fill
fill=target/release/examples/fill
work=$(mktemp -d)
server=${GOLIVE_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
db=golive_bench_$$
psql "$server/postgres" -qc "CREATE DATABASE $db" >/dev/null
target/release/standin >"$work/standin" &
standin=$!
trap 'kill $standin; psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/standin" ] && break; sleep 0.1; done
read -r port ca <"$work/standin"
export BENCH_TOKEN=bench-token
runbook=examples/aiwg-production.md
args="--only 4.1.1 --only 4.1.2 --only 4.1.3 --only 4.1.4 --only 4.1.5 --only 4.1.7 --only 4.1.8 --only 4.4.1 --var DOMAIN=localhost:$port --var VERSION=1.1.0 --var LIVE_BUDGET_MS=1000 --secret TEST_TOKEN=env:BENCH_TOKEN --ca-file $ca"

echo "| store | events | fill s | run ms | status ms |"
echo "|---|---:|---:|---:|---:|"
for backend in sqlite postgres; do
  for events in 10 10000 1000000; do
    case $backend in
      sqlite) store="sqlite://$work/$events.db" ;;
      postgres) store="$server/$db" ;;
    esac
    t0=$(date +%s%N)
    id=$($fill "$store" "$runbook" "$events")
    t1=$(date +%s%N)
    run="target/release/golive run $runbook --deployment $id --store $store $args"
    status="target/release/golive status $id --store $store"
    $run >/dev/null 2>&1 || { echo "golive run failed on $backend/$events" >&2; exit 1; }
    hyperfine -N --warmup 3 --runs 20 --export-json "$work/r.json" "$run" "$status" >/dev/null 2>&1
    read -r run_ms status_ms < <(jq -r '[.results[].mean * 1000 | . * 10 | round / 10] | "\(.[0]) \(.[1])"' "$work/r.json")
    printf '| %s | %s | %s | %s | %s |\n' "$backend" "$events" \
      "$(awk "BEGIN { printf \"%.1f\", ($t1 - $t0) / 1e9 }")" "$run_ms" "$status_ms"
  done
done
