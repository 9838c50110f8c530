#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind: a figure that,
# unlike req/s on a shared 2-core machine, moves by ~2% between identical
# runs, so small changes to the request path can be measured.
#
# usage: benches/scripts/instructions.sh LABEL URL [lacquer run args...]
#   e.g. benches/scripts/instructions.sh hit /bytes/1024
#        benches/scripts/instructions.sh builtin /bytes/1024 -f my.vcl
# needs: valgrind, wrk, a release build (cargo build --release), and the
# bench origin: cargo bench --bench load -- --serve-origin 127.0.0.1:8080
# env:   BIN (lacquer binary), ORIGIN (default 127.0.0.1:8080),
#        PORT (lacquer's, default 6085), HEADER (request headers for
#        wrk, several separated by '|', e.g. HEADER='Accept-Encoding: gzip'
#        or HEADER='User-Agent: Mozilla/5.0|Cookie: a=1')
set -euo pipefail
label=$1 url=$2
shift 2
bin=${BIN:-target/release/lacquer}
origin=${ORIGIN:-127.0.0.1:8080}
port=${PORT:-6085}
header=()
if [ -n "${HEADER:-}" ]; then
    IFS='|' read -r -a fields <<<"$HEADER"
    for f in "${fields[@]}"; do header+=(-H "$f"); done
fi
out=$(mktemp -d)/cg
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" \
    "$bin" run -a "127.0.0.1:$port" -b "$origin" --storage 256MiB "$@" >/dev/null 2>"$out.err" &
vpid=$!
trap 'kill $vpid 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
    curl -s -o /dev/null "http://127.0.0.1:$port$url" && break
    sleep 0.5
done
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$url")
if [ "$status" -ge 500 ] || [ "$status" = 000 ]; then
    # A 5xx path (e.g. no origin listening) is not the request meant.
    echo "$label: $url answered $status; is the origin up at $origin?" >&2
    exit 1
fi
wrk -t1 -c4 -d2s "${header[@]}" "http://127.0.0.1:$port$url" >/dev/null # warm: cache filled, connections pooled
callgrind_control -i on "$vpid" >/dev/null
n=$(wrk -t1 -c4 -d5s "${header[@]}" "http://127.0.0.1:$port$url" | awk '/requests in/{print $1}')
callgrind_control -i off "$vpid" >/dev/null
callgrind_control -d "$vpid" >/dev/null
sleep 1
ir=$(cat "$out".* 2>/dev/null | awk '/^totals:/{s+=$2} END{print s}')
echo "$label: $n requests, $((ir / n)) instructions per request (callgrind files: $out.*)"
