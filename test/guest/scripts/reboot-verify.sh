# Second boot against the same running daemon (a VM reboot): the data and write pointer are
# there; the zone that was open when the guest went away is still open in the daemon.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
zs=$(cat "$Q/chunk_sectors")
s=$(( NCONV * zs ))
check "data written before the reboot reads back" cmp <(dd if="$DEV" bs=65536 skip=$(( s * 512 / 65536 )) count=4 iflag=direct status=none) "$OUT/pattern.bin"
check "write pointer kept" [ "$(zwp "$s")" = "0x000200" ]
check "next write continues at the write pointer" dd if=/dev/zero of="$DEV" bs=65536 count=1 seek=$(( s * 512 / 65536 + 4 )) oflag=direct conv=notrunc status=none
finish
