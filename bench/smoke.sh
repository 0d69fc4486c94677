#!/usr/bin/env bash
# The reference checklist's smoke tests 1-5, 7, 8 and 17 against a local
# stand-in: golive (one `golive run`, checks concurrent) against the seed's own
# curl commands run one after another by bash, as the document has people do.
# Needs hyperfine, curl and jq (Debian); installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine curl jq; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool; }
done
cargo build --release -q -p golive -p golive-testkit
work=$(mktemp -d)
target/release/standin >"$work/standin" &
standin=$!
trap 'kill $standin; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/standin" ] && break; sleep 0.1; done
read -r port ca <"$work/standin"
D="localhost:$port"

# The seed's commands, as written, with --cacert for the test CA.
cat >"$work/curl.sh" <<SH
set -e
C="curl --cacert $ca"
\$C -s -o /dev/null -w "%{http_code}" https://$D/
\$C -s https://$D/health | jq
\$C -s https://$D/ready | jq
\$C -s -w "Time: %{time_total}s\n" https://$D/live
\$C -s https://$D/version | jq
\$C -H "Authorization: Bearer bench-token" https://$D/api/v1/test
\$C -H "Authorization: Bearer bench-token" https://$D/api/v1/db-health
\$C -s -o /dev/null -w "%{http_code}" https://$D/nonexistent
SH

export BENCH_TOKEN=bench-token
golive="target/release/golive run examples/aiwg-production.md --only 4.1.1 --only 4.1.2 --only 4.1.3 --only 4.1.4 --only 4.1.5 --only 4.1.7 --only 4.1.8 --only 4.4.1 --var DOMAIN=$D --var VERSION=1.1.0 --var LIVE_BUDGET_MS=1000 --secret TEST_TOKEN=env:BENCH_TOKEN --ca-file $ca"

$golive >/dev/null  # all 8 pass, or the comparison means nothing
hyperfine -N --warmup 5 --min-runs 30 --export-markdown "$work/result.md" \
  "$golive" \
  "bash $work/curl.sh"
cat "$work/result.md"

# golive's own cost per check beyond the network, one check at a time: the
# check's duration in the engine minus its time on the wire (DNS, connect,
# TLS, request and response), and the whole process's wall time beside it.
for _ in 1 2 3 4 5; do
  t0=$(date +%s%N)
  $golive --concurrency 1 --format json 2>/dev/null >"$work/run.json"
  t1=$(date +%s%N)
  jq -r --argjson wall "$(( (t1 - t0) / 1000 ))" '
    [.checks[] | .duration_ms - .observation.timing.total_ms] as $over
    | [.checks[].observation.timing.total_ms] | add as $net
    | "process wall \($wall/1000) ms; on the wire \($net*1000|round/1000) ms; engine overhead per check: mean \(($over|add/length)*1000|round/1000) ms, max \(($over|max)*1000|round/1000) ms"' \
    "$work/run.json"
done
