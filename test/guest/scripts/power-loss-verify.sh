# Boot 2 of a power-loss test: the filesystem mounts after the power cut, every fsync'd file
# is intact, the filesystem checker finds nothing wrong.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
mnt="$OUT/mnt"; mkdir -p "$mnt"
check "mount $FS after the power cut" mount -t "$FS" "$DEV" "$mnt"
check "every fsync'd file is intact" bash -c "cd $mnt && sha256sum -c --quiet $OUT/synced.txt"
check "the unsynced files can be read (whatever survived)" bash -c "cat $mnt/* > /dev/null"
check "write after recovery" dd if=/dev/urandom of="$mnt/after" bs=1M count=4 conv=fsync status=none
check "umount" umount "$mnt"
# After the mount replayed the fsync log: the checker finds the filesystem consistent.
case "$FS" in
  btrfs) check "btrfs check --readonly" btrfs check --readonly "$DEV" ;;
  f2fs) check "fsck.f2fs" fsck.f2fs "$DEV" ;;
esac
finish
