# Boot 1: make a zoned btrfs (its data goes through ZONE_APPEND), write files, remount, verify.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
mnt="$OUT/mnt"; mkdir -p "$mnt"
check "mkfs.btrfs -O zoned" mkfs.btrfs -f -q -O zoned -d single -m single "$DEV"
check "mount" mount -t btrfs "$DEV" "$mnt"
for i in $(seq 1 12); do head -c $(( (i * 379 + 1) * 1024 )) /dev/urandom > "$mnt/file$i"; done
dd if=/dev/urandom of="$mnt/big" bs=1M count=48 status=none
check "sync" sync
(cd "$mnt" && sha256sum file* big) > "$OUT/sums.txt"
check "umount" umount "$mnt"
check "remount" mount -t btrfs "$DEV" "$mnt"
check "checksums after remount" bash -c "cd $mnt && sha256sum -c --quiet $OUT/sums.txt"
check "btrfs reports zoned mode" bash -c "grep -q . /sys/fs/btrfs/*/features/zoned"
check "umount" umount "$mnt"
blkzone report "$DEV" > "$OUT/report-btrfs.txt"
check "btrfs wrote into sequential zones" bash -c "grep -c 'zcond: [24]\|zcond:14' $OUT/report-btrfs.txt | grep -qv '^0$'"
finish
