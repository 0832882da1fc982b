# QEMU (7.2 or 11.1) + vhost-user-blk-pci with reconnect: fio writes and verifies the disk while the host
# SIGKILLs and restarts the daemon several times (it touches $OUT/fio-started, then the host
# starts killing). Requests in flight at each kill are resubmitted by the next daemon from the
# inflight region, so fio must finish without an error and every block must verify.
# Env: OUT (writable share), EXPECT_SERIAL, SIZE (fio region), BS.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
echo "disk $DEV serial $(cat "/sys/block/${DEV#/dev/}/serial")"
cd "$TMPDIR" || exit 101
: >"$OUT/fio-started"
t0=$(date +%s%N)
# A flush every 16 writes: the daemon's fdatasync reaches the host disk, so most of the time a
# request is in flight in the daemon when it is killed.
check "fio randwrite $SIZE@$BS QD16 (fsync every 16) with crc32c verify across daemon restarts" \
  fio --output-format=json --output="$OUT/fio.json" --name=restarts --filename="$DEV" --direct=1 --ioengine=libaio \
  --iodepth=16 --rw=randwrite --bs="$BS" --size="$SIZE" --fsync=16 \
  --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0
echo "fio took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
: >"$OUT/fio-done"
check "no I/O errors in the kernel log" sh -c '! dmesg | grep -E "I/O error|blk_update_request|critical medium"'
finish
