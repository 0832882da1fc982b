#!/usr/bin/env bash
# Boot the User-Mode Linux 6.12 guest with the host's / as its root filesystem and run one
# command inside it as root.
#
# Usage: qemu-scripts/run-uml.sh [options] -- COMMAND [ARGS...]
#   --socket SOCK        attach a vhost-user block backend listening on SOCK
#                        (virtio_uml.device=SOCK:2); may be repeated
#   --mem SIZE           guest RAM (default 512M)
#   --kernel-args "..."  extra kernel command-line arguments (whitespace-split; repeatable)
#   --env NAME=VALUE     set an environment variable for COMMAND (repeatable)
#   --timeout SECS       kill the guest after SECS seconds (default 300); exit 124
#   --kernel PATH        use this UML binary instead of building one (also: $UML_KERNEL)
#   -v, --verbose        stream the guest console (kernel log) to stderr
#   --keep               keep the scratch directory and print its path
#
# COMMAND runs with the caller's working directory, stdin from /dev/null, PATH and HOME of the
# caller, TMPDIR and RUN_UML_SCRATCH pointing at a private scratch directory. Its stdout and
# stderr are streamed to this script's stdout and stderr. The exit code is COMMAND's; 124 on
# timeout; 125 when the guest did not report one (boot failure, panic, crash).
#
# The guest's root is the host's / read-write with root rights: its file writes are real.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$script_dir/lib/common.sh"
script_init run-uml 125

sockets=()
mem=512M
kargs=()
envs=()
timeout_s=300
kernel=${UML_KERNEL:-}
verbose=0
keep=0

while (($#)); do
  case "$1" in
    --socket) (($# >= 2)) || usage; sockets+=("$2"); shift 2 ;;
    --mem) (($# >= 2)) || usage; mem=$2; shift 2 ;;
    --kernel-args) (($# >= 2)) || usage; opt_words kargs "$2"; shift 2 ;;
    --env) (($# >= 2)) || usage; opt_env envs "$2"; shift 2 ;;
    --timeout) (($# >= 2)) || usage; timeout_s=$2; shift 2 ;;
    --kernel) (($# >= 2)) || usage; kernel=$2; shift 2 ;;
    -v|--verbose) verbose=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) help_text; exit 0 ;;
    --) shift; break ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
(($#)) || { log "no COMMAND given"; usage; }
if [[ ! "$timeout_s" =~ ^[0-9]+$ ]] || ((timeout_s == 0)); then
  die "--timeout wants a positive integer, got: $timeout_s"
fi
for s in "${sockets[@]}"; do
  # The kernel parses SOCK:ID, so a colon or blank in the path would break it.
  [[ "$s" != *[:[:space:]]* ]] || die "socket path must not contain ':' or blanks: $s"
done

busybox=$(command -v busybox || true)
[[ -n "$busybox" ]] || die "busybox not found (package busybox-static; run scripts/install-deps.sh)"

if [[ -z "$kernel" ]]; then
  # Builds only when the cache has no kernel for the current config fragment.
  kernel=$("$script_dir/build-uml.sh" --quiet | tail -n 1) || die "building the UML kernel failed"
fi
[[ -x "$kernel" ]] || die "UML kernel not executable: $kernel"

# --- private directories ---
# The scratch dir must be visible in the guest through hostfs, so not under /dev or /run
# (the guest mounts its own devtmpfs and tmpfs there).
scratch_base=${TMPDIR:-/tmp}
case "$(realpath -m "$scratch_base")/" in
  /dev/*|/run/*) scratch_base=/var/tmp ;;
esac
run_make_scratch "$scratch_base"
ramdir=
# shellcheck disable=SC2317  # called by run_cleanup
drop_ramdir() { [[ -z "$ramdir" ]] || rm -rf "$ramdir"; }
run_trap_cleanup drop_ramdir

# UML's RAM is an unlinked file in $TMPDIR: put it on tmpfs when possible (not subject to
# dirty-page writeback), and never on a noexec mount (UML maps it executable).
mount_ok() { [[ -d "$1" && -w "$1" ]] && ! findmnt -n -o OPTIONS --target "$1" | grep -qw noexec; }
if [[ "$(stat -f -c %T /dev/shm 2>/dev/null)" == tmpfs ]] && mount_ok /dev/shm; then
  ramdir=$(mktemp -d /dev/shm/run-uml-ram.XXXXXX)
elif mount_ok "$scratch"; then
  ramdir=$(mktemp -d "$scratch/ram.XXXXXX")
else
  die "no exec-able directory for UML's RAM file (/dev/shm and $scratch_base are noexec)"
fi

run_prepare_scratch

# --- the guest's PID 1 ---
{
  echo '#!/bin/bash'
  echo '# PID 1 of a run-uml.sh guest (generated).'
  run_guest_env "${envs[@]}"
  printf 'BUSYBOX=%q\n' "$busybox"
  run_guest_command "$@"
  cat <<'EOF'
m() { mount "$@" || echo "run-uml init: mount $* failed" >&2; }
m -t proc proc /proc
m -t sysfs sysfs /sys
m -t debugfs debugfs /sys/kernel/debug
[ -d /sys/kernel/config ] && m -t configfs configfs /sys/kernel/config
grep -q '^[^ ]* /dev devtmpfs' /proc/mounts || m -t devtmpfs devtmpfs /dev
# Private tmpfs so guest programs do not touch the host's /dev/shm and /run.
mkdir -p /dev/shm && m -t tmpfs -o mode=1777 tmpfs /dev/shm
m -t tmpfs -o mode=755 tmpfs /run
echo booted >"$S/booted"
if cd "$CWD"; then
  "${CMD[@]}" </dev/null >>"$S/stdout" 2>>"$S/stderr"
  rc=$?
else
  echo "run-uml init: cannot cd to $CWD" >>"$S/stderr"
  rc=125
fi
EOF
  run_guest_report
  cat <<'EOF'
sync
# systemd's poweroff cannot work here; busybox's -f calls reboot(2) directly.
"$BUSYBOX" poweroff -f
# Never let PID 1 exit (that panics the kernel).
while :; do sleep 1000; done
EOF
} >"$scratch/init"
chmod 755 "$scratch/init"

cmdline=(
  "mem=$mem" root=/dev/root rootfstype=hostfs rootflags=/ rw
  con=null ssl=null "con0=null,fd:1" quiet
)
# Built-in null_blk and scsi_debug would each create a disk at boot (and scsi_debug's probe
# costs ~0.6 s): off by default, a later --kernel-args value wins.
cmdline+=(null_blk.nr_devices=0 scsi_debug.add_host=0)
for s in "${sockets[@]}"; do cmdline+=("virtio_uml.device=$s:2"); done
cmdline+=("${kargs[@]}" "init=$scratch/init")

run_begin
TMPDIR=$ramdir "$kernel" "${cmdline[@]}" </dev/null >>"$scratch/console.log" 2>&1 &
# UML calls setsid() at start: its pid is also the process group of its helper processes,
# which the watchdog and the cleanup kill with it.
run_watch $! 1
run_wait
run_exit_if_timed_out run_show_console "the guest (process group $guest_done)"
run_exit_with_code run_show_console UML "its init script"
