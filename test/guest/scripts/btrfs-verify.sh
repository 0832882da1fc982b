# Boot 2, after the daemon was restarted: every file written in boot 1 is intact.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
mnt="$OUT/mnt"; mkdir -p "$mnt"
check "mount after daemon restart" mount -t btrfs "$DEV" "$mnt"
check "every checksum matches" bash -c "cd $mnt && sha256sum -c --quiet $OUT/sums.txt"
check "scrub finds no errors" bash -c "btrfs scrub start -B $mnt | grep -q 'no errors found\|Error summary: *no errors'"
check "append more after restart" dd if=/dev/urandom of="$mnt/after" bs=1M count=8 status=none
check "sync" sync
check "umount" umount "$mnt"
finish
