#!/usr/bin/env bash
# Exchange throughput of N instances sharing one PostgreSQL database against
# one SQLite instance, measured in the same run on the same machine
# (issue 12). Run from the project's root:
#   bench/instances.sh            # 3 instances on $STS_TEST_DATABASE_URL
# Env: STS_TEST_DATABASE_URL (postgres://...; a fresh schema is used and
# dropped), N (3), CONNS (40, split across the instances), DUR (20s),
# WARM (5s), TOKENS (200), STS_SERVE_ARGS (extra `sts serve` flags for
# every instance), PG_ARGS (extra flags for the PostgreSQL instances only).
# The load is the one of ../shared/bench/exchange-vs-ceiling.sh (its
# multi.lua): one wrk per instance, the connections split evenly, which
# is a round-robin of the instances at the connection level.
set -euo pipefail
N=${N:-3} CONNS=${CONNS:-40} DUR=${DUR:-20s} WARM=${WARM:-5s} TOKENS=${TOKENS:-200}
lua=${LUA:-../shared/bench/multi.lua}
db=${STS_TEST_DATABASE_URL:?set STS_TEST_DATABASE_URL to a PostgreSQL URL}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d); pids=()
schema=bench_$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql "$db" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/sts" ./cmd/sts
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
sep='?'; [[ $db == *\?* ]] && sep='&'
export STS_KEY_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 -w0)

# start NAME DATA-ARGS...: starts an instance; its URL is in $url. All
# instances have one issuer, as behind a load balancer.
start() {
  local name=$1; shift
  local port; port=$(freeport)
  # shellcheck disable=SC2086
  "$tmp/sts" serve --addr "127.0.0.1:$port" --issuer https://sts.bench.example "$@" ${STS_SERVE_ARGS:-} >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  url=http://127.0.0.1:$port
  for _ in $(seq 1 200); do curl -fsS "$url/.well-known/oauth-authorization-server" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "$name did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1
}

# bodies URL DATA-ARGS...: creates a client, mints TOKENS subject tokens at
# URL, writes $tmp/bodies and $tmp/basic
bodies() {
  local url=$1; shift
  local c id sec
  c=$("$tmp/sts" client create "$@" --name bench --audience https://backend.example.com/api --scope api -o json)
  id=$(echo "$c" | jq -r .client_id); sec=$(echo "$c" | jq -r .client_secret)
  printf '%s:%s' "$id" "$sec" | base64 -w0 >"$tmp/basic"
  for _ in $(seq 1 "$TOKENS"); do
    st=$(curl -fsS -u "$id:$sec" -d grant_type=client_credentials "$url/token/oauth2" | jq -r .access_token)
    echo "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&resource=https%3A%2F%2Fbackend.example.com%2Fapi&subject_token=$st&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
  done >"$tmp/bodies"
}

# load DUR URL...: one wrk per URL, CONNS split; prints the summed rate
# and the worst p99
load() {
  local dur=$1; shift
  local n=$# i=0 w=()
  for u in "$@"; do
    BASIC=$(cat "$tmp/basic") BODY_FILE=$tmp/bodies wrk -t1 -c$((CONNS / n)) -d"$dur" -s "$lua" "$u/token/oauth2" >"$tmp/wrk.$i" &
    w+=($!)
    i=$((i + 1))
  done
  wait "${w[@]}"
  cat "$tmp"/wrk.* | grep RESULT | python3 -c '
import sys,re
rps=p99=bad=0
for l in sys.stdin:
    d=dict(re.findall(r"(\w+)=([\d.]+)",l)); rps+=float(d["rps"]); p99=max(p99,float(d["p99_ms"])); bad+=int(d["non2xx"])
print(f"{rps:.0f} {p99} {bad}")'
  rm -f "$tmp"/wrk.*
}

# SQLite: one instance.
start sqlite --data-dir "$tmp/sq"; sq=$url
bodies "$sq" --data-dir "$tmp/sq"
load "$WARM" "$sq" >/dev/null
read -r sq_rps sq_p99 sq_bad < <(load "$DUR" "$sq")
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# PostgreSQL: N instances on one database (a fresh schema).
psql "$db" -qc "CREATE SCHEMA $schema" >/dev/null
pgurl="$db${sep}search_path=$schema"
urls=()
for i in $(seq 1 "$N"); do
  # shellcheck disable=SC2086
  start "pg$i" --database-url "$pgurl" --data-dir "$tmp/pg$i" ${PG_ARGS:-}
  urls+=("$url")
done
bodies "${urls[0]}" --database-url "$pgurl"
load "$WARM" "${urls[@]}" >/dev/null
read -r pg_rps pg_p99 pg_bad < <(load "$DUR" "${urls[@]}")
echo "sqlite x1: $sq_rps/s p99 $sq_p99 ms non-2xx $sq_bad"
echo "postgres x$N: $pg_rps/s p99 $pg_p99 ms non-2xx $pg_bad"
echo "ratio postgres/sqlite: $(python3 -c "print(round($pg_rps/$sq_rps, 2))")"
