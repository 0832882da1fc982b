# fio in zoned mode, paced, while a browser watches the daemon's live page: two jobs fill
# zones at 4 MB/s each for RUNTIME seconds, then reset what they wrote.
. "$(dirname "$0")/../../guest/scripts/lib.sh"
find_disk "$EXPECT_SERIAL"
check "reset all zones" blkzone reset "$DEV"
cd "$OUT" || exit 101
check "fio zbd paced sequential writes" fio --name=live --filename="$DEV" --direct=1 --zonemode=zbd \
  --rw=write --bs=64k --rate=4m --numjobs=2 --offset_increment=8z --size=8z --max_open_zones=4 \
  --ioengine=psync --time_based --runtime="${RUNTIME:-12}" --group_reporting --output="$OUT/fio-live.txt"
grep -E "WRITE:" "$OUT/fio-live.txt"
# One refused write for the page's error list: 1 MiB past the write pointer of an empty zone.
zs=$(cat "$Q/chunk_sectors")
if dd if=/dev/zero of="$DEV" bs=4096 count=1 seek=$(( (60 * zs * 512 + 1048576) / 4096 )) oflag=direct conv=notrunc status=none 2>/dev/null; then
  bad "a write away from the write pointer must fail"
else ok "a write away from the write pointer fails"; fi
blkzone report "$DEV" > "$OUT/report-live.txt"
check "zones were written" grep -q 'zcond: *[24]\|zcond:14' "$OUT/report-live.txt"
finish
