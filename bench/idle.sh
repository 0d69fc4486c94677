# Sourced by the load benchmarks: `wait_idle` returns once no compiler runs
# and the one-minute load is under 1, so a figure measures the tools and not
# a build beside them. It gives up after GOLIVE_BENCH_IDLE_WAIT seconds
# (default 900) and says so on stderr; `idle_note` prints what was running
# when the last wait ended, for the results.
idle_note=""
wait_idle() {
  local waited=0 limit=${GOLIVE_BENCH_IDLE_WAIT:-900} compilers load
  while :; do
    compilers=$(pgrep -c rustc || true)
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [ "$compilers" -eq 0 ] && awk -v l="$load" 'BEGIN { exit !(l < 1) }'; then
      idle_note="load $load, no compiler"
      return 0
    fi
    if [ "$waited" -ge "$limit" ]; then
      idle_note="NOT IDLE after ${limit}s: load $load, $compilers rustc"
      echo "bench: $idle_note" >&2
      return 0
    fi
    sleep 2
    waited=$((waited + 2))
  done
}
