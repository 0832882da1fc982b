# Live control of the served disk while the guest runs (test/guest/control-guest.test.ts):
# the host changes the disk through the control API when asked (api below), and the guest's
# own tools see the effect: zone faults, an injected error, an injected delay.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
ZS=32768
z() { echo $(( $1 * ZS )); }
n=0
# Ask the host to call the control API ("METHOD PATH [JSON]"); prints its answer.
api() {
  n=$((n + 1))
  echo "$*" > "$OUT/req.$n.tmp" && mv "$OUT/req.$n.tmp" "$OUT/req.$n"
  for _ in $(seq 1 1200); do
    if [ -e "$OUT/ack.$n" ]; then cat "$OUT/ack.$n"; echo; return 0; fi
    sleep 0.05
  done
  echo "FAIL the host did not answer: $*"; return 1
}
neg() { ! "$@"; }
# 4 KiB blocks at sector $1 (direct I/O: every request reaches the device).
wr() { dd if=/dev/urandom of="$DEV" bs=4096 count="${2:-16}" seek=$(( $1 / 8 )) oflag=direct status=none 2>"$OUT/dd.err"; }
rd() { dd if="$DEV" of="${3:-/dev/null}" bs=4096 count="${2:-16}" skip=$(( $1 / 8 )) iflag=direct status=none 2>"$OUT/dd.err"; }
eio() { grep -q 'Input/output error' "$OUT/dd.err"; }

check "write 64 KiB into zone 4" wr "$(z 4)"
rd "$(z 4)" 16 "$OUT/z4.before"

api POST /zones/5/offline
check "zone 5 taken offline live: blkzone reports offline (15)" test "$(zcond "$(z 5)")" = 15
check "dd write to the offline zone fails" neg wr "$(z 5)"
check "dd read of the offline zone fails" neg rd "$(z 5)"
api POST /zones/5/clear
check "clear: zone 5 empty again (1)" test "$(zcond "$(z 5)")" = 1
check "dd write to zone 5 works again" wr "$(z 5)"

api POST /zones/4/readonly
check "zone 4 read-only live: blkzone reports read-only (13)" test "$(zcond "$(z 4)")" = 13
check "dd write at its write pointer is refused" neg wr $(( $(z 4) + 128 ))
check "dd read of its data works" rd "$(z 4)" 16 "$OUT/z4.ro"
check "and returns the data written before" cmp -s "$OUT/z4.before" "$OUT/z4.ro"
api POST /zones/4/clear
check "clear: zone 4 back to closed (4) with its data" test "$(zcond "$(z 4)")" = 4
check "its write pointer is where it was (0x80)" test "$(zwp "$(z 4)")" = 0x000080
check "dd write at the write pointer works again" wr $(( $(z 4) + 128 ))

api POST /faults "{\"op\":\"write\",\"range\":{\"start\":$(z 6),\"end\":$(( $(z 6) + 8 ))},\"once\":true}"
check "other zones are not affected by the rule" wr "$(z 8)"
check "the dd overlapping the rule's range fails" neg wr "$(z 6)"
check "with EIO" eio
check "the zone's write pointer did not move (0)" test "$(zwp "$(z 6)")" = 0x000000
check "the next dd succeeds" wr "$(z 6)"
check "write pointer after it 0x80" test "$(zwp "$(z 6)")" = 0x000080

api POST /faults "{\"op\":\"read\",\"range\":{\"start\":$(z 7),\"end\":$(( $(z 7) + 8 ))},\"delayMs\":1500,\"once\":true}"
t0=$(date +%s%N)
( rd "$(z 7)" 1 && date +%s%N > "$OUT/slow.end" ) &
sleep 0.2
rd "$(z 4)" 16 && fast_end=$(date +%s%N)
wait
slow_end=$(cat "$OUT/slow.end" 2>/dev/null || echo 0)
echo "delayed read: $(( (slow_end - t0) / 1000000 )) ms; other read done at $(( (fast_end - t0) / 1000000 )) ms"
check "the delayed read took at least 1500 ms" test $(( (slow_end - t0) / 1000000 )) -ge 1500
check "a read issued after it completed first" test "$fast_end" -lt "$slow_end"
api DELETE /faults
blkzone report "$DEV" > "$OUT/report-final.txt"
finish
