#!/usr/bin/env bash
# Many short load-generator sessions against one daemon, the way the benchmark drives it
# (connect, run, drain, stop the queues, disconnect), stopping at the first failure with the
# daemon's log kept. For hunting rare bugs at session boundaries and in the request path.
#
#   scripts/session-stress.sh [--root CHECKOUT] [--rounds N] [--gap SECONDS] [--op OP]
#                             [--dir DIR] [-- SERVE-ARGS...]
#
# A 1 GiB file of random data in a private directory under /var/tmp (--dir to choose), read
# once so it is page-cached; one daemon serves it as a regular disk; each round runs six
# 1.5 s sessions: QD1 three times, then QD32 three times, with --gap seconds between them.
# On a failure the load generator's error and the daemon's log are printed and the exit
# status is 1. Everything is removed afterwards.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/scripts/daemon-fixture.sh"
root=$here rounds=20 gap=0 op=randread dir=/var/tmp
serve_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$(cd "$2" && pwd); shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --gap) gap=$2; shift 2 ;;
    --op) op=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --) shift; serve_args=("$@"); break ;;
    *) echo "session-stress: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
[ -f "$root/dist/bench/loadgen-main.js" ] || { echo "session-stress: build first (npm run build)" >&2; exit 2; }

work=$(mktemp -d "$dir/session-stress.XXXXXX")
daemon=
cleanup() {
  [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
img=$work/disk.raw
fixture_file "$img"

node "$root/bin/vhost-user-zbd.js" serve --socket "$work/sock" --image "$img" --model none \
  --log-level warn --no-hints "${serve_args[@]}" 2> "$work/daemon.log" &
daemon=$!
fixture_wait_socket "$work/sock" session-stress "$work/daemon.log"

for round in $(seq "$rounds"); do
  for qd in 1 1 1 32 32 32; do
    job=$(fixture_job "$work/sock" "$daemon" "$op" 4096 "$qd" 1500)
    if ! out=$(timeout 60 node "$root/dist/bench/loadgen-main.js" "$job" 2>&1); then
      echo "round $round, QD$qd: FAILED: $out"
      echo "--- daemon log:"
      cat "$work/daemon.log"
      exit 1
    fi
    sleep "$gap"
  done
  echo "round $round: 6 sessions ok"
done
