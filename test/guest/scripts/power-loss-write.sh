# Boot 1 of a power-loss test (test/guest/control-guest.test.ts): make a zoned filesystem
# ($FS: btrfs or f2fs), write files, fsync some, leave others written but never flushed, then
# ask the host to pull the plug (SIGKILL of this UML) and wait for it.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
mnt="$OUT/mnt"; mkdir -p "$mnt"
case "$FS" in
  btrfs) mkfs.btrfs -f -q -O zoned -d single -m single "$DEV" && mount -t btrfs -o commit=300 "$DEV" "$mnt" ;;
  f2fs) mkfs.f2fs -f -q -m "$DEV" >/dev/null && mount -t f2fs "$DEV" "$mnt" ;;
esac || { echo "FAIL mkfs/mount $FS"; exit 1; }
: > "$OUT/synced.txt"
for i in $(seq 1 8); do
  head -c $(( (i * 211 + 3) * 1024 )) /dev/urandom > "$mnt/synced$i"
  # fsync of the file (and, for a new file, of its directory entry) before it counts as written.
  dd if=/dev/null of="$mnt/synced$i" conv=notrunc,fsync status=none
  sync "$mnt"
  (cd "$mnt" && sha256sum "synced$i") >> "$OUT/synced.txt"
done
# Written back to the disk by the kernel's flusher without any flush: volatile on the device.
echo 1 > /proc/sys/vm/dirty_writeback_centisecs
echo 1 > /proc/sys/vm/dirty_expire_centisecs
for i in $(seq 1 6); do head -c $(( i * 300 * 1024 )) /dev/urandom > "$mnt/unsynced$i"; done
sleep 3
echo "ready" > "$OUT/pull-the-plug"
# The host kills this UML now; never get further.
sleep 600
echo "FAIL still alive"
exit 1
