#!/usr/bin/env bash
# How soon the war room hears of a rollback: from the moment `golive
# rollback` records the rollback's start to the moment a webhook receiver on
# 127.0.0.1 has "ROLLBACK INITIATED - … - ETA 5 minutes", N times, beside
# what a lead does without golive at best: `curl` posting the same message
# (from the moment curl starts to the moment the receiver has it). Also what
# sending costs the command that starts the rollback: its wall time with the
# channel and without.
#
#     bash bench/notify.sh [N]
#
# GOLIVE_NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
n=${1:-20}
[ -n "${GOLIVE_NO_BUILD:-}" ] || cargo build --release -q -p golive
g=$PWD/target/release/golive
work=$(mktemp -d)
# the receiver: answers 200 and writes each request's arrival time (epoch
# seconds) and JSON body, one line each
cat >"$work/receiver.py" <<'EOF'
import http.server, json, sys, time
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        t = time.time()
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
        log.write(json.dumps({"t": t, "body": body.decode()}) + "\n")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
python3 "$work/receiver.py" "$port" "$work/received" &
receiver=$!
trap 'kill $receiver 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null -XPOST "http://127.0.0.1:$port/" -d '{}' && break; sleep 0.1; done
cp crates/golive/tests/fixtures/comms.md "$work/comms.md"
cat >"$work/roster.toml" <<'EOF'
[[person]]
name = "Dana Lead"
roles = ["Deployment Lead"]
[[person]]
name = "Emil Manager"
roles = ["Engineering Manager"]
[[person]]
name = "Rene Release"
roles = ["Release Manager"]
[[person]]
name = "Devi Ops"
roles = ["DevOps Engineer"]
EOF
hook="webhook=http://127.0.0.1:$port/hook"

# one deployment to GO, the rollback raised by the lead; the manager's
# signature starts it: that command's wall time, and the rollback's start
deployment() { # STORE NOTIFY
  export GOLIVE_STORE="sqlite://$1" GOLIVE_NOTIFY="$2"
  (cd "$work" && "$g" run comms.md --var VERSION=1.1.0 --new >/dev/null 2>&1
   "$g" sign 1.1.1 1.1.2 --as "Rene Release" --role "Release Manager" >/dev/null 2>&1
   "$g" decide go --as "Dana Lead" --role "Deployment Lead" >/dev/null 2>&1
   "$g" decide go --as "Emil Manager" --role "Engineering Manager" >/dev/null 2>&1
   "$g" rollback --as "Dana Lead" --role "Deployment Lead" --reason "bench" >/dev/null 2>&1)
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$work" && "$g" rollback --as "Emil Manager" --role "Engineering Manager" --reason "bench" >/dev/null 2>&1)
  t1=$(date +%s.%N)
  python3 -c "print(($t1 - $t0) * 1000)"
}

wait_idle
echo "bench: $idle_note" >&2
: >"$work/with" ; : >"$work/without"
for i in $(seq "$n"); do
  deployment "$work/with-$i.db" "$hook" >>"$work/with"
  deployment "$work/without-$i.db" "" >>"$work/without"
done
# the rollback's start as recorded, and the arrival of its announcement
for i in $(seq "$n"); do
  (cd "$work" && GOLIVE_STORE="sqlite://$work/with-$i.db" "$g" report --format json >"$work/report-$i.json")
done
python3 - "$work" "$n" <<'EOF' >"$work/delays"
import json, sys, datetime
work, n = sys.argv[1], int(sys.argv[2])
got = [json.loads(l) for l in open(f"{work}/received")]
for i in range(1, n + 1):
    r = json.load(open(f"{work}/report-{i}.json"))
    started = next(e for e in r["events"] if e["kind"] == "rollback.started")
    whole, _, frac = started["at"].rstrip("Z").partition(".")
    t0 = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + (frac or "0"))
    arrival = next(g["t"] for g in got
                   if g["body"].startswith("{") and json.loads(g["body"]).get("deployment") == r["deployment"]
                   and json.loads(g["body"]).get("key") == "rollback-initiated")
    print((arrival - t0) * 1000)
EOF
# what a lead's own curl takes, from its start to the receiver having it
body='{"text":"ROLLBACK INITIATED - bench - ETA 5 minutes"}'
: >"$work/curl"
for i in $(seq "$n"); do
  before=$(wc -l <"$work/received")
  t0=$(date +%s.%N)
  curl -s -o /dev/null -XPOST "http://127.0.0.1:$port/curl" -H 'content-type: application/json' -d "$body"
  arrival=$(tail -1 "$work/received" | python3 -c 'import json,sys;print(json.load(sys.stdin)["t"])')
  python3 -c "print(($arrival - $t0) * 1000)" >>"$work/curl"
done
python3 - "$work" <<'EOF'
import sys, statistics
work = sys.argv[1]
def q(name):
    v = sorted(float(x) for x in open(f"{work}/{name}"))
    p = lambda f: v[min(len(v) - 1, int(round(f * (len(v) - 1))))]
    return statistics.median(v), p(0.9), max(v)
d, c = q("delays"), q("curl")
w, wo = q("with"), q("without")
print(f"rollback start -> ROLLBACK INITIATED at the receiver: median {d[0]:.1f} ms, p90 {d[1]:.1f}, max {d[2]:.1f}")
print(f"curl start -> the same message at the receiver:      median {c[0]:.1f} ms, p90 {c[1]:.1f}, max {c[2]:.1f}")
print(f"ratio (median): {d[0] / c[0]:.1f}x")
print(f"golive rollback (the signature that starts it), with the channel: median {w[0]:.1f} ms (p90 {w[1]:.1f}); without: {wo[0]:.1f} ms (p90 {wo[1]:.1f}); ratio {w[0] / wo[0]:.2f}x")
EOF
