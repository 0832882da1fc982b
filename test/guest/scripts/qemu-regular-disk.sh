# QEMU 7.2 + vhost-user-blk-pci, `serve --model none` on a raw file: a regular disk with the
# daemon's serial, both request queues used, fio crc32c verify, and a known block written
# with dd for the host to read back from the raw file after the daemon stops.
# Env: OUT (writable share), EXPECT_SERIAL, QUEUES, PATTERN (host file), PATTERN_OFFSET (bytes).
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
echo "disk $DEV serial $(cat "/sys/block/${DEV#/dev/}/serial") size $(cat "/sys/block/${DEV#/dev/}/size") sectors"
check "queue/zoned is none" [ "$(cat "$Q/zoned")" = none ]
check "no zone limits in sysfs" [ ! -e "$Q/max_open_zones" ]
nq=$(ls -d "/sys/block/${DEV#/dev/}/mq/"* | wc -l)
check "$QUEUES hardware queues (found $nq)" [ "$nq" = "$QUEUES" ]

# Completion interrupts per virtqueue (MSI-X vector "virtioN-req.Q"): proof that a queue
# carried requests (6.12 dropped the per-hctx request counters from debugfs).
vdev=$(basename "$(readlink -f "/sys/block/${DEV#/dev/}/device")")
irqs() {
  awk -v d="$vdev" '$NF ~ ("^" d "-req\\.") {
    n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print $NF, n }' /proc/interrupts | sort
}
irqs >"$TMPDIR/irq-before"

# fio writes its verify state files into the working directory: use the writable TMPDIR.
cd "$TMPDIR" || exit 101
# Two jobs at once in separate regions, one per vCPU: blk-mq maps each CPU to its own hardware
# queue, so both virtqueues carry I/O. randwrite, then read back and check every block's crc32c.
t0=$(date +%s%N)
check "fio randwrite 4k + 64k, io_uring QD8, verify=crc32c" fio --output-format=json --output="$OUT/fio.json" \
  --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=8 --rw=randwrite \
  --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
  --name=rnd4k --bs=4k --offset=0 --size=64M --cpus_allowed=0 \
  --name=rnd64k --bs=64k --offset=256M --size=256M --cpus_allowed=1
echo "fio took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
irqs >"$TMPDIR/irq-after"
join "$TMPDIR/irq-before" "$TMPDIR/irq-after" | awk '{ print $1, "interrupts during fio:", $3 - $2 }' | tee "$OUT/queues.txt"
check "$QUEUES virtqueues listed in /proc/interrupts" [ "$(wc -l <"$OUT/queues.txt")" = "$QUEUES" ]
check "every virtqueue carried requests" awk '$NF <= 0 { bad = 1 } END { exit bad }' "$OUT/queues.txt"

# A known block for the host to find in the raw file.
check "dd the pattern at $PATTERN_OFFSET" dd if="$PATTERN" of="$DEV" bs=65536 seek=$((PATTERN_OFFSET / 65536)) oflag=direct conv=notrunc,fsync status=none
check "pattern reads back in the guest" cmp <(dd if="$DEV" bs=65536 skip=$((PATTERN_OFFSET / 65536)) count=$(($(stat -c %s "$PATTERN") / 65536)) iflag=direct status=none) "$PATTERN"
finish
