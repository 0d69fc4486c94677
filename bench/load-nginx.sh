#!/usr/bin/env bash
# The load probe against wrk on a one-worker nginx on this machine: the case
# where the load generator and the server share few cores, so every thread
# the generator runs is time the server does not get.
#
#     bash bench/load-nginx.sh [RUNS] [SECONDS] [CONNECTIONS...]
#
# Defaults: 3 runs, 5 s each, at 10 and 50 connections. Each run measures,
# one after the other and never two at once: wrk -t1, wrk -t2, golive
# --threads 1, golive --threads 2 and golive with its default thread count.
# Before each measurement it waits for an idle machine (bench/idle.sh).
# Prints requests/s (min–max and median over the runs), median p50 and p99,
# and golive's default against wrk run by run.
#
# Environment: GOLIVE, the binary to measure (default: this tree's release
# build, built first); GOLIVE_THREADS, the golive variants (default
# "1 2 default"; "default" alone for a binary without --threads).
# Needs nginx and wrk (Debian); installs them and jq when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
runs=${1:-3}
secs=${2:-5}
shift $(( $# < 2 ? $# : 2 ))
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(10 50)
variants=${GOLIVE_THREADS:-1 2 default}
for tool in wrk jq nginx; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool; }
done
if [ -z "${GOLIVE:-}" ]; then
  cargo build --release -q -p golive
  GOLIVE=target/release/golive
fi

work=$(mktemp -d)
chmod 755 "$work"  # nginx's worker may run as another user
mkdir "$work/html"
printf 'ok\n' >"$work/html/index.html"
chmod -R a+rX "$work/html"
nginx_pid=""
stop() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap stop EXIT

# a port nobody listens on, then nginx on it: one worker, a static file,
# its pid, logs and temporary files in $work, in the foreground
port=""
for _ in $(seq 20); do
  p=$((20000 + RANDOM % 30000))
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
  cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  server {
    listen 127.0.0.1:$p;
    root $work/html;
  }
}
EOF
  nginx -p "$work" -c "$work/nginx.conf" -e "$work/error.log" &
  nginx_pid=$!
  for _ in $(seq 50); do
    kill -0 "$nginx_pid" 2>/dev/null || break
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { port=$p; break; }
    sleep 0.1
  done
  [ -n "$port" ] && kill -0 "$nginx_pid" 2>/dev/null && break
  port=""
  kill "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
done
[ -n "$port" ] || { echo "nginx did not start:" >&2; cat "$work/error.log" >&2; exit 1; }
url="http://127.0.0.1:$port/"
echo "nginx $(nginx -v 2>&1 | sed 's|.*/||'), 1 worker, $url; $(nproc) cores; $runs runs of ${secs}s"
wrk -t1 -c10 -d2s "$url" >/dev/null  # warm-up, not measured

# wrk prints latencies with units (us, ms, s): to milliseconds
wrk_ms() {
  awk -v k="$1" '$1 == k { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; print v }' "$work/out"
}
# one measurement: appends "rps p50 p99" to $work/$c.$name
measure() {
  local c=$1 name=$2 t=$3 threads
  wait_idle
  case $name in
    wrk*)
      wrk -t"$t" -c"$c" -d"${secs}s" --latency "$url" >"$work/out"
      echo "$(awk '/^Requests\/sec:/ { print $2 }' "$work/out") $(wrk_ms 50%) $(wrk_ms 99%)" >>"$work/$c.$name"
      ;;
    golive*)
      local flag=()
      [ "$t" = default ] || flag=(--threads "$t")
      "$GOLIVE" probe load "$url" -c "$c" -z "${secs}s" "${flag[@]}" --format json >"$work/out"
      jq -r '.observation | "\(.rps) \(.latency_ms.p50) \(.latency_ms.p99)"' "$work/out" >>"$work/$c.$name"
      threads=$(jq -r '.observation.threads // "?"' "$work/out")
      echo "$threads" >"$work/$c.$name.threads"
      ;;
  esac
  echo "  c$c $name: $(tail -1 "$work/$c.$name") ($idle_note)" >&2
}

names=()
for c in "${conns[@]}"; do
  for r in $(seq "$runs"); do
    echo "connections $c, run $r of $runs" >&2
    for t in 1 2; do measure "$c" "wrk-t$t" "$t"; done
    for t in $variants; do measure "$c" "golive-$t" "$t"; done
  done
done

echo
echo "| connections | tool | requests/s min–max | median | p50 ms | p99 ms |"
echo "|---:|---|---:|---:|---:|---:|"
# median of column $1 of a file
median() { cut -d' ' -f"$1" "$2" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for c in "${conns[@]}"; do
  for name in wrk-t1 wrk-t2 $(for t in $variants; do echo "golive-$t"; done); do
    f="$work/$c.$name"
    label=$name
    case $name in
      wrk-t*) label="wrk -t${name#wrk-t}" ;;
      golive-default)
        n=$(cat "$f.threads")
        label="golive, default ($n thread$([ "$n" = 1 ] || echo s))" ;;
      golive-*) label="golive --threads ${name#golive-}" ;;
    esac
    lo=$(cut -d' ' -f1 "$f" | sort -g | head -1)
    hi=$(cut -d' ' -f1 "$f" | sort -g | tail -1)
    printf '| %d | %s | %.0f–%.0f | %.0f | %.3f | %.3f |\n' "$c" "$label" "$lo" "$hi" \
      "$(median 1 "$f")" "$(median 2 "$f")" "$(median 3 "$f")"
  done
done
echo
# golive's default against wrk, each ratio within one run (adjacent in time)
for c in "${conns[@]}"; do
  [ -f "$work/$c.golive-default" ] || continue
  for t in 1 2; do
    paste -d' ' "$work/$c.golive-default" "$work/$c.wrk-t$t" |
      awk -v c="$c" -v t="$t" '{ r = $1 / $4; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r }
        END { printf "c%d: golive (default) / wrk -t%d: %.2f–%.2f× over %d runs\n", c, t, lo, hi, NR }'
  done
done
