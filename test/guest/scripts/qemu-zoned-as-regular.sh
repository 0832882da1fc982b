# QEMU 7.2 + vhost-user-blk-pci serving a ZONED image: QEMU never passes VIRTIO_BLK_F_ZONED,
# so the guest sees a regular disk, yet the daemon keeps the zone rules: a write at a
# sequential zone's write pointer works, one in the middle of an empty sequential zone fails.
# Env: OUT, EXPECT_SERIAL, SEQ_START (bytes: first sequential zone), MID (bytes: middle of
# an empty sequential zone), DATA (host file, 64 KiB).
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
echo "disk $DEV serial $(cat "/sys/block/${DEV#/dev/}/serial") size $(cat "/sys/block/${DEV#/dev/}/size") sectors"
echo "queue/zoned=$(cat "$Q/zoned")" | tee "$OUT/zoned.txt"
check "queue/zoned is none" [ "$(cat "$Q/zoned")" = none ]
check "no zone limits in sysfs" [ ! -e "$Q/max_open_zones" ]
if blkzone report -c 1 "$DEV" >/dev/null 2>&1; then bad "blkzone report must fail on a regular disk"; else ok "blkzone report fails (not a zoned disk)"; fi

check "write at the first sequential zone's start ($SEQ_START)" \
  dd if="$DATA" of="$DEV" bs=65536 seek=$((SEQ_START / 65536)) oflag=direct conv=notrunc status=none
check "it reads back" cmp <(dd if="$DEV" bs=65536 skip=$((SEQ_START / 65536)) count=1 iflag=direct status=none) "$DATA"

# O_DIRECT: the error reaches dd itself instead of a later page-cache writeback.
if dd if="$DATA" of="$DEV" bs=65536 seek=$((MID / 65536)) oflag=direct conv=notrunc status=none 2>"$OUT/mid-write.err"; then
  bad "a write in the middle of an empty sequential zone ($MID) must fail"
else
  ok "a write in the middle of an empty sequential zone ($MID) fails: $(tr '\n' ' ' <"$OUT/mid-write.err")"
fi
check "the failure is an I/O error" grep -q "Input/output error" "$OUT/mid-write.err"
check "the empty zone still reads zeroes there" cmp <(dd if="$DEV" bs=65536 skip=$((MID / 65536)) count=1 iflag=direct status=none) <(head -c 65536 /dev/zero)
dmesg | grep -E "I/O error|critical" | tail -n 3 | tee "$OUT/dmesg-errors.txt"
finish
