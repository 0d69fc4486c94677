#!/usr/bin/env bash
# Checks claimed and reported by probe agents: one `golive serve` on a
# PostgreSQL database of its own, AGENTS agents of one location
# (--concurrency 16 each), and RUNS runs of a document of 500 tcp checks
# (each a connect to the server's own port), asked at once: 500 × RUNS
# jobs. Timed from the first run's request until every job is done; then
# the store is asked whether any job's result was recorded twice.
#
#     bash bench/agents.sh [AGENTS] [RUNS]
#
# Needs psql (installed when missing). GOLIVE_NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
agents=${1:-2}
runs=${2:-20}
command -v psql >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client; }
[ -n "${GOLIVE_NO_BUILD:-}" ] || cargo build --release -q -p golive
g=target/release/golive
pg=${GOLIVE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
db="golive_bench_agents_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$pg" -qc "CREATE DATABASE $db" >/dev/null
export GOLIVE_STORE="${pg%/*}/$db"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
{
  echo "# Many checks"; echo; echo "## Pre-Deployment Checklist"; echo; echo "### Reachable"; echo
  for i in $(seq 500); do
    printf -- '- [ ] **Endpoint %s**\n  ```golive\n  check = "tcp"\n  target = "127.0.0.1:%s"\n  locations = ["here"]\n  ```\n\n' "$i" "$port"
  done
} >"$work/many.md"
token=$($g users add "Bench Ops" --role "DevOps Engineer" | tail -1)
sha=$($g runbooks add "$work/many.md" | tail -1)
$g serve --listen 127.0.0.1:$port --rate-limit 0 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/live" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
id=$(curl -sf -XPOST "$base/api/v1/deployments" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d "{\"runbook\":\"$sha\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
for i in $(seq "$agents"); do
  t=$($g agents add "here-$i" --location here | tail -1)
  echo "$t" >"$work/agent-$i"
done
wait_idle
echo "== $agents agent(s), $runs runs of 500 checks ($idle_note)"
start=$(date +%s.%N)
for i in $(seq "$runs"); do
  curl -sf -XPOST "$base/api/v1/deployments/$id/runs" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{}' >/dev/null
done
queued=$(date +%s.%N)
for i in $(seq "$agents"); do
  $g agent --server "$base" --token "$(cat "$work/agent-$i")" --location here \
    --concurrency 16 --every 50ms 2>"$work/agent-$i.log" &
  pids+=($!)
done
total=$((500 * runs))
limit=${GOLIVE_BENCH_LIMIT:-900}
while :; do
  done_=$(psql "$GOLIVE_STORE" -qAtc "SELECT count(*) FROM jobs WHERE state = 'done'")
  [ "$done_" -ge "$total" ] && break
  if awk -v s="$queued" -v n="$(date +%s.%N)" -v l="$limit" 'BEGIN { exit !(n - s > l) }'; then
    echo "  stopped after ${limit}s with $done_ of $total done"
    total=$done_
    break
  fi
  sleep 0.2
done
# checks recorded per 15 s, from the events' own times
psql "$GOLIVE_STORE" -qAtc "SELECT to_char(date_trunc('minute', at::timestamptz) + floor(extract(second from at::timestamptz) / 15) * 15 * interval '1 second', 'HH24:MI:SS'), count(*) FROM events WHERE kind = 'check' GROUP BY 1 ORDER BY 1" | sed 's/^/  /'
psql "$GOLIVE_STORE" -qAtc "SELECT 'kept state of the deployment: ' || pg_size_pretty(length(state)::bigint) FROM deployment_state" | sed 's/^/  /'
end=$(date +%s.%N)
twice=$(psql "$GOLIVE_STORE" -qAtc "SELECT count(*) FROM (SELECT (data::jsonb)->>'job' FROM events WHERE kind = 'check' GROUP BY 1 HAVING count(*) > 1) t")
results=$(psql "$GOLIVE_STORE" -qAtc "SELECT count(*) FROM events WHERE kind = 'check'")
attempts=$(psql "$GOLIVE_STORE" -qAtc "SELECT coalesce(sum(attempts), 0) FROM jobs")
python3 - "$start" "$queued" "$end" "$total" <<'PY'
import sys
start, queued, end, total = map(float, sys.argv[1:])
print(f"  queued {int(total)} jobs in {queued - start:.2f} s; all done {end - queued:.2f} s after the agents started: {total / (end - queued) * 60:,.0f} checks/minute")
PY
echo "  check results recorded: $results; a job recorded twice: $twice; claims: $attempts"
echo "(machine: $(nproc) cores; $(psql "$pg" -qAtc 'SHOW server_version') PostgreSQL)"
