# First boot: write a pattern at the write pointer of the first sequential zone.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
zs=$(cat "$Q/chunk_sectors")
s=$(( NCONV * zs ))
head -c 262144 /dev/urandom > "$OUT/pattern.bin"
check "write 256 KiB at the write pointer" dd if="$OUT/pattern.bin" of="$DEV" bs=65536 seek=$(( s * 512 / 65536 )) oflag=direct conv=notrunc status=none
check "zone is implicitly open" [ "$(zcond "$s")" = 2 ]
finish
