#!/usr/bin/env bash
# How far the database goes by itself: pgbench sends a sign-off's own
# statements (the token and person, the deployment row, the roster, the
# write lock, the kept state, the locked head, the one statement that
# inserts the event, moves the head, writes the state and announces it,
# the commit, the unlock) straight to PostgreSQL, with no golive and no
# HTTP in between, on golive's schema, with as many clients as
# bench/replicas.sh has connections in flight (4 per replica). Set beside
# the sign-offs that bench/replicas.sh measures through golive, it says how
# much of the database's ceiling golive reaches on this machine.
#
#     bash bench/pg-ceiling.sh [CLIENTS...]     (default: 4 12)
#
# Needs psql and pgbench (PostgreSQL's server package has it). GOLIVE_NO_BUILD=1
# skips the build. GOLIVE_TEST_PG names the PostgreSQL (default: the tests').
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/idle.sh
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(4 12)
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
[ -x "$pgbench" ] || { echo "bench: pgbench not found (apt-get install postgresql)" >&2; exit 1; }
[ -n "${GOLIVE_NO_BUILD:-}" ] || cargo build --release -q -p golive
g=target/release/golive
pg=${GOLIVE_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}
db="golive_ceiling_$$"
work=$(mktemp -d)
cleanup() {
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$pg" -qc "CREATE DATABASE $db" >/dev/null
export GOLIVE_STORE="${pg%/*}/$db"
# golive's own schema and a person with a token, made by golive
$g users add "Bench Ops" --role "DevOps Engineer" >/dev/null
tok=$(psql "$GOLIVE_STORE" -qAtc "SELECT hash FROM tokens LIMIT 1")
# 4,000 deployments, each with a kept state of 4 kB
psql "$GOLIVE_STORE" -q >/dev/null <<'SQL'
INSERT INTO deployments (id, runbook_path, runbook_sha256, started_by, created_at, vars, head_seq, head_hash)
  SELECT g::text, 'items.md', 'sha', 'Bench Ops', now()::text, '{}', 0, 'genesis' FROM generate_series(1, 4000) g;
INSERT INTO deployment_state (deployment_id, seq, hash, state)
  SELECT g::text, 0, 'genesis', repeat('x', 4096) FROM generate_series(1, 4000) g;
VACUUM ANALYZE;
SQL
cat >"$work/signoff.sql" <<'SQL'
\set d random(1, 4000)
SELECT t.id, t.person, p.roles, p.email FROM tokens t JOIN people p ON p.name = t.person WHERE t.hash = :tok;
SELECT id, runbook_path, runbook_sha256, started_by, created_at, vars, head_seq, head_hash FROM deployments WHERE id = :d::text;
SELECT name, email, roles FROM people ORDER BY name;
SELECT pg_advisory_lock(:d);
SELECT seq, hash, state FROM deployment_state WHERE deployment_id = :d::text;
BEGIN;
SELECT head_seq + 1 AS next, head_hash AS prev, md5(random()::text) || md5(random()::text) AS hash FROM deployments WHERE id = :d::text FOR UPDATE \gset
WITH ins AS (INSERT INTO events (deployment_id, seq, at, kind, item, actor, data, prev_hash, hash) VALUES (:d::text, :next::bigint, now()::text, 'signoff', '1.1.1', 'Bench Ops', '{"role":"DevOps Engineer"}', :prev::text, :hash::text) RETURNING 1), moved AS (UPDATE deployments SET head_seq = :next::bigint, head_hash = :hash::text WHERE id = :d::text RETURNING id), kept AS (UPDATE deployment_state SET seq = :next::bigint, hash = :hash::text, state = :st::text WHERE deployment_id = :d::text AND seq = :next::bigint - 1 RETURNING 1) SELECT pg_notify('golive_appends', :next::text || ':' || :d::text) FROM moved;
COMMIT;
SELECT pg_advisory_unlock(:d);
SQL
state=$(python3 -c 'print("y" * 4096)')
for c in "${clients[@]}"; do
  wait_idle
  echo "== pgbench, a sign-off's statements, $c clients, 5 s ($idle_note)"
  "$pgbench" -n -M prepared -c "$c" -j 2 -T 5 -D tok="$tok" -D st="$state" \
    -f "$work/signoff.sql" "$GOLIVE_STORE" 2>&1 | grep -E '^(number of transactions actually|latency average|tps)'
done
echo "  events recorded: $(psql "$GOLIVE_STORE" -qAtc 'SELECT count(*) FROM events'), heads moved to match: $(psql "$GOLIVE_STORE" -qAtc "SELECT count(*) FROM deployments d WHERE head_seq = (SELECT count(*) FROM events e WHERE e.deployment_id = d.id)") of 4000"
echo "(machine: $(nproc) cores; $(psql "$pg" -qAtc 'SHOW server_version') PostgreSQL)"
