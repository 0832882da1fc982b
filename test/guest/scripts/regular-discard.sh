# `serve --model none` on a sparse raw file (QEMU 7.2 vhost-user-blk-pci or UML): discard and
# write-zeroes as the guest's own tools use them. A file system made without discard (FS:
# ext4, or btrfs where the UML kernel has no ext4), 256 MiB
# written and deleted, fstrim gives the space back (the host checks the file's blocks after);
# blkdiscard -z reads back zeroes; a plain blkdiscard of a written range frees it.
# With ZONED_SERIAL, a zoned disk served next to it must offer neither.
# Env: OUT (writable share), EXPECT_SERIAL, FS (ext4 | btrfs, default ext4), ZONED_SERIAL (optional).
. "$(dirname "$0")/lib.sh"
if [ -n "${ZONED_SERIAL:-}" ]; then
  find_disk "$ZONED_SERIAL"
  echo "zoned disk $DEV: zoned $(cat "$Q/zoned") discard_max_bytes $(cat "$Q/discard_max_bytes") write_zeroes_max_bytes $(cat "$Q/write_zeroes_max_bytes")"
  check "the zoned disk offers neither discard nor write zeroes" [ "$(cat "$Q/zoned")/$(cat "$Q/discard_max_bytes")/$(cat "$Q/write_zeroes_max_bytes")" = host-managed/0/0 ]
  unset DEV Q
fi
find_disk "$EXPECT_SERIAL"
echo "disk $DEV discard_max_bytes $(cat "$Q/discard_max_bytes") discard_granularity $(cat "$Q/discard_granularity")" \
  "write_zeroes_max_bytes $(cat "$Q/write_zeroes_max_bytes") max_discard_segments $(cat "$Q/max_discard_segments")"
check "the driver took DISCARD (1 GiB per segment)" [ "$(cat "$Q/discard_max_hw_bytes")" = 1073741824 ]
check "the driver took WRITE_ZEROES (1 GiB)" [ "$(cat "$Q/write_zeroes_max_bytes")" = 1073741824 ]
check "32 discard segments per request" [ "$(cat "$Q/max_discard_segments")" = 32 ]

mnt=$TMPDIR/mnt
mkdir -p "$mnt"
fs=${FS:-ext4}
case $fs in
  ext4) check "mkfs.ext4 without discard at mkfs time" mkfs.ext4 -q -F -E nodiscard "$DEV" ;;
  btrfs) check "mkfs.btrfs without discard at mkfs time" mkfs.btrfs -q -f -K "$DEV" ;;
esac
check "mount $fs" mount -t "$fs" "$DEV" "$mnt"
check "write 256 MiB" dd if=/dev/urandom of="$mnt/big" bs=1M count=256 conv=fsync status=none
sync
echo "used after write: $(df -k "$mnt" | awk 'NR == 2 { print $3 }') KiB"
rm "$mnt/big"
sync
trimmed=$(fstrim -v "$mnt" | sed -n 's/.*(\([0-9]*\) bytes) trimmed.*/\1/p')
echo "fstrim trimmed $trimmed bytes"
check "fstrim trimmed at least 256 MiB" [ "${trimmed:-0}" -ge 268435456 ]
check "umount" umount "$mnt"

# blkdiscard -z (BLKZEROOUT: WRITE_ZEROES without unmap) over written data reads back zeroes.
off=$((600 * 1048576)); len=$((8 * 1048576))
check "write 8 MiB at 600 MiB" dd if=/dev/urandom of="$DEV" bs=1M seek=600 count=8 oflag=direct status=none
check "blkdiscard -z" blkdiscard -z -o "$off" -l "$len" "$DEV"
check "the range reads back zeroes" cmp -n "$len" <(dd if="$DEV" bs=1M skip=600 count=8 iflag=direct status=none) /dev/zero
# A plain discard of written data at 700 MiB: the host finds no blocks there afterwards.
check "write 16 MiB at 700 MiB" dd if=/dev/urandom of="$DEV" bs=1M seek=700 count=16 oflag=direct conv=fsync status=none
check "blkdiscard 16 MiB at 700 MiB" blkdiscard -o $((700 * 1048576)) -l $((16 * 1048576)) "$DEV"
check "a discard with a length off the 512-byte sector is refused by the kernel, not sent" sh -c "! blkdiscard -o 0 -l 1000 $DEV 2>/dev/null"
finish
