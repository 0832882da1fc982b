# sysfs limits, blkzone report, writes at/away from the write pointer, zone management,
# resource limits: all through the guest kernel's virtio_blk driver and util-linux blkzone.
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
for f in zoned nr_zones max_open_zones max_active_zones zone_append_max_bytes chunk_sectors logical_block_size physical_block_size; do
  echo "$f=$(cat "$Q/$f")"
done > "$OUT/sysfs.txt"
cat "$OUT/sysfs.txt"
blkzone report "$DEV" > "$OUT/report-initial.txt"

zs=$(cat "$Q/chunk_sectors")
bs=$(cat "$Q/logical_block_size")
z() { echo $(( $1 * zs )); }          # start sector of zone $1
seq0=$(( NCONV ))                      # first sequential zone

# Conventional zones take writes anywhere.
dd if=/dev/urandom of="$OUT/conv.bin" bs=4096 count=8 status=none
check "write into a conventional zone at an arbitrary offset" dd if="$OUT/conv.bin" of="$DEV" bs=4096 seek=13 oflag=direct conv=notrunc status=none
check "read it back" cmp <(dd if="$DEV" bs=4096 skip=13 count=8 iflag=direct status=none) "$OUT/conv.bin"

# Sequential zone: write at the write pointer, in two steps.
s=$(z $seq0)
dd if=/dev/urandom of="$OUT/seq.bin" bs=65536 count=2 status=none
check "write at the write pointer" dd if="$OUT/seq.bin" of="$DEV" bs=65536 count=1 seek=$(( s * 512 / 65536 )) oflag=direct conv=notrunc status=none
check "write pointer moved by 64 KiB" [ "$(zwp "$s")" = "0x000080" ]
check "zone implicitly open" [ "$(zcond "$s")" = 2 ]
check "second write at the new write pointer" dd if="$OUT/seq.bin" of="$DEV" bs=65536 skip=1 count=1 seek=$(( s * 512 / 65536 + 1 )) oflag=direct conv=notrunc status=none
check "data reads back" cmp <(dd if="$DEV" bs=65536 skip=$(( s * 512 / 65536 )) count=2 iflag=direct status=none) "$OUT/seq.bin"
check "above the write pointer reads zeroes" cmp <(dd if="$DEV" bs=65536 skip=$(( s * 512 / 65536 + 2 )) count=1 iflag=direct status=none) <(head -c 65536 /dev/zero)
if dd if=/dev/zero of="$DEV" bs="$bs" count=1 seek=$(( (s * 512 + 1048576) / bs )) oflag=direct conv=notrunc status=none 2>/dev/null; then
  bad "a write away from the write pointer must fail"
else ok "a write away from the write pointer fails"; fi
check "failed write left the write pointer alone" [ "$(zwp "$s")" = "0x000100" ]

# Explicit open / close / finish / reset.
s1=$(z $((seq0 + 1))); s2=$(z $((seq0 + 2)))
check "open an empty zone" blkzone open -o "$s1" -c 1 "$DEV"
check "explicitly open" [ "$(zcond "$s1")" = 3 ]
check "close it" blkzone close -o "$s1" -c 1 "$DEV"
check "closed with wp at start is empty" [ "$(zcond "$s1")" = 1 ]
check "close the written zone" blkzone close -o "$s" -c 1 "$DEV"
check "written zone is closed" [ "$(zcond "$s")" = 4 ]
check "finish a zone" blkzone finish -o "$s2" -c 1 "$DEV"
check "finished zone is full" [ "$(zcond "$s2")" = 14 ]
if dd if=/dev/zero of="$DEV" bs="$bs" count=1 seek=$(( s2 * 512 / bs )) oflag=direct conv=notrunc status=none 2>/dev/null; then
  bad "a write to a full zone must fail"; else ok "a write to a full zone fails"; fi
check "reset the full zone" blkzone reset -o "$s2" -c 1 "$DEV"
check "reset zone is empty" [ "$(zcond "$s2")" = 1 ]
check "reset zone reads zeroes" cmp <(dd if="$DEV" bs=65536 skip=$(( s2 * 512 / 65536 )) count=1 iflag=direct status=none) <(head -c 65536 /dev/zero)

# Open limit: MAXOPEN explicit opens succeed, one more fails (ETOOMANYREFS from OPEN_RESOURCE).
for i in $(seq 1 "$MAXOPEN"); do blkzone open -o "$(z $((seq0 + 2 + i)))" -c 1 "$DEV" || bad "explicit open $i"; done
if err=$(blkzone open -o "$(z $((seq0 + 3 + MAXOPEN)))" -c 1 "$DEV" 2>&1); then bad "open beyond max_open_zones must fail"
else ok "open beyond max_open_zones fails: $err"; check "with Too many references (OPEN_RESOURCE)" grep -qi "too many references" <<<"$err"; fi
if dd if=/dev/zero of="$DEV" bs="$bs" count=1 seek=$(( $(z $((seq0 + 3 + MAXOPEN))) * 512 / bs )) oflag=direct conv=notrunc status=none 2>/dev/null; then
  bad "a write needing an implicit open with all zones explicitly open must fail"; else ok "a write needing a new open zone fails while all opens are explicit"; fi
for i in $(seq 1 "$MAXOPEN"); do blkzone close -o "$(z $((seq0 + 2 + i)))" -c 1 "$DEV" || bad "close $i"; done

# A zone holding data, reset and rewritten at once: the new data reads back, the old is gone
# (the host frees the zone's space in the background while the guest goes on).
s3=$(z $((seq0 + 4 + MAXOPEN)))
mib=$(( 1048576 / bs ))
check "fill 4 MiB of a zone" dd if=/dev/urandom of="$DEV" bs="$bs" count=$(( 4 * mib )) seek=$(( s3 * 512 / bs )) oflag=direct conv=notrunc status=none
check "reset the zone holding data" blkzone reset -o "$s3" -c 1 "$DEV"
dd if=/dev/urandom of="$OUT/rewrite.bin" bs=1048576 count=1 status=none
check "rewrite it at once" dd if="$OUT/rewrite.bin" of="$DEV" bs="$bs" count="$mib" seek=$(( s3 * 512 / bs )) oflag=direct conv=notrunc status=none
check "rewritten data reads back" cmp <(dd if="$DEV" bs=1048576 skip=$(( s3 * 512 / 1048576 )) count=1 iflag=direct status=none) "$OUT/rewrite.bin"
check "old data past the new write pointer is gone" cmp <(dd if="$DEV" bs=1048576 skip=$(( s3 * 512 / 1048576 + 1 )) count=3 iflag=direct status=none) <(head -c $(( 3 * 1048576 )) /dev/zero)
check "write pointer at 1 MiB" [ "$(zwp "$s3")" = "0x000800" ]
check "reset it again" blkzone reset -o "$s3" -c 1 "$DEV"

# Leave a recognisable state for the host-side comparison: zone seq0+1 holds 8 blocks, seq0+2 full.
dd if=/dev/urandom of="$DEV" bs="$bs" count=8 seek=$(( s1 * 512 / bs )) oflag=direct conv=notrunc status=none || bad "write zone seq0+1"
blkzone finish -o "$s2" -c 1 "$DEV" || bad "finish seq0+2"
blkzone report "$DEV" > "$OUT/report-final.txt"

# Reset-all (util-linux resets the whole device with one ioctl → virtio ZONE_RESET_ALL).
cp "$OUT/report-final.txt" "$OUT/report-before-reset-all.txt"
finish
