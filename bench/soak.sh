#!/usr/bin/env bash
# Soak: exchanges at full load (wrk, 40 connections, as
# ../shared/bench/exchange-vs-ceiling.sh) for DUR (10m), sampling the
# server's RSS every 10 s (issue 12: flat and within 100 MiB). Run from the
# project's root: bench/soak.sh. Env: DUR (10m), CONNS (40), TOKENS (500),
# STS_SERVE_ARGS (extra `sts serve` flags).
set -euo pipefail
DUR=${DUR:-10m} CONNS=${CONNS:-40} TOKENS=${TOKENS:-500}
lua=${LUA:-../shared/bench/multi.lua}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/sts" ./cmd/sts
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
url=http://127.0.0.1:$port
# shellcheck disable=SC2086
"$tmp/sts" serve --addr "127.0.0.1:$port" --issuer "$url" --data-dir "$tmp/data" ${STS_SERVE_ARGS:-} >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS "$url/.well-known/oauth-authorization-server" >/dev/null 2>&1 && break; sleep 0.1; done
c=$("$tmp/sts" client create --data-dir "$tmp/data" --name bench --audience https://backend.example.com/api --scope api -o json)
id=$(echo "$c" | jq -r .client_id); sec=$(echo "$c" | jq -r .client_secret)
for _ in $(seq 1 "$TOKENS"); do
  st=$(curl -fsS -u "$id:$sec" -d grant_type=client_credentials "$url/token/oauth2" | jq -r .access_token)
  echo "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&resource=https%3A%2F%2Fbackend.example.com%2Fapi&subject_token=$st&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
done >"$tmp/bodies"
basic=$(printf '%s:%s' "$id" "$sec" | base64 -w0)
BASIC=$basic BODY_FILE=$tmp/bodies wrk -t2 -c"$CONNS" -d"$DUR" -s "$lua" "$url/token/oauth2" >"$tmp/wrk.out" &
wp=$!
echo "seconds rss_mib"
t=0
while kill -0 "$wp" 2>/dev/null; do
  sleep 10; t=$((t + 10))
  kill -0 "$wp" 2>/dev/null || break
  echo "$t $(( $(ps -o rss= -p "$pid") / 1024 ))"
done
grep RESULT "$tmp/wrk.out"
echo "audit records: $(sqlite3 "$tmp/data/sts.db" 'SELECT count(*) FROM audit' 2>/dev/null || echo '?'); data directory: $(du -sh "$tmp/data" | cut -f1)"
