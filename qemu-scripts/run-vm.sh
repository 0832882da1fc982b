#!/usr/bin/env bash
# Boot a QEMU VM with the disk a vhost-user-zbd daemon serves, choosing the QEMU device by
# QEMU version:
#   QEMU >= 10.2  -device vhost-user-test-device-pci,virtio-id=2,...,config_size=96
#                 the guest's virtio_blk sees the zoned disk (VIRTIO_BLK_F_ZONED)
#   QEMU <  10.2  vhost-user-blk-pci never passes VIRTIO_BLK_F_ZONED: the guest would see a
#                 regular disk. Refused unless --regular-disk is given (then it boots with
#                 vhost-user-blk-pci). For the zoned disk use QEMU >= 10.2 or User-Mode Linux
#                 (qemu-scripts/run-uml.sh).
#
# Usage: qemu-scripts/run-vm.sh --socket SOCK [options] [-- EXTRA-QEMU-ARGS...]
#   --socket SOCK        the daemon's socket (vhost-user-zbd serve --socket SOCK)
#   --qemu PATH|auto     QEMU binary (default: qemu-system-x86_64 from PATH). auto: that one
#                        when it is >= 10.2, else Debian's QEMU 11 fetched once into the
#                        cache by get-qemu.sh (the way on Debian 12, whose QEMU is 7.2)
#   --mem SIZE           guest RAM, e.g. 2G (default 2G)
#   --queues N           request queues (default 1; serve the disk with --queues >= N)
#   --smp N              vCPUs (default 2)
#   --regular-disk       use vhost-user-blk-pci (a regular disk) whatever the QEMU version
#   --kernel PATH        boot this kernel instead of the test guest (--initrd PATH and
#                        --append "ARGS" optional; console=ttyS0 is prepended)
#   --disk IMG           boot this disk image (raw or qcow2) as the first virtio disk
#                        (firmware boot); the served disk comes after it
#   --qemu-version X.Y   assume this QEMU version instead of asking the binary
#   --print-cmdline      print the command that would run and exit (starts nothing)
#
# Without --kernel or --disk it boots the test guest of build-qemu-guest.sh (Debian 6.12
# amd64 kernel, the host's / read-only, root shell on this terminal; needs root for
# virtiofsd) through run-qemu.sh --interactive. In every case the console is this terminal:
# Ctrl-A X quits QEMU, Ctrl-A C toggles the QEMU monitor. No network unless you add one after
# `--` (e.g. -nic user,model=virtio-net-pci). Inside the guest, find the served disk by its
# serial: grep . /sys/block/vd*/serial (the daemon logs its serial when it starts).
#
# Exit codes: QEMU's (or the shell's with the test guest); 2 usage; 3 refused: QEMU < 10.2
# without --regular-disk.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$script_dir/lib/common.sh"
# shellcheck source=lib/qemu.sh
source "$script_dir/lib/qemu.sh"
script_init run-vm 2

socket=
qemu='qemu-system-x86_64'
mem=2G
queues=1
smp=2
regular=0
kernel=
initrd=
append=
disk=
qemu_version=
print_only=0

while (($#)); do
  case "$1" in
    --socket) (($# >= 2)) || usage; socket=$2; shift 2 ;;
    --qemu) (($# >= 2)) || usage; qemu=$2; shift 2 ;;
    --mem) (($# >= 2)) || usage; mem=$2; shift 2 ;;
    --queues) (($# >= 2)) || usage; queues=$2; shift 2 ;;
    --smp) (($# >= 2)) || usage; smp=$2; shift 2 ;;
    --regular-disk) regular=1; shift ;;
    --kernel) (($# >= 2)) || usage; kernel=$2; shift 2 ;;
    --initrd) (($# >= 2)) || usage; initrd=$2; shift 2 ;;
    --append) (($# >= 2)) || usage; append=$2; shift 2 ;;
    --disk) (($# >= 2)) || usage; disk=$2; shift 2 ;;
    --qemu-version) (($# >= 2)) || usage; qemu_version=$2; shift 2 ;;
    --print-cmdline) print_only=1; shift ;;
    -h|--help) help_text; exit 0 ;;
    --) shift; break ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
extra=("$@")

[[ -n "$socket" ]] || die "--socket SOCK is required"
qg_check_machine_opts "$queues" "$smp" "$mem"
[[ -z "$kernel" || -z "$disk" ]] || die "give --kernel or --disk, not both"
[[ -n "$kernel" || (-z "$initrd" && -z "$append") ]] || die "--initrd and --append go with --kernel"

if [[ "$qemu" == auto ]]; then
  qemu=qemu-system-x86_64
  host_v=
  if command -v "$qemu" >/dev/null; then host_v=$(qg_qemu_version "$qemu" || true); fi
  if [[ -n "$host_v" ]] && qg_version_ge "$host_v" "$QG_ZONED_MIN_VERSION"; then
    log "--qemu auto: the host's QEMU $host_v"
  else
    log "--qemu auto: the host's QEMU is ${host_v:-absent}, older than $QG_ZONED_MIN_VERSION; using Debian's from qemu-scripts/get-qemu.sh"
    get=("$script_dir/get-qemu.sh" --quiet)
    # --print-cmdline starts nothing: no download either.
    ((!print_only)) || get+=(--dry-run)
    qemu=$("${get[@]}" | tail -n 1) || die "get-qemu.sh failed: no QEMU >= $QG_ZONED_MIN_VERSION"
    [[ -n "$qemu_version" ]] || ((!print_only)) || [[ -x "$qemu" ]] || qemu_version=$QG_ZONED_MIN_VERSION
  fi
fi

if [[ -n "$qemu_version" ]]; then
  qg_valid_version "$qemu_version" || die "--qemu-version wants X.Y, got: $qemu_version"
else
  command -v "$qemu" >/dev/null || die "QEMU not found: $qemu (Debian: apt-get install qemu-system-x86)"
  qemu_version=$(qg_qemu_version "$qemu") || die "cannot read the version of $qemu ($qemu --version)"
fi

if qg_version_ge "$qemu_version" "$QG_ZONED_MIN_VERSION" && ((!regular)); then
  kind='test'
  log "QEMU $qemu_version: zoned disk through vhost-user-test-device-pci (virtio-id 2, $queues queue(s))"
else
  # One explanation, whichever way it goes on.
  {
    if ((regular)); then
      log "--regular-disk: vhost-user-blk-pci; the guest sees a regular disk."
    else
      log "QEMU $qemu_version cannot show the zoned disk to a guest."
    fi
    if ! qg_version_ge "$qemu_version" "$QG_ZONED_MIN_VERSION"; then
      echo "  vhost-user-blk-pci (every QEMU release) never passes VIRTIO_BLK_F_ZONED to the guest, so"
      echo "  the guest sees a regular disk (queue/zoned = none) and the daemon logs that ZONED was not"
      echo "  negotiated. For the zoned disk use QEMU >= $QG_ZONED_MIN_VERSION (vhost-user-test-device-pci)"
      echo "  or User-Mode Linux (qemu-scripts/run-uml.sh --socket SOCK -- COMMAND). --qemu auto fetches"
      echo "  Debian's QEMU 11 (trixie-backports) into a private cache when the host's is older."
      echo "  On a zoned image the regular disk still obeys the zone rules (a write off a write pointer"
      echo "  fails with an I/O error); serve a plain raw file with --model none for an ordinary disk."
    fi
  } >&2
  if ((!regular)); then
    log "refused; add --regular-disk to boot with vhost-user-blk-pci anyway."
    exit 3
  fi
  kind=blk
fi

if [[ -z "$kernel" && -z "$disk" ]]; then
  # The test guest: run-qemu.sh owns virtiofsd, the scratch directory and cleanup.
  args=("$script_dir/run-qemu.sh" --interactive --socket "$socket" --queues "$queues"
    --disk-device "$kind" --mem "$mem" --smp "$smp" --qemu "$qemu")
  for a in "${extra[@]}"; do args+=(--qemu-arg "$a"); done
  if ((print_only)); then
    "${args[@]}" --print-cmdline
    exit
  fi
  log "booting the test guest (host / read-only); the served disk is a /dev/vd* with its serial"
  exec "${args[@]}"
fi

[[ "$socket" != *[[:space:]]* ]] || die "socket path must not contain blanks: $socket"
((print_only)) || [[ -S "$socket" ]] || die "no listening socket at $socket (start vhost-user-zbd serve first)"
sock_path=$socket
((print_only)) || sock_path=$(realpath "$socket")

qargs=("$qemu" -nodefaults -no-user-config -display none)
qg_machine_args qargs "$mem" "$smp"
if [[ -n "$disk" ]]; then
  ((print_only)) || [[ -f "$disk" ]] || die "--disk: no such file: $disk"
  fmt=raw
  # qcow2 files start with "QFI\xfb"; anything else is booted as raw (format given
  # explicitly so QEMU does not warn about probing, and cannot be tricked by a guest).
  if [[ -f "$disk" ]] && [[ "$(head -c 3 "$disk")" == QFI ]]; then fmt=qcow2; fi
  qargs+=(-drive "file=$(qg_escape "$disk"),if=virtio,format=$fmt")
else
  ((print_only)) || [[ -f "$kernel" ]] || die "--kernel: no such file: $kernel"
  qargs+=(-kernel "$kernel")
  [[ -z "$initrd" ]] || qargs+=(-initrd "$initrd")
  qargs+=(-append "console=ttyS0${append:+ $append}")
fi
qg_disk_args qargs 0 "$sock_path" "$queues" "$kind"
# shellcheck disable=SC2054  # the commas are QEMU's
qargs+=(-chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con,mode=readline)
qargs+=("${extra[@]}")

if ((print_only)); then
  qg_print_cmd "${qargs[@]}"
  exit 0
fi
exec "${qargs[@]}"
