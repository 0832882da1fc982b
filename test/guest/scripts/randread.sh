# Random 4 KiB reads at QD1 and QD32 (io_uring, O_DIRECT) on the disk with serial
# EXPECT_SERIAL, and how the device interrupts (MSI-X vectors or one INTx line). For the
# interrupt-vector comparison in docs/qemu.md; not part of the test suite's checks.
# Env: EXPECT_SERIAL, RUNTIME (seconds per job, default 15).
. "$(dirname "$0")/lib.sh"
find_disk "$EXPECT_SERIAL"
pci=$(readlink -f "/sys/block/${DEV#/dev/}/device/..")
echo "device $(basename "$pci") msi_irqs=$(ls "$pci/msi_irqs" 2>/dev/null | wc -l) irq=$(cat "$pci/irq")"
cd "$TMPDIR" || exit 101
for qd in 1 32; do
  fio --name="randread-qd$qd" --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth="$qd" --rw=randread \
    --bs=4k --size=512M --time_based --runtime="${RUNTIME:-15}" --ramp_time=2 --output-format=terse --terse-version=3 |
    awk -F';' -v qd="$qd" '{ printf "randread 4k QD%s: %d IOPS, mean completion latency %.0f us\n", qd, $8, $40 }'
done
grep -E "virtio|IO-APIC.*fasteoi" /proc/interrupts | awk '{ n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print "irq", $1, $NF, n }'
finish
