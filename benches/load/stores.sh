#!/usr/bin/env bash
# Measures GET /v1/sessions/{id} and an attribute PATCH on every store, one after another in
# one run, with /healthz of the same process as the baseline (the machine is shared: compare
# ratios, not absolute figures). Traffic stays on 127.0.0.1; every run is bounded by -d.
#
#   benches/load/stores.sh [SECONDS]        default 5 s per measurement
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
port=18090
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
scripts/services up >/dev/null
cargo build --release -q -p sessanger
bin=target/release/sessanger
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

pg_schema="bench_$$"
psql postgres://postgres@127.0.0.1:5432/test -qc "CREATE SCHEMA $pg_schema" >/dev/null
mysql -uroot -h127.0.0.1 -e "CREATE DATABASE bench_$$"
cleanup_db() {
  PGOPTIONS=--client-min-messages=warning psql postgres://postgres@127.0.0.1:5432/test -qc "DROP SCHEMA $pg_schema CASCADE" >/dev/null || true
  mysql -uroot -h127.0.0.1 -e "DROP DATABASE bench_$$" || true
}
trap 'kill $(jobs -p) 2>/dev/null || true; cleanup_db; rm -rf "$work"' EXIT

rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '/ 99%/ {print $2}'; }

printf '| store | healthz req/s | GET req/s | GET p99 | GET / healthz | PATCH req/s | PATCH p99 |\n|---|---|---|---|---|---|---|\n'
for store in "embedded://$work/embedded" "memory://" "redis://127.0.0.1:6379" \
             "postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3D$pg_schema" \
             "mysql://root@127.0.0.1:3306/bench_$$"; do
  data="$work/data-${store%%:*}"
  printf 'store:\n  url: "%s"\n  key_prefix: bench%s\n' "$store" "$$" > "$work/config.yaml"
  RUST_LOG=warn "$bin" serve --config "$work/config.yaml" --data-dir "$data" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do [ -f "$data/server.url" ] && break; sleep 0.1; done
  token=$(cat "$data/admin.token")
  sid=$(curl -s -X POST "127.0.0.1:$port/v1/sessions" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"user_id": "bench", "attributes": {"a": 1, "b": "two", "c": [3], "d": {"e": 4}}}' | sed 's/.*"session_id":"\([^"]*\)".*/\1/')
  base=$(wrk -t2 -c32 -d"${secs}s" --latency "http://127.0.0.1:$port/healthz")
  get=$(wrk -t2 -c32 -d"${secs}s" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/sessions/$sid")
  patch=$(wrk -t2 -c32 -d"${secs}s" --latency -H "Authorization: Bearer $token" -s benches/load/patch.lua \
          "http://127.0.0.1:$port/v1/sessions/$sid/attributes")
  hits=$(curl -s "127.0.0.1:$port/v1/sessions/$sid" -H "Authorization: Bearer $token" | sed 's/.*"hits":\([0-9]*\).*/\1/')
  b=$(echo "$base" | rps); g=$(echo "$get" | rps); p=$(echo "$patch" | rps)
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "${store%%\?*}" "$b" "$g" "$(echo "$get" | p99)" \
    "$(awk -v g="$g" -v b="$b" 'BEGIN {printf "%.2f", g / b}')" "$p" "$(echo "$patch" | p99)"
  # wrk counts answered requests; up to one request per connection is still in flight when it
  # stops and is applied afterwards, so the counter may exceed the count, never fall short.
  total=$(echo "$patch" | awk '/requests in/ {print $1}')
  [ "$hits" -ge "$total" ] || echo "  (lost increments: $total answered, counter $hits)"
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" || true
done
