# shellcheck shell=bash
# Shared by run-qemu.sh and run-vm.sh (sourced after common.sh, not executed): QEMU version
# checks, option checks and the command-line pieces for a vhost-user disk. Sets nothing at
# load time except functions and QG_ZONED_MIN_VERSION.

# The first QEMU release whose vhost-user-test-device-pci is user-creatable; it forwards the
# backend's feature bits unfiltered, so VIRTIO_BLK_F_ZONED reaches the guest
# (vhost-user-blk-pci filters it out in every release).
# shellcheck disable=SC2034  # used by the scripts that source this file
QG_ZONED_MIN_VERSION=10.2

# "X.Y" of a QEMU binary, from its --version banner ("QEMU emulator version 7.2.22 (...)").
qg_qemu_version() {
  local banner
  banner=$("$1" --version 2>/dev/null | head -n 1) || return 1
  [[ "$banner" =~ version\ ([0-9]+)\.([0-9]+) ]] || return 1
  echo "${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
}

# True when version $1 >= version $2 (both X.Y or X.Y.Z; compared numerically per field).
qg_version_ge() {
  local -a a b
  local i x y
  IFS=. read -r -a a <<<"$1"
  IFS=. read -r -a b <<<"$2"
  for i in 0 1 2; do
    x=${a[i]:-0} y=${b[i]:-0}
    ((10#$x > 10#$y)) && return 0
    ((10#$x < 10#$y)) && return 1
  done
  return 0
}

qg_valid_version() { [[ "$1" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]]; }

# qg_check_machine_opts QUEUES SMP MEM: refuse bad --queues, --smp, --mem values up front
# (QEMU would fail later with a less obvious message; MEM is also the size of the memfd
# backend, whose syntax wants M or G).
qg_check_machine_opts() {
  [[ "$1" =~ ^[1-9][0-9]*$ ]] || die "--queues wants a positive integer, got: $1"
  [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "--smp wants a positive integer, got: $2"
  [[ "$3" =~ ^[1-9][0-9]*[MG]$ ]] || die "--mem wants a size like 512M or 2G, got: $3"
}

# QEMU option values use ',' as separator; a literal comma is written ',,'.
qg_escape() { printf '%s' "${1//,/,,}"; }

# Append to the array named $1 the options for vhost-user disk number $2 at socket $3 with
# $4 queues, as device kind $5:
#   blk   vhost-user-blk-pci: any QEMU; the guest sees a regular (non-zoned) disk
#   test  vhost-user-test-device-pci as virtio-blk (virtio-id 2) with the full 96-byte config
#         space (up to the zoned fields): QEMU >= 10.2, the guest sees the zoned disk
qg_disk_args() {
  local -n out=$1
  local i=$2 sock=$3 queues=$4 kind=$5 chardev_opt=${6:-}
  # chardev_opt: e.g. the reconnect option (qg_reconnect_opt), so QEMU reconnects to a restarted back-end.
  out+=(-chardev "socket,id=vu$i,path=$(qg_escape "$sock")${chardev_opt:+,$chardev_opt}")
  case "$kind" in
    blk) out+=(-device "vhost-user-blk-pci,chardev=vu$i,num-queues=$queues") ;;
    test) out+=(-device "vhost-user-test-device-pci,chardev=vu$i,virtio-id=2,num_vqs=$queues,vq_size=256,config_size=96") ;;
    *) echo "unknown disk device kind: $kind" >&2; return 1 ;;
  esac
}

# The chardev option that reconnects after $2 seconds: reconnect=S until QEMU 9.1, reconnect-ms
# from 9.2 (QEMU 10 removed reconnect). $1: QEMU version (X.Y).
qg_reconnect_opt() {
  if qg_version_ge "$1" 9.2; then echo "reconnect-ms=$(($2 * 1000))"; else echo "reconnect=$2"; fi
}

# Machine options shared by every guest: TCG (no KVM here), and guest RAM in a shared memfd,
# which vhost-user needs (the backends map guest memory).
qg_machine_args() {
  # shellcheck disable=SC2178  # a nameref to the caller's array
  local -n out=$1
  local mem=$2 smp=$3
  # shellcheck disable=SC2054  # the commas are QEMU's
  out+=(-accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem"
    -object "memory-backend-memfd,id=mem,size=$mem,share=on"
    -machine q35,memory-backend=mem)
}

# Print an argv as one line a shell reads back as the same argv: words made only of
# characters no shell treats specially are printed bare (QEMU's commas stay readable),
# anything else in single quotes.
qg_print_cmd() {
  local sep='' a
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      printf '%s%s' "$sep" "$a"
    else
      printf "%s'%s'" "$sep" "${a//\'/\'\\\'\'}"
    fi
    sep=' '
  done
  printf '\n'
}
