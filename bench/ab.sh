#!/usr/bin/env bash
# Interleaved A/B of bench/target.ts kinds between two checkouts of Keygate (issue 23: a change
# kept only if interleaved rounds show it). Each round runs, one after another: the Node floor
# (bench/peers/node-floor.ts, from AFTER), then for each KIND the BEFORE tree's target and the
# AFTER tree's, each a fresh process: 2 s of wrk to warm it, then SECONDS measured. Prints one
# line a run: req/s and the target's CPU µs a request (from /proc). Target pinned to CPU 0,
# wrk and the upstream to CPU 1, when taskset exists. Loopback only.
#
#   bash bench/ab.sh BEFORE_TREE AFTER_TREE [ROUNDS=5] [SECONDS=5] [KIND...=bare gateway]
#
# Both trees need node_modules (a symlink to one is enough); BEFORE can be made with
# `git worktree add --detach /tmp/before <commit>`.
set -euo pipefail
before=$1 after=$2 rounds=${3:-5} secs=${4:-5}
shift $(( $# < 4 ? $# : 4 ))
kinds=("$@")
[ $# -eq 0 ] && kinds=(bare gateway)
(( rounds >= 1 && rounds <= 20 && secs >= 1 && secs <= 60 )) || { echo "rounds 1-20, seconds 1-60" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
pin() { if command -v taskset >/dev/null; then taskset -c "$@"; else shift; "$@"; fi; }
# The target pinned by exec, so that $! is its own pid (its CPU is read from /proc).
pin0=(); command -v taskset >/dev/null && pin0=(taskset -c 0)
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
up=$(free_port)
(cd "$after" && pin 1 node --import=tsx bench/upstream.ts "$up" > "$tmp/up" 2>&1) &
for _ in $(seq 100); do grep -q ready "$tmp/up" 2>/dev/null && break; sleep 0.1; done
hz=$(getconf CLK_TCK)

one() { # LABEL TREE KIND
  local label=$1 tree=$2 kind=$3 port pid key t0 t1 reqs
  port=$(free_port)
  if [ "$kind" = floor ]; then
    (cd "$tree" && exec "${pin0[@]}" node --import=tsx bench/peers/node-floor.ts "$port" "http://127.0.0.1:$up") > "$tmp/t" 2>&1 &
  else
    (cd "$tree" && exec "${pin0[@]}" node --import=tsx bench/target.ts "$kind" "$port" "http://127.0.0.1:$up") > "$tmp/t" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 300); do grep -q '^ready' "$tmp/t" 2>/dev/null && break; sleep 0.1; done
  key=$(awk '/^ready/ {print $2}' "$tmp/t"); key=${key:-gw_live_none}
  pin 1 wrk -t1 -c50 -d2s -H "Authorization: Bearer $key" "http://127.0.0.1:$port/bench" > /dev/null
  t0=$(cpu_ticks "$pid")
  pin 1 wrk -t1 -c50 -d"${secs}s" -H "Authorization: Bearer $key" "http://127.0.0.1:$port/bench" > "$tmp/wrk"
  t1=$(cpu_ticks "$pid")
  reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk")
  awk -v l="$label" -v r="$reqs" -v s="$secs" -v c="$((t1 - t0))" -v hz="$hz" -v rps="$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk")" \
    'BEGIN { printf "%-22s %9.0f req/s %7.1f CPU us/req\n", l, rps, c / hz * 1e6 / r }'
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
}

for r in $(seq "$rounds"); do
  echo "round $r"
  one floor "$after" floor
  for k in "${kinds[@]}"; do
    one "before $k" "$before" "$k"
    one "after $k" "$after" "$k"
  done
done
