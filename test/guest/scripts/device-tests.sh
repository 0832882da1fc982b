# Inside the UML guest (root = the host's /): the host device backend tests of test/device
# against the guest kernel's null_blk and scsi_debug zoned disks. Results go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 101
export VUZBD_IN_GUEST=1
{
  echo "kernel $(uname -r)"
  for b in /sys/block/*; do
    echo "$(basename "$b") zoned=$(cat "$b/queue/zoned") size=$(cat "$b/size") lbs=$(cat "$b/queue/logical_block_size") dma=$(cat "$b/queue/dma_alignment") model=$(cat "$b/device/model" 2>/dev/null | tr -d ' ')"
  done
} | tee "$OUT/devices.txt"
node node_modules/vitest/vitest.mjs run --config test/device/vitest.config.ts \
  --reporter=default --reporter=json --outputFile.json="$OUT/results.json"
