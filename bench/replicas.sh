#!/usr/bin/env bash
# Several `golive serve` replicas on one PostgreSQL, against one: in the
# same run, first with one replica, then with REPLICAS (release build, a
# database of its own on the test PostgreSQL):
#
# 1. sign-offs: one wrk per replica (-t1 -c4, 3 s), each request signing an
#    item not signed yet, of another deployment than the one before; the
#    2xx answers per second in total, and how many the store recorded
#    (each exactly once);
# 2. one event reaching STREAMS streams spread over the replicas: 20
#    sign-offs through the first replica, each timed until every stream
#    (on every replica, hearing it through LISTEN/NOTIFY) has it.
#
#     bash bench/replicas.sh [REPLICAS] [STREAMS]
#
# Needs wrk and psql (installed when missing). GOLIVE_NO_BUILD=1 skips the
# build. GOLIVE_TEST_PG names the PostgreSQL (default: the tests').
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
replicas=${1:-3}
streams=${2:-1000}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v psql >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client; }
[ -n "${GOLIVE_NO_BUILD:-}" ] || cargo build --release -q -p golive
cargo build --release -q -p golive-server --bench sse_fanout
fan=$(ls -t target/release/deps/sse_fanout-* | grep -v '\.d$' | head -1)
g=target/release/golive
pg=${GOLIVE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
pids=()
dbs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${dbs[@]}"; do psql "$pg" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 8192

# a pre-deployment stage of items anyone on the roster signs
{
  echo "# Replicas"; echo; echo "## Pre-Deployment Checklist"; echo; echo "### Items"; echo
  for i in $(seq 40); do echo "- [ ] **Item $i**"; done
} >"$work/items.md"

round() { # N: start N replicas on a new database, measure, stop them
  local n=$1 db="golive_bench_$$_$1"
  dbs+=("$db")
  psql "$pg" -qc "CREATE DATABASE $db" >/dev/null
  export GOLIVE_STORE="${pg%/*}/$db"
  local token sha urls=() ports=()
  token=$($g users add "Bench Ops" --role "DevOps Engineer" | tail -1)
  sha=$($g runbooks add "$work/items.md" | tail -1)
  for i in $(seq "$n"); do
    local port
    port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    $g serve --listen 127.0.0.1:$port --rate-limit 0 2>"$work/serve-$n-$i.log" &
    pids+=($!)
    ports+=("$port")
    urls+=("http://127.0.0.1:$port")
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/live" >/dev/null && break; sleep 0.1; done
  done
  # deployments to sign in: 4,000 per replica, made through the first
  python3 - "${ports[0]}" "$token" "$sha" "$n" "$work" <<'PY'
import http.client, json, sys
port, token, sha, n, work = sys.argv[1:]
c = http.client.HTTPConnection("127.0.0.1", int(port))
files = [open(f"{work}/ids-{i}", "w") for i in range(int(n))]
for k in range(4000 * int(n)):
    c.request("POST", "/api/v1/deployments", json.dumps({"runbook": sha}),
              {"authorization": "Bearer " + token, "content-type": "application/json"})
    files[k % int(n)].write(json.loads(c.getresponse().read())["id"] + "\n")
for f in files: f.close()
PY
  for i in $(seq 0 $((n - 1))); do
    cat >"$work/sign-$i.lua" <<LUA
ids = {}
for l in io.lines("$work/ids-$i") do ids[#ids + 1] = l end
n = 0
wrk.method = "POST"
wrk.headers["authorization"] = "Bearer $token"
wrk.headers["content-type"] = "application/json"
-- every deployment's first item, then every deployment's second, ...: a
-- sign-off never asked twice (40 items x 4,000 deployments per replica)
request = function()
  n = n + 1
  local item = math.floor((n - 1) / #ids) % 40 + 1
  return wrk.format(nil, "/api/v1/deployments/" .. ids[(n - 1) % #ids + 1] .. "/signoffs", nil,
    '{"item":"1.1.' .. item .. '"}')
end
LUA
  done
  # what making them left to PostgreSQL's autovacuum is done before, not
  # during, the measurement
  psql "$GOLIVE_STORE" -qc "VACUUM ANALYZE" >/dev/null
  wait_idle
  echo "== $n replica(s): sign-offs, one wrk -t1 -c4 -d3s per replica ($idle_note)"
  local wrks=()
  for i in $(seq 0 $((n - 1))); do
    wrk -t1 -c4 -d3s --latency -s "$work/sign-$i.lua" "${urls[$i]}" >"$work/wrk-$n-$i" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  local total=0 answered=0 non2xx=0
  for i in $(seq 0 $((n - 1))); do
    local rps req bad
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$n-$i")
    req=$(awk '/requests in/ {print $1}' "$work/wrk-$n-$i")
    bad=$(awk '/Non-2xx/ {print $NF}' "$work/wrk-$n-$i")
    echo "  replica $i: $rps/s ($req answered${bad:+, $bad not 2xx}); $(grep -E '^ +(50|99)%' "$work/wrk-$n-$i" | tr -s ' ' | tr '\n' ' ')"
    # a refusal is not a sign-off: the rate counts the 2xx answers only
    total=$(python3 -c "print(round($total + $rps * ($req - ${bad:-0}) / $req, 1))")
    answered=$((answered + req))
    non2xx=$((non2xx + ${bad:-0}))
  done
  local recorded
  recorded=$(psql "$GOLIVE_STORE" -qAtc "SELECT count(*) FROM events WHERE kind = 'signoff'")
  local twice
  twice=$(psql "$GOLIVE_STORE" -qAtc "SELECT count(*) FROM (SELECT deployment_id, item, actor FROM events WHERE kind = 'signoff' GROUP BY 1, 2, 3 HAVING count(*) > 1) t")
  echo "  total: $total sign-offs/s; $answered answered, $non2xx not 2xx; recorded $recorded, $twice recorded twice"
  # one deployment's events reaching streams spread over the replicas
  local id
  local made
  made=$(curl -s -XPOST "${urls[0]}/api/v1/deployments" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"runbook\":\"$sha\"}")
  id=$(echo "$made" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])') || {
    echo "bench: the deployment for the streams was not made: $made" >&2
    tail -20 "$work/serve-$n-1.log" >&2
    exit 1
  }
  wait_idle
  echo "== $n replica(s): $streams streams ($idle_note)"
  "$fan" "$(IFS=,; echo "${urls[*]}")" "$token" "$id" "$streams" 20
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

round 1
round "$replicas"
echo "(machine: $(nproc) cores; $(psql "$pg" -qAtc 'SHOW server_version') PostgreSQL)"
