# fio in zoned mode with data verification, after a whole-device reset (ZONE_RESET_ALL).
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
# Hardware queues the guest's virtio_blk set up (EXPECT_QUEUES: one per vCPU, up to what the
# daemon offers); the fio jobs below are spread over the CPUs, and blk-mq maps each CPU to its
# own queue.
echo "hardware queues=$(ls -d "/sys/block/${DEV#/dev/}/mq/"* | wc -l)" | tee "$OUT/queues.txt"
check "${EXPECT_QUEUES:-1} hardware queue(s)" [ "$(cat "$OUT/queues.txt")" = "hardware queues=${EXPECT_QUEUES:-1}" ]
cpus="0-$(($(nproc) - 1))"
check "reset all zones" blkzone reset "$DEV"
check "no zone left non-empty" bash -c "! blkzone report $DEV | grep -v 'zcond: 0(nw)' | grep -qv 'zcond: 1(em)'"
cd "$OUT" || exit 101
# Sequential writes through the zone write pointers with crc32c verification, 2 jobs in parallel
# zones, one per CPU (so one per hardware queue where there are 2).
check "fio zbd sequential write + verify (psync)" fio --name=seq --filename="$DEV" --direct=1 --zonemode=zbd \
  --rw=write --bs=64k --size=8z --offset_increment=8z --numjobs=2 --group_reporting --max_open_zones=4 \
  --cpus_allowed="$cpus" --cpus_allowed_policy=split \
  --verify=crc32c --do_verify=1 --verify_fatal=1 --ioengine=psync --output="$OUT/fio-seq.txt"
# Random writes are turned into writes at the write pointers by fio; io_uring queue depth 8; zones reset as they fill.
check "fio zbd random write + verify (io_uring QD8)" fio --name=rnd --filename="$DEV" --direct=1 --zonemode=zbd \
  --rw=randwrite --bs=16k --offset=16z --size=8z --io_size=96M --max_open_zones=4 --ioengine=io_uring --iodepth=8 \
  --verify=md5 --do_verify=1 --verify_fatal=1 --output="$OUT/fio-rnd.txt"
grep -E "WRITE:|READ:" "$OUT/fio-seq.txt" "$OUT/fio-rnd.txt"
blkzone report "$DEV" > "$OUT/report-after-fio.txt"
finish
