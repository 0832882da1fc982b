# A preallocated image (create --preallocation falloc|full): the guest fills two zones, resets
# them with blkzone, reads zeroes back and writes again; the host then checks the space stayed
# reserved through the resets.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
zs=$(cat "$Q/chunk_sectors")
mib=$((zs / 2048))
check "write zones 1 and 2" dd if=/dev/urandom of="$DEV" bs=1M seek="$mib" count=$((2 * mib)) oflag=direct status=none
check "zone 1 full" test "$(zcond "$zs")" = 14
check "zone 2 full" test "$(zcond $((2 * zs)))" = 14
check "reset zones 1-2" blkzone reset -o "$zs" -c 2 "$DEV"
check "zone 1 empty" test "$(zcond "$zs")" = 1
check "zones 1-2 read back zeroes" cmp -n $((2 * zs * 512)) <(dd if="$DEV" bs=1M skip="$mib" count=$((2 * mib)) iflag=direct status=none) /dev/zero
head -c $((mib * 1048576)) /dev/urandom > /tmp/zone-data.$$
check "write zone 1 again" dd if=/tmp/zone-data.$$ of="$DEV" bs=1M seek="$mib" oflag=direct status=none
check "zone 1 reads back what was written" cmp <(dd if="$DEV" bs=1M skip="$mib" count="$mib" iflag=direct status=none) /tmp/zone-data.$$
rm -f /tmp/zone-data.$$
check "reset zone 1 again" blkzone reset -o "$zs" -c 1 "$DEV"
finish
