#!/usr/bin/env bash
# The load probe against wrk and oha: one run, the same local target (a hyper
# server on 127.0.0.1, `standin --plain`), the same connections and duration.
# Prints requests/s and latency percentiles side by side, then the peak
# memory of golive over a long run.
#
#     bash bench/load.sh [CONNECTIONS] [SECONDS] [LONG_REQUESTS]
#
# Needs wrk (Debian) and oha (`cargo install oha --locked`); installs wrk and
# jq when missing. LONG_REQUESTS (default 10000000) requests for the memory run.
# Each measurement waits for an idle machine first (bench/idle.sh).
# GOLIVE names another golive binary to measure; GOLIVE_NO_BUILD=1 skips the
# release build (the stand-in must be built already).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
conns=${1:-50}
secs=${2:-10}
long=${3:-10000000}
for tool in wrk jq; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool; }
done
command -v oha >/dev/null || { echo "oha is missing: cargo install oha --locked" >&2; exit 1; }
[ -n "${GOLIVE_NO_BUILD:-}" ] || cargo build --release -q -p golive -p golive-testkit
work=$(mktemp -d)
target/release/standin --plain >"$work/port" &
server=$!
trap 'kill $server; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")/"
threads=$(nproc)

echo "target $url, $conns connections, ${secs}s each, $threads threads for wrk"
# a warm-up, not measured
wrk -t"$threads" -c"$conns" -d2s "$url" >/dev/null

wait_idle; echo "wrk: $idle_note"
wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "$url" >"$work/wrk"
wait_idle; echo "oha: $idle_note"
oha --no-tui --output-format json -c "$conns" -z "${secs}s" "$url" >"$work/oha"
wait_idle; echo "golive: $idle_note"
"${GOLIVE:-target/release/golive}" probe load "$url" -c "$conns" -z "${secs}s" --format json >"$work/golive"
echo "golive ran $(jq '.observation.threads' "$work/golive") threads"

# wrk prints latencies with units (us, ms, s): to milliseconds
wrk_ms() {
  awk -v k="$1" '$1 == k { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; print v }' "$work/wrk"
}
wrk_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk")
oha_rps=$(jq '.summary.requestsPerSec' "$work/oha")
g_rps=$(jq '.observation.rps' "$work/golive")
row() { printf '| %s | %.0f | %.3f | %.3f | %.3f |\n' "$@"; }
echo
echo "| tool | requests/s | p50 ms | p99 ms | mean ms |"
echo "|---|---:|---:|---:|---:|"
row wrk "$wrk_rps" "$(wrk_ms 50%)" "$(wrk_ms 99%)" "$(awk '$1 == "Latency" { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v); if (u == "us") v /= 1000; else if (u == "s") v *= 1000; print v; exit }' "$work/wrk")"
row oha "$oha_rps" "$(jq '.latencyPercentiles.p50 * 1000' "$work/oha")" \
  "$(jq '.latencyPercentiles.p99 * 1000' "$work/oha")" "$(jq '.summary.average * 1000' "$work/oha")"
row golive "$g_rps" "$(jq '.observation.latency_ms.p50' "$work/golive")" \
  "$(jq '.observation.latency_ms.p99' "$work/golive")" "$(jq '.observation.latency_ms.mean' "$work/golive")"
echo
awk -v g="$g_rps" -v w="$wrk_rps" -v o="$oha_rps" \
  'BEGIN { printf "golive/wrk %.2fx, golive/oha %.2fx (targets: >= 0.70x wrk, >= 1.00x oha)\n", g / w, g / o }'

if [ "$long" -gt 0 ]; then
  wait_idle; echo "long run: $idle_note"
  /usr/bin/time -v "${GOLIVE:-target/release/golive}" probe load "$url" -c "$conns" -n "$long" --format json \
    >"$work/long" 2>"$work/time"
  echo
  printf '%s requests: %s requests/s, %s errors, peak RSS %s MB\n' "$long" \
    "$(jq '.observation.rps' "$work/long")" \
    "$(jq '[.observation.errors[]] | add // 0' "$work/long")" \
    "$(awk '/Maximum resident set size/ { printf "%.1f", $6 / 1024 }' "$work/time")"
fi
