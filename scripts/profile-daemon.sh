#!/usr/bin/env bash
# One daemon, one workload, optionally under perf: the quick loop behind the "what changed"
# numbers in docs/performance.md. The bench compares daemons; this looks inside one.
#
#   scripts/profile-daemon.sh [--root CHECKOUT] [--qsd] [--op randread|randwrite|seqwrite]
#                             [--qd N] [--bs BYTES] [--seconds S] [--perf] [-- SERVE-ARGS...]
#
# A 1 GiB file of random data in a private directory under /var/tmp (a disk filesystem;
# --dir to choose), read once so it is page-cached; the daemon (this checkout's, another
# checkout's with --root, or qemu-storage-daemon aio=io_uring with --qsd) serves it as a
# regular disk; the benchmark's load generator drives it and prints IOPS, p50 and CPU per
# I/O. --perf records the daemon for 1.5 s and prints where its CPU went (perf report by
# DSO, then the top symbols; ours is started with --perf-basic-prof so JavaScript frames
# have names). Everything is removed afterwards.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/scripts/daemon-fixture.sh"
root=$here qsd=0 op=randread qd=32 bs=4096 seconds=3 perf=0 dir=/var/tmp
serve_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$(cd "$2" && pwd); shift 2 ;;
    --qsd) qsd=1; shift ;;
    --op) op=$2; shift 2 ;;
    --qd) qd=$2; shift 2 ;;
    --bs) bs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --perf) perf=1; shift ;;
    --) shift; serve_args=("$@"); break ;;
    *) echo "profile-daemon: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
[ -f "$here/dist/bench/loadgen-main.js" ] || { echo "profile-daemon: build first (npm run build)" >&2; exit 2; }
[ $perf = 0 ] || command -v perf >/dev/null || { echo "profile-daemon: perf is not installed (linux-perf)" >&2; exit 2; }

work=$(mktemp -d "$dir/profile-daemon.XXXXXX")
daemon=
cleanup() {
  [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
  wait 2>/dev/null || true
  # --perf-basic-prof makes node write its symbol map where perf looks for it.
  [ -z "$daemon" ] || rm -f "/tmp/perf-$daemon.map"
  rm -rf "$work"
}
trap cleanup EXIT
img=$work/disk.raw
fixture_file "$img"

if [ $qsd = 1 ]; then
  qemu-storage-daemon --blockdev "driver=file,node-name=f,filename=$img,cache.direct=off,aio=io_uring" \
    --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$work/sock,writable=on,num-queues=1" &
else
  node_args=()
  [ $perf = 0 ] || node_args+=(--perf-basic-prof)
  node "${node_args[@]}" "$root/bin/vhost-user-zbd.js" serve --socket "$work/sock" \
    --image "$img" --model none --log-level warn --no-hints --api none "${serve_args[@]}" &
fi
daemon=$!
fixture_wait_socket "$work/sock" profile-daemon

job=$(fixture_job "$work/sock" "$daemon" "$op" "$bs" "$qd" $((seconds * 1000)))
if [ $perf = 1 ]; then
  (sleep 1; perf record -q -F 4999 -g -p "$daemon" -o "$work/perf.data" -- sleep 1.5 >/dev/null 2>&1) &
  recorder=$!
fi
node "$here/dist/bench/loadgen-main.js" "$job" | node -e '
  let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
    const r = JSON.parse(s);
    console.log(`${r.iops | 0} IOPS, p50 ${r.p50Us} µs, daemon CPU ${(r.daemonCpuS / r.ops * 1e6).toFixed(2)} µs per I/O, ` +
      `load generator ${(r.genCpuS / r.ops * 1e6).toFixed(2)} µs, kicks ${r.kicks}, generator sleeps ${r.sleeps}`);
  });'
if [ $perf = 1 ]; then
  wait "$recorder"
  perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
  echo
  perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -"${PROFILE_LINES:-40}"
fi
