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

sockets=()
mem=512M
kargs=()
envs=()
timeout_s=300
kernel=${UML_KERNEL:-}
verbose=0
keep=0

help_text() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
usage() { help_text >&2; exit 2; }
die() { echo "run-uml: ERROR: $*" >&2; exit 125; }

while (($#)); do
  case "$1" in
    --socket) (($# >= 2)) || usage; sockets+=("$2"); shift 2 ;;
    --mem) (($# >= 2)) || usage; mem=$2; shift 2 ;;
    --kernel-args)
      (($# >= 2)) || usage
      read -r -a more <<<"$2"
      kargs+=("${more[@]}")
      shift 2 ;;
    --env)
      (($# >= 2)) || usage
      [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got: $2"
      envs+=("$2"); shift 2 ;;
    --timeout) (($# >= 2)) || usage; timeout_s=$2; shift 2 ;;
    --kernel) (($# >= 2)) || usage; kernel=$2; shift 2 ;;
    -v|--verbose) verbose=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) help_text; exit 0 ;;
    --) shift; break ;;
    *) echo "run-uml: unknown argument: $1" >&2; usage ;;
  esac
done
(($#)) || { echo "run-uml: no COMMAND given" >&2; usage; }
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
scratch=$(mktemp -d "$scratch_base/run-uml.XXXXXX")
ramdir=
uml_pid=
watchdog_pid=
tails=()

# UML calls setsid() at start, so its pid is also the process group of its helper processes.
kill_uml() {
  kill "-$1" -- "-$uml_pid" 2>/dev/null || kill "-$1" "$uml_pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$uml_pid" ]]; then
    kill_uml TERM
    # Up to 2 s for a clean exit (UML is our unreaped child: exited = zombie).
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [[ "$(ps -o stat= -p "$uml_pid" 2>/dev/null)" == [A-Y]* ]] || break
      sleep 0.2
    done
    kill_uml KILL
  fi
  [[ -z "$watchdog_pid" ]] || kill "$watchdog_pid" 2>/dev/null || true
  for t in "${tails[@]}"; do kill "$t" 2>/dev/null || true; done
  [[ -z "$ramdir" ]] || rm -rf "$ramdir"
  if ((keep)); then
    echo "run-uml: scratch kept in $scratch" >&2
  else
    rm -rf "$scratch"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

mkdir "$scratch/tmp"
: >"$scratch/stdout"
: >"$scratch/stderr"
: >"$scratch/console.log"

# --- the guest's PID 1 ---
{
  echo '#!/bin/bash'
  echo '# PID 1 of a run-uml.sh guest (generated).'
  printf 'S=%q\n' "$scratch"
  printf 'export PATH=%q\n' "$PATH"
  printf 'export HOME=%q\n' "${HOME:-/root}"
  printf 'export TMPDIR=%q\n' "$scratch/tmp"
  printf 'export RUN_UML_SCRATCH=%q\n' "$scratch"
  for e in "${envs[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
  printf 'BUSYBOX=%q\n' "$busybox"
  printf 'CWD=%q\n' "$PWD"
  printf 'CMD=('; printf ' %q' "$@"; printf ' )\n'
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
# Write-then-rename: the host never sees a partial exit code.
echo "$rc" >"$S/exit-code.tmp" && mv -f "$S/exit-code.tmp" "$S/exit-code"
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

# Stream the command's output while the guest runs; tail stops once UML is gone (reaped).
stream() { tail -q -n +1 -s 0.2 -f --pid="$uml_pid" "$1"; }

# Runs in the background: after the timeout, TERM then KILL UML's whole process group.
# shellcheck disable=SC2317  # the trap is reached by a signal
watchdog() {
  local sp
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$timeout_s" & sp=$!
  wait "$sp" || exit 0
  : >"$scratch/timed-out"
  kill_uml TERM
  sleep 5 & sp=$!
  wait "$sp" || exit 0
  kill_uml KILL
}

start=$(date +%s%N)
ulimit -c 0
TMPDIR=$ramdir "$kernel" "${cmdline[@]}" </dev/null >>"$scratch/console.log" 2>&1 &
uml_pid=$!
watchdog &
watchdog_pid=$!
stream "$scratch/stdout" &
tails+=($!)
stream "$scratch/stderr" >&2 &
tails+=($!)
if ((verbose)); then
  stream "$scratch/console.log" >&2 &
  tails+=($!)
fi

uml_rc=0
wait "$uml_pid" || uml_rc=$?
kill "$watchdog_pid" 2>/dev/null || true
wait "$watchdog_pid" || true
watchdog_pid=
# Any helper process left in UML's group goes now (the group only: the pid is free again).
kill -KILL -- "-$uml_pid" 2>/dev/null || true
uml_done=$uml_pid
uml_pid=
# UML is reaped: the tails see its pid gone, flush what is left and stop.
for t in "${tails[@]}"; do wait "$t" || true; done
tails=()
elapsed_ms=$((($(date +%s%N) - start) / 1000000))

show_console() {
  if ((!verbose)); then
    if [[ -s "$scratch/console.log" ]]; then
      echo "run-uml: last lines of the guest console:" >&2
      tail -n 40 "$scratch/console.log" | sed 's/^/  | /' >&2
    else
      echo "run-uml: the guest console is empty (it boots with 'quiet')" >&2
    fi
  fi
}

if [[ -f "$scratch/timed-out" ]]; then
  echo "run-uml: ERROR: timed out after ${timeout_s} s; killed the guest (process group $uml_done)" >&2
  show_console
  exit 124
fi
if [[ ! -f "$scratch/exit-code" ]]; then
  if [[ -f "$scratch/booted" ]]; then
    echo "run-uml: ERROR: the guest did not report an exit code (UML exit status $uml_rc)" >&2
  else
    echo "run-uml: ERROR: the guest did not reach its init script (UML exit status $uml_rc)" >&2
  fi
  show_console
  exit 125
fi
rc=$(<"$scratch/exit-code")
[[ "$rc" =~ ^[0-9]+$ ]] || die "bad exit code file content: $rc"
if ((uml_rc != 0)); then
  echo "run-uml: warning: UML exited with status $uml_rc after the command finished" >&2
  show_console
fi
if [[ -n "${RUN_UML_TIMING:-}" ]]; then
  echo "run-uml: guest run took ${elapsed_ms} ms" >&2
fi
exit "$rc"
