#!/usr/bin/env bash
# Do the load probe's figures agree with wrk's and oha's? The three tools one
# after the other against the same local target at several concurrencies,
# SECONDS each; requests/s, p50 and p99 side by side, and golive's ratio to
# each. Two targets (`standin --plain`):
#
# - a service: each answer waits 2 ms, every 50th 20 ms (`--latency 2,20/50`),
#   so p50, p99 and requests/s are the server's, whoever measures them;
# - saturation: answers at once, so every figure is the tool's own speed.
#
#     bash bench/load-agreement.sh [SECONDS]
#
# Needs wrk (Debian) and oha (`cargo install oha --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-4}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq; }
command -v oha >/dev/null || { echo "oha is missing: cargo install oha --locked" >&2; exit 1; }
cargo build --release -q -p golive -p golive-testkit
work=$(mktemp -d)
target/release/standin --plain --latency 2,20/50 >"$work/service" &
service=$!
target/release/standin --plain >"$work/saturation" &
saturation=$!
trap 'kill $service $saturation; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/service" ] && [ -s "$work/saturation" ] && break; sleep 0.1; done
ms() { awk -v k="$1" '$1 == k { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
  if (u == "us") v /= 1000; else if (u == "s") v *= 1000; print v }' "$work/wrk"; }
for name in service saturation; do
url="http://127.0.0.1:$(cat "$work/$name")/"
wrk -t1 -c10 -d2s "$url" >/dev/null  # warm-up
echo
echo "$name:"
echo
echo "| connections | tool | requests/s | p50 ms | p99 ms |"
echo "|---:|---|---:|---:|---:|"
for c in 1 4 10 50; do
  t=$(( c < 2 ? 1 : 2 ))
  wrk -t"$t" -c"$c" -d"${secs}s" --latency "$url" >"$work/wrk"
  oha --no-tui --output-format json -c "$c" -z "${secs}s" "$url" >"$work/oha"
  target/release/golive probe load "$url" -c "$c" -z "${secs}s" --format json >"$work/golive"
  w=($(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk") "$(ms 50%)" "$(ms 99%)")
  o=($(jq -r '[.summary.requestsPerSec, .latencyPercentiles.p50 * 1000, .latencyPercentiles.p99 * 1000] | @tsv' "$work/oha"))
  g=($(jq -r '[.observation.rps, .observation.latency_ms.p50, .observation.latency_ms.p99] | @tsv' "$work/golive"))
  printf '| %d | wrk | %.0f | %.3f | %.3f |\n' "$c" "${w[@]}"
  printf '| %d | oha | %.0f | %.3f | %.3f |\n' "$c" "${o[@]}"
  printf '| %d | golive | %.0f | %.3f | %.3f |\n' "$c" "${g[@]}"
  awk -v c="$c" -v g1="${g[0]}" -v g2="${g[1]}" -v g3="${g[2]}" -v w1="${w[0]}" -v w2="${w[1]}" -v w3="${w[2]}" \
    -v o1="${o[0]}" -v o2="${o[1]}" -v o3="${o[2]}" \
    'BEGIN { printf "| %d | golive/wrk, golive/oha | %.2f, %.2f | %.2f, %.2f | %.2f, %.2f |\n", c, g1/w1, g1/o1, g2/w2, g2/o2, g3/w3, g3/o3 }'
done
done
