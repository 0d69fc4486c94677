#!/usr/bin/env bash
# One event reaching 500 open streams of `golive serve` (release build,
# SQLite): from before the POST of a sign-off until each stream has it, 50
# sign-offs one after another; p50/p90/p99 over the 25,000 deliveries.
#
#     bash bench/sse.sh [STREAMS] [EVENTS]
#
# GOLIVE_NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
streams=${1:-500}
events=${2:-50}
[ -n "${GOLIVE_NO_BUILD:-}" ] || cargo build --release -q -p golive
cargo build --release -q -p golive-server --bench sse_fanout
bin=$(ls -t target/release/deps/sse_fanout-* | grep -v '\.d$' | head -1)
g=target/release/golive
work=$(mktemp -d)
export GOLIVE_STORE="sqlite://$work/golive.db"
# a pre-deployment stage of items anyone on the roster signs
{
  echo "# Fan-out"; echo; echo "## Pre-Deployment Checklist"; echo; echo "### Items"; echo
  for i in $(seq "$events"); do echo "- [ ] **Item $i**"; done
} >"$work/fanout.md"
token=$($g users add "Bench Ops" --role "DevOps Engineer" | tail -1)
sha=$($g runbooks add "$work/fanout.md" | tail -1)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
ulimit -n 4096
$g serve --listen 127.0.0.1:$port --rate-limit 0 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/live" >/dev/null && break; sleep 0.1; done
id=$(curl -sf -XPOST "http://127.0.0.1:$port/api/v1/deployments" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d "{\"runbook\":\"$sha\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
wait_idle
"$bin" "http://127.0.0.1:$port" "$token" "$id" "$streams" "$events"
echo "(machine: $idle_note)"
