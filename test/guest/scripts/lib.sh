# Shared by guest scripts (run inside the UML guest as root; the host's / is the guest's /).
# Every check prints one line; the script's exit code is the number of failed checks.
set -uo pipefail
fails=0
# The guest's /dev is its own devtmpfs, which lacks the /dev/fd link that bash's <(...) needs.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() { echo "checks failed: $fails"; exit "$fails"; }

# The disk under test: refuse to touch anything that is not our virtio disk with the expected serial.
find_disk() {
  local serial=$1 d
  for d in /sys/block/vd*; do
    [ -e "$d" ] || continue
    if [ "$(cat "$d/serial" 2>/dev/null)" = "$serial" ]; then DEV=/dev/$(basename "$d"); Q=$d/queue; break; fi
  done
  if [ -z "${DEV:-}" ] || [ ! -b "$DEV" ]; then echo "FAIL no virtio disk with serial $serial (have: $(ls /sys/block))"; exit 100; fi
}
# Condition code of the zone starting at sector $1.
zcond() { blkzone report -o "$1" -c 1 "$DEV" | sed -n 's/.*zcond: *\([0-9]*\).*/\1/p'; }
# Write pointer (relative, hex as printed) of the zone starting at $1.
zwp() { blkzone report -o "$1" -c 1 "$DEV" | sed -n 's/.*wptr \(0x[0-9a-f]*\).*/\1/p'; }
