# Boot 2, after the daemon was restarted: the f2fs files are intact, and f2fs keeps working
# (deleting and rewriting makes it clean and reset zones).
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
mnt="$OUT/mnt"; mkdir -p "$mnt"
check "mount after daemon restart" mount -t f2fs "$DEV" "$mnt"
check "every checksum matches" bash -c "cd $mnt && sha256sum -c --quiet $OUT/f2fs-sums.txt"
check "delete and rewrite (f2fs resets zones as it cleans)" bash -c "rm $mnt/big && dd if=/dev/urandom of=$mnt/big2 bs=1M count=32 status=none && sync"
check "umount" umount "$mnt"
blkzone report "$DEV" > "$OUT/report-f2fs.txt"
check "f2fs wrote into sequential zones" bash -c "grep 'SEQ_WRITE_REQUIRED' $OUT/report-f2fs.txt | grep -qv 'zcond: 1(em)'"
finish
