#!/usr/bin/env bash
# golive serve under load, on this machine, beside a bare hyper server (the
# stand-in, `standin --plain`: the floor any Rust HTTP server has here):
#
# 1. `/live` at a fixed 1,000 requests/s for 10 s: p50/p99 (golive's own load
#    probe, latency measured from when each request was due);
# 2. a deployment's JSON (`GET /api/v1/deployments/{id}`) at 1,000/s;
# 3. sign-offs through the API on SQLite: wrk, one connection per thread,
#    each request signing an item of another deployment, for 4 s.
#
#     bash bench/serve.sh
#
# Needs wrk (installed when missing). GOLIVE_NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -n "${GOLIVE_NO_BUILD:-}" ] || cargo build --release -q -p golive -p golive-testkit
g=target/release/golive
work=$(mktemp -d)
export GOLIVE_STORE="sqlite://$work/golive.db"
cp crates/golive-server/tests/fixtures/mini.md "$work/mini.md"
token=$($g users add "Bench Ops" --role "DevOps Engineer" | tail -1)
sha=$($g runbooks add "$work/mini.md" | tail -1)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$g serve --listen 127.0.0.1:$port --rate-limit 0 2>"$work/serve.log" &
server=$!
target/release/standin --plain >"$work/standin" &
standin=$!
trap 'kill $server $standin 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/live" >/dev/null && [ -s "$work/standin" ] && break; sleep 0.1; done
base="http://127.0.0.1:$port"
auth="authorization: Bearer $token"
new_deployment() {
  curl -sf -XPOST "$base/api/v1/deployments" -H "$auth" -H 'content-type: application/json' \
    -d "{\"runbook\":\"$sha\"}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])'
}
id=$(new_deployment)

p() { # URL [headers]: p50 and p99 at 1,000/s, fixed rate
  wait_idle
  $g probe load "$1" -q 1000 -z 10s -c 20 ${2:+"$2"} --format json | python3 -c '
import json,sys
o=json.load(sys.stdin)["observation"]
print("%8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %s" % (o["rps"], o["latency_ms"]["p50"], o["latency_ms"]["p99"], o["error_rate"]))'
}
echo "== 1,000 requests/s for 10 s (golive probe load -q 1000 -c 20)"
printf "stand-in (bare hyper) /      "; p "http://127.0.0.1:$(cat "$work/standin")/"
printf "golive serve /live           "; p "$base/live"
printf "golive serve deployment JSON "; p "$base/api/v1/deployments/$id" "headers={authorization=\"Bearer $token\"}"

echo "== sign-offs through the API (SQLite, synchronous=FULL), wrk -t1 -c4 -d3s"
python3 - "$port" "$token" "$sha" >"$work/ids" <<'PY'
import http.client, json, sys
port, token, sha = sys.argv[1:]
c = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(3000):
    c.request("POST", "/api/v1/deployments", json.dumps({"runbook": sha}),
              {"authorization": "Bearer " + token, "content-type": "application/json"})
    print(json.loads(c.getresponse().read())["id"])
PY
cat >"$work/sign.lua" <<LUA
ids = {}
for l in io.lines("$work/ids") do ids[#ids + 1] = l end
n = 0
wrk.method = "POST"
wrk.headers["authorization"] = "Bearer $token"
wrk.headers["content-type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/api/v1/deployments/" .. ids[n] .. "/signoffs", nil, '{"item":"1.1.2"}')
end
LUA
wait_idle
wrk -t1 -c4 -d3s --latency -s "$work/sign.lua" "$base" | tee "$work/wrk" | grep -E "Requests/sec|Non-2xx|50%|99%|requests in"
signed=$(sqlite3 "$work/golive.db" "SELECT count(*) FROM events WHERE kind = 'signoff'")
echo "sign-offs recorded: $signed"
