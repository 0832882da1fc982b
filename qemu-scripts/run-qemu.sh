#!/usr/bin/env bash
# Boot the QEMU test guest (Debian 6.12 cloud kernel + the initramfs of build-qemu-guest.sh)
# under TCG with vhost-user disk(s), run one command inside it as root, return its exit code.
# The guest sees the host's / read-only (virtiofs), so host tools (fio, blkzone, dd) run.
#
# Usage: qemu-scripts/run-qemu.sh [options] -- COMMAND [ARGS...]
#   --socket SOCK        attach the vhost-user block backend listening on SOCK; repeatable
#                        (the first is /dev/vda, the next /dev/vdb, ...)
#   --queues N           request queues per disk (default 1; the backend must offer >= N)
#   --disk-device KIND   blk: vhost-user-blk-pci (default; any QEMU; a regular disk, QEMU
#                        never passes VIRTIO_BLK_F_ZONED) | test: vhost-user-test-device-pci
#                        (QEMU >= 10.2; the zoned disk)
#   --mem SIZE           guest RAM (default 1G)
#   --smp N              vCPUs (default 2)
#   --share DIR          make host directory DIR writable in the guest at the same path
#                        (repeatable; DIR must be on the host's root filesystem)
#   --env NAME=VALUE     set an environment variable for COMMAND (repeatable)
#   --kernel-args "..."  extra kernel command-line arguments
#   --timeout SECS       kill the guest after SECS seconds (default 300; exit 124);
#                        0 = no timeout (default with --interactive)
#   --kernel PATH        kernel (default: build-qemu-guest.sh); --initrd PATH likewise
#   --qemu PATH          QEMU binary (default: qemu-system-x86_64 from PATH)
#   --qemu-arg ARG       one more QEMU argument, appended last (repeatable)
#   --interactive        the guest console is this terminal (Ctrl-A X quits QEMU); COMMAND
#                        defaults to an interactive bash; no output files, no timeout
#   --print-cmdline      print the QEMU command line (scratch paths as <scratch>) and exit
#   -v, --verbose        stream the guest console (kernel log) to stderr
#   --keep               keep the scratch directory and print its path
#
# COMMAND runs with the caller's working directory (read-only unless shared), stdin from
# /dev/null, PATH and HOME of the caller, TMPDIR and RUN_QEMU_SCRATCH pointing at a private
# writable scratch directory. Its stdout and stderr are streamed to this script's stdout and
# stderr. Exit code: COMMAND's; 124 on timeout; 125 when the guest did not report one.
#
# Needs root: virtiofsd (one per share) runs as root, and the root share is a read-only bind
# mount of / in a private mount namespace.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=qemu-guest/lib.sh
# shellcheck source=qemu-guest/lib.sh disable=SC1091
source "$script_dir/qemu-guest/lib.sh"

sockets=()
queues=1
disk_kind=blk
mem=1G
smp=2
shares=()
envs=()
kargs=()
timeout_s=
kernel=
initrd=
qemu='qemu-system-x86_64'
extra_qemu=()
interactive=0
print_only=0
verbose=0
keep=0
virtiofsd=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}

help_text() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
usage() { help_text >&2; exit 2; }
die() { echo "run-qemu: ERROR: $*" >&2; exit 125; }

while (($#)); do
  case "$1" in
    --socket) (($# >= 2)) || usage; sockets+=("$2"); shift 2 ;;
    --queues) (($# >= 2)) || usage; queues=$2; shift 2 ;;
    --disk-device) (($# >= 2)) || usage; disk_kind=$2; shift 2 ;;
    --mem) (($# >= 2)) || usage; mem=$2; shift 2 ;;
    --smp) (($# >= 2)) || usage; smp=$2; shift 2 ;;
    --share) (($# >= 2)) || usage; shares+=("$2"); shift 2 ;;
    --env)
      (($# >= 2)) || usage
      [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got: $2"
      envs+=("$2"); shift 2 ;;
    --kernel-args)
      (($# >= 2)) || usage
      read -r -a more <<<"$2"
      kargs+=("${more[@]}")
      shift 2 ;;
    --timeout) (($# >= 2)) || usage; timeout_s=$2; shift 2 ;;
    --kernel) (($# >= 2)) || usage; kernel=$2; shift 2 ;;
    --initrd) (($# >= 2)) || usage; initrd=$2; shift 2 ;;
    --qemu) (($# >= 2)) || usage; qemu=$2; shift 2 ;;
    --qemu-arg) (($# >= 2)) || usage; extra_qemu+=("$2"); shift 2 ;;
    --interactive) interactive=1; shift ;;
    --print-cmdline) print_only=1; shift ;;
    -v|--verbose) verbose=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) help_text; exit 0 ;;
    --) shift; break ;;
    *) echo "run-qemu: unknown argument: $1" >&2; usage ;;
  esac
done
cmd=("$@")
if ((${#cmd[@]} == 0)); then
  ((interactive)) || { echo "run-qemu: no COMMAND given" >&2; usage; }
  # A short orientation, then the user's interactive bash (not a login shell: /etc/profile
  # would reset the PATH passed from the host).
  # shellcheck disable=SC2016  # expanded in the guest
  cmd=(bash -c 'echo "test guest: host / read-only at /, writable scratch in $RUN_QEMU_SCRATCH; exit powers off"
    for s in /sys/block/vd*/serial; do [ -e "$s" ] && echo "  /dev/$(basename "$(dirname "$s")"): serial $(cat "$s")"; done
    exec bash -i')
fi
[[ -n "$timeout_s" ]] || { ((interactive)) && timeout_s=0 || timeout_s=300; }
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout wants a non-negative integer, got: $timeout_s"
[[ "$queues" =~ ^[1-9][0-9]*$ ]] || die "--queues wants a positive integer, got: $queues"
[[ "$smp" =~ ^[1-9][0-9]*$ ]] || die "--smp wants a positive integer, got: $smp"
[[ "$mem" =~ ^[1-9][0-9]*[MG]$ ]] || die "--mem wants a size like 512M or 2G, got: $mem"
[[ "$disk_kind" == blk || "$disk_kind" == test ]] || die "--disk-device wants blk or test, got: $disk_kind"
for s in "${sockets[@]}"; do
  # Refuse early: QEMU would fail realize with a less obvious message.
  ((print_only)) || [[ -S "$s" ]] || die "no listening socket at $s (start the backend first)"
done

# --- kernel and initramfs ---
if [[ -z "$kernel" || -z "$initrd" ]]; then
  [[ -z "$kernel" && -z "$initrd" ]] || die "give both --kernel and --initrd, or neither"
  build=("$script_dir/build-qemu-guest.sh" --quiet)
  ((!print_only)) || build+=(--dry-run)
  built=$("${build[@]}") || die "building the QEMU guest failed"
  kernel=$(sed -n 1p <<<"$(tail -n 2 <<<"$built")")
  initrd=$(sed -n 2p <<<"$(tail -n 2 <<<"$built")")
fi
((print_only)) || [[ -f "$kernel" && -f "$initrd" ]] || die "kernel or initrd missing: $kernel $initrd"

if ((!print_only)); then
  command -v "$qemu" >/dev/null || die "QEMU not found: $qemu (package qemu-system-x86)"
  [[ -x "$virtiofsd" ]] || die "virtiofsd not found at $virtiofsd (package qemu-system-common; or set VIRTIOFSD)"
  ((EUID == 0)) || die "needs root: virtiofsd and the read-only bind mount of / need CAP_SYS_ADMIN"
  if [[ "$disk_kind" == test ]]; then
    v=$(qg_qemu_version "$qemu") || die "cannot read the version of $qemu"
    qg_version_ge "$v" "$QG_ZONED_MIN_VERSION" ||
      die "--disk-device test needs QEMU >= $QG_ZONED_MIN_VERSION (vhost-user-test-device-pci); $qemu is $v"
  fi
fi

# --- private scratch directory ---
# The guest mounts the scratch share at the same path inside the host's / share, and that
# share is a non-recursive bind of the root filesystem: the directory must live on it
# (not on a tmpfs such as /dev/shm). QEMU option syntax also rules out commas.
on_root_fs() { [[ "$(stat -c %d "$1")" == "$(stat -c %d /)" ]]; }
if ((print_only)); then
  scratch='<scratch>'
else
  scratch_base=
  for b in "${TMPDIR:-/tmp}" /tmp /var/tmp; do
    if [[ -d "$b" && -w "$b" ]] && on_root_fs "$b"; then scratch_base=$(realpath "$b"); break; fi
  done
  [[ -n "$scratch_base" ]] || die "no writable directory on the root filesystem for the scratch dir"
  scratch=$(mktemp -d "$scratch_base/run-qemu.XXXXXX")
  [[ "$scratch" != *[,[:space:]]* ]] || { rmdir "$scratch"; die "scratch path has a comma or blank: $scratch"; }
fi

qemu_pid=
watchdog_pid=
fs_pids=()
tails=()

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  if [[ -n "$qemu_pid" ]]; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$qemu_pid" 2>/dev/null || true
  fi
  [[ -z "$watchdog_pid" ]] || kill "$watchdog_pid" 2>/dev/null || true
  for p in "${tails[@]}"; do kill "$p" 2>/dev/null || true; done
  # virtiofsd normally exits when QEMU disconnects; make sure.
  for p in "${fs_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${fs_pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [[ -n "${scratch_base:-}" ]]; then
    if ((keep)); then
      echo "run-qemu: scratch kept in $scratch" >&2
    else
      # The root view is only a mount point in virtiofsd's private namespace: here it is an
      # empty directory.
      rm -rf "$scratch"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- virtiofsd: one per share ---
# $1 tag, $2 directory, $3 ro|rw. The root share is a read-only, non-recursive bind of / in
# a private mount namespace, so neither the guest nor a virtiofsd bug can write the host's
# root filesystem, and the host's /proc, /sys, /dev and other mounts are not exported.
# sandbox=chroot keeps virtiofsd a single process (its namespace sandbox forks), so the PID
# we hold is the one to kill.
start_virtiofsd() {
  local tag=$1 dir=$2 mode=$3 sock="$scratch/fs-$1.sock" log="$scratch/fs-$1.log"
  local source=$dir cache=auto
  [[ "$mode" == rw ]] || source="$scratch/root-view"
  # For a one-command run the host's / does not change under the guest: let the guest cache
  # it (exec of fio/blkzone gets ~0.6 s faster per boot). Writable shares and an interactive
  # session keep cache=auto, so host-side edits show up in the guest.
  [[ "$mode" == rw ]] || ((interactive)) || cache=always
  local fsd=("$virtiofsd" "--socket-path=$sock" -o "source=$source" -o sandbox=chroot
    -o "cache=$cache" -o log_level=warn -o no_xattr)
  if [[ "$mode" == ro ]]; then
    mkdir -p "$source"
    # unshare runs without --fork and sh execs: one PID from here to virtiofsd.
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --mount --propagation private sh -c 'mount --bind -o ro "$1" "$2" && shift 2 && exec "$@"' \
      sh "$dir" "$source" "${fsd[@]}" >"$log" 2>&1 &
  else
    "${fsd[@]}" >"$log" 2>&1 &
  fi
  fs_pids+=($!)
  local i
  for i in $(seq 100); do
    [[ -S "$sock" ]] && return 0
    kill -0 "${fs_pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "run-qemu: virtiofsd for $tag ($dir) did not start:" >&2
  sed 's/^/  | /' "$log" >&2
  exit 125
}

qargs=("$qemu" -nodefaults -no-user-config -display none -no-reboot)
qg_machine_args qargs "$mem" "$smp"
# Disks first: PCI slots are assigned in command-line order and virtio_blk names the
# disks in probe order, so --socket order is vda, vdb, ...
for i in "${!sockets[@]}"; do
  s=${sockets[i]}
  ((print_only)) || s=$(realpath "$s")
  qg_disk_args qargs "$i" "$s" "$queues" "$disk_kind"
done
fs_tags=(hostroot scratch)
fs_dirs=(/ "$scratch")
for i in "${!shares[@]}"; do
  fs_tags+=("share$i")
  if ((print_only)); then
    fs_dirs+=("${shares[i]}")
  else
    d=$(realpath "${shares[i]}")
    [[ -d "$d" ]] || die "--share: not a directory: ${shares[i]}"
    on_root_fs "$d" || die "--share $d: not on the host's root filesystem (the guest could not mount it at the same path)"
    [[ "$d" != *[[:space:]]* ]] || die "--share $d: blanks in the path are not supported"
    fs_dirs+=("$d")
  fi
done
for i in "${!fs_tags[@]}"; do
  # queue-size 1024: virtiofs requests are small and many; the default 128 throttles exec.
  qargs+=(-chardev "socket,id=fs$i,path=$(qg_escape "$scratch/fs-${fs_tags[i]}.sock")"
    -device "vhost-user-fs-pci,chardev=fs$i,tag=${fs_tags[i]},queue-size=1024")
done
append=(console=ttyS0 panic=-1 "vuzbd.scratch=$scratch")
((verbose)) || append+=(quiet)
append+=("${kargs[@]}")
qargs+=(-kernel "$kernel" -initrd "$initrd" -append "${append[*]}")
if ((interactive)); then
  # Serial console and monitor multiplexed on this terminal: Ctrl-A X quits, Ctrl-A C
  # switches to the monitor; Ctrl-C goes to the guest.
  # shellcheck disable=SC2054  # the commas are QEMU's
  qargs+=(-chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con,mode=readline)
else
  qargs+=(-serial "file:$scratch/console.log")
fi
qargs+=("${extra_qemu[@]}")

if ((print_only)); then
  qg_print_cmd "${qargs[@]}"
  exit 0
fi

# --- the guest's command script (runs chrooted into the host's /, as root) ---
{
  echo '# generated by run-qemu.sh; run by the guest init with bash'
  printf 'S=%q\n' "$scratch"
  printf 'export PATH=%q\n' "$PATH"
  printf 'export HOME=%q\n' "${HOME:-/root}"
  printf 'export TMPDIR=%q\n' "$scratch/tmp"
  printf 'export RUN_QEMU_SCRATCH=%q\n' "$scratch"
  printf 'export TERM=%q\n' "${TERM:-linux}"
  for e in "${envs[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
  printf 'CWD=%q\n' "$PWD"
  printf 'INTERACTIVE=%d\n' "$interactive"
  printf 'CMD=('; printf ' %q' "${cmd[@]}"; printf ' )\n'
  cat <<'EOF'
if ! cd "$CWD"; then
  echo "run-qemu guest: cannot cd to $CWD" >>"$S/stderr"
  rc=125
elif ((INTERACTIVE)); then
  "${CMD[@]}"
  rc=$?
else
  "${CMD[@]}" </dev/null >>"$S/stdout" 2>>"$S/stderr"
  rc=$?
fi
# Write-then-rename: the host never sees a partial exit code.
echo "$rc" >"$S/exit-code.tmp" && mv -f "$S/exit-code.tmp" "$S/exit-code"
EOF
} >"$scratch/guest-cmd"
mkdir "$scratch/tmp"
: >"$scratch/stdout"
: >"$scratch/stderr"
: >"$scratch/console.log"
for i in "${!shares[@]}"; do printf 'share%d %s\n' "$i" "${fs_dirs[i + 2]}"; done >"$scratch/shares"

for i in "${!fs_tags[@]}"; do
  if ((i == 0)); then start_virtiofsd "${fs_tags[i]}" / ro; else start_virtiofsd "${fs_tags[i]}" "${fs_dirs[i]}" rw; fi
done

stream() { tail -q -n +1 -s 0.2 -f --pid="$qemu_pid" "$1"; }

# Background: after the timeout, TERM then KILL QEMU (by PID).
# shellcheck disable=SC2317  # the trap is reached by a signal
watchdog() {
  local sp
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$timeout_s" & sp=$!
  wait "$sp" || exit 0
  : >"$scratch/timed-out"
  kill -TERM "$qemu_pid" 2>/dev/null
  sleep 5 & sp=$!
  wait "$sp" || exit 0
  kill -KILL "$qemu_pid" 2>/dev/null
}

start=$(date +%s%N)
ulimit -c 0
tty_in=0
if ((interactive)); then exec {tty_in}<&0; fi
if ((interactive)); then
  # Without job control bash gives background commands /dev/null as stdin unless told
  # otherwise; QEMU must read the terminal. It stays in our process group, so the terminal
  # lets it read.
  "${qargs[@]}" <&"$tty_in" &
else
  "${qargs[@]}" </dev/null >>"$scratch/qemu.log" 2>&1 &
fi
qemu_pid=$!
if ((timeout_s > 0)); then
  watchdog &
  watchdog_pid=$!
fi
if ((!interactive)); then
  stream "$scratch/stdout" &
  tails+=($!)
  stream "$scratch/stderr" >&2 &
  tails+=($!)
  if ((verbose)); then
    stream "$scratch/console.log" >&2 &
    tails+=($!)
  fi
fi

qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_done=$qemu_pid
qemu_pid=
if [[ -n "$watchdog_pid" ]]; then
  kill "$watchdog_pid" 2>/dev/null || true
  wait "$watchdog_pid" || true
  watchdog_pid=
fi
for t in "${tails[@]}"; do wait "$t" || true; done
tails=()
elapsed_ms=$((($(date +%s%N) - start) / 1000000))

show_console() {
  if [[ -s "$scratch/qemu.log" ]]; then
    echo "run-qemu: QEMU said:" >&2
    tail -n 20 "$scratch/qemu.log" | sed 's/^/  | /' >&2
  fi
  if ((!verbose && !interactive)); then
    if [[ -s "$scratch/console.log" ]]; then
      echo "run-qemu: last lines of the guest console:" >&2
      tail -n 40 "$scratch/console.log" | sed 's/^/  | /' >&2
    else
      echo "run-qemu: the guest console is empty (it boots with 'quiet')" >&2
    fi
  fi
  local f
  for f in "$scratch"/fs-*.log; do
    [[ -s "$f" ]] || continue
    echo "run-qemu: $(basename "$f"):" >&2
    tail -n 10 "$f" | sed 's/^/  | /' >&2
  done
}

if [[ -f "$scratch/timed-out" ]]; then
  echo "run-qemu: ERROR: timed out after ${timeout_s} s; killed QEMU (pid $qemu_done)" >&2
  show_console
  exit 124
fi
if [[ -f "$scratch/init-error" ]]; then
  echo "run-qemu: ERROR: guest init: $(<"$scratch/init-error")" >&2
  show_console
  exit 125
fi
if [[ ! -f "$scratch/exit-code" ]]; then
  if [[ -f "$scratch/booted" ]]; then
    echo "run-qemu: ERROR: the guest did not report an exit code (QEMU exit status $qemu_rc)" >&2
  else
    echo "run-qemu: ERROR: the guest did not reach its command (QEMU exit status $qemu_rc)" >&2
  fi
  show_console
  exit 125
fi
rc=$(<"$scratch/exit-code")
[[ "$rc" =~ ^[0-9]+$ ]] || die "bad exit code file content: $rc"
if ((qemu_rc != 0)); then
  echo "run-qemu: warning: QEMU exited with status $qemu_rc after the command finished" >&2
  show_console
fi
[[ -z "${RUN_QEMU_TIMING:-}" ]] || echo "run-qemu: guest run took ${elapsed_ms} ms" >&2
exit "$rc"
