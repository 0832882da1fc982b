# Boot 1: f2fs in zoned mode (-m): metadata in the conventional zones, data written
# sequentially in the sequential zones; files survive remount.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
mnt="$OUT/mnt"; mkdir -p "$mnt"
check "mkfs.f2fs -m (zoned)" mkfs.f2fs -f -q -m "$DEV"
check "mount" mount -t f2fs "$DEV" "$mnt"
for i in $(seq 1 10); do head -c $(( (i * 613 + 7) * 1024 )) /dev/urandom > "$mnt/f$i"; done
check "write a 64 MiB file" dd if=/dev/urandom of="$mnt/big" bs=1M count=64 status=none
check "sync" sync
(cd "$mnt" && sha256sum f* big) > "$OUT/f2fs-sums.txt"
check "umount" umount "$mnt"
check "remount" mount -t f2fs "$DEV" "$mnt"
check "checksums after remount" bash -c "cd $mnt && sha256sum -c --quiet $OUT/f2fs-sums.txt"
check "umount" umount "$mnt"
finish
