#!/usr/bin/env bash
# Boot the QEMU test guest (Debian 6.12 amd64 kernel + the initramfs of build-qemu-guest.sh)
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
#   --reconnect SECS     QEMU reconnects to a disk's socket SECS seconds after the back-end
#                        went away (a restarted daemon resubmits in-flight requests)
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
# shellcheck source=lib/common.sh
source "$script_dir/lib/common.sh"
# shellcheck source=lib/qemu.sh
source "$script_dir/lib/qemu.sh"
script_init run-qemu 125

sockets=()
queues=1
disk_kind=blk
reconnect=
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

while (($#)); do
  case "$1" in
    --socket) (($# >= 2)) || usage; sockets+=("$2"); shift 2 ;;
    --queues) (($# >= 2)) || usage; queues=$2; shift 2 ;;
    --disk-device) (($# >= 2)) || usage; disk_kind=$2; shift 2 ;;
    --reconnect) (($# >= 2)) || usage; reconnect=$2; shift 2 ;;
    --mem) (($# >= 2)) || usage; mem=$2; shift 2 ;;
    --smp) (($# >= 2)) || usage; smp=$2; shift 2 ;;
    --share) (($# >= 2)) || usage; shares+=("$2"); shift 2 ;;
    --env) (($# >= 2)) || usage; opt_env envs "$2"; shift 2 ;;
    --kernel-args) (($# >= 2)) || usage; opt_words kargs "$2"; shift 2 ;;
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
    *) log "unknown argument: $1"; usage ;;
  esac
done
cmd=("$@")
if ((${#cmd[@]} == 0)); then
  ((interactive)) || { log "no COMMAND given"; usage; }
  # A short orientation, then the user's interactive bash (not a login shell: /etc/profile
  # would reset the PATH passed from the host).
  # shellcheck disable=SC2016  # expanded in the guest
  cmd=(bash -c 'echo "test guest: host / read-only at /, writable scratch in $RUN_QEMU_SCRATCH; exit powers off"
    for s in /sys/block/vd*/serial; do [ -e "$s" ] && echo "  /dev/$(basename "$(dirname "$s")"): serial $(cat "$s")"; done
    exec bash -i')
fi
[[ -n "$timeout_s" ]] || { ((interactive)) && timeout_s=0 || timeout_s=300; }
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout wants a non-negative integer, got: $timeout_s"
qg_check_machine_opts "$queues" "$smp" "$mem"
[[ "$disk_kind" == blk || "$disk_kind" == test ]] || die "--disk-device wants blk or test, got: $disk_kind"
[[ -z "$reconnect" || "$reconnect" =~ ^[1-9][0-9]*$ ]] || die "--reconnect wants a positive number of seconds, got: $reconnect"
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
  run_make_scratch "$scratch_base"
  [[ "$scratch" != *[,[:space:]]* ]] || { rmdir "$scratch"; die "scratch path has a comma or blank: $scratch"; }
fi

fs_pids=()
# virtiofsd normally exits when QEMU disconnects; make sure. (Then the scratch directory
# goes: the root view in it is only a mount point in virtiofsd's private namespace, here an
# empty directory.)
# shellcheck disable=SC2317  # called by run_cleanup
stop_virtiofsd() {
  local p
  for p in "${fs_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${fs_pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
run_trap_cleanup stop_virtiofsd

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
  log "virtiofsd for $tag ($dir) did not start:"
  show_tail +1 "$log"
  exit 125
}

chardev_opt=
if [[ -n "$reconnect" ]]; then
  rv=7.2
  ((print_only)) || rv=$(qg_qemu_version "$qemu") || die "cannot read the version of $qemu"
  chardev_opt=$(qg_reconnect_opt "$rv" "$reconnect")
fi
qargs=("$qemu" -nodefaults -no-user-config -display none -no-reboot)
qg_machine_args qargs "$mem" "$smp"
# Disks first: PCI slots are assigned in command-line order and virtio_blk names the
# disks in probe order, so --socket order is vda, vdb, ...
for i in "${!sockets[@]}"; do
  s=${sockets[i]}
  ((print_only)) || s=$(realpath "$s")
  qg_disk_args qargs "$i" "$s" "$queues" "$disk_kind" "$chardev_opt"
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
  run_guest_env "TERM=${TERM:-linux}" "${envs[@]}"
  printf 'INTERACTIVE=%d\n' "$interactive"
  run_guest_command "${cmd[@]}"
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
EOF
  run_guest_report
} >"$scratch/guest-cmd"
run_prepare_scratch
for i in "${!shares[@]}"; do printf 'share%d %s\n' "$i" "${fs_dirs[i + 2]}"; done >"$scratch/shares"

for i in "${!fs_tags[@]}"; do
  if ((i == 0)); then start_virtiofsd "${fs_tags[i]}" / ro; else start_virtiofsd "${fs_tags[i]}" "${fs_dirs[i]}" rw; fi
done

run_begin
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
# QEMU stays in this script's process group (see run_signal_guest).
run_watch $! 0
run_wait

# What went wrong, from QEMU's own messages, the guest console and virtiofsd's logs.
show_diagnostics() {
  if [[ -s "$scratch/qemu.log" ]]; then
    log "QEMU said:"
    show_tail 20 "$scratch/qemu.log"
  fi
  run_show_console
  local f
  for f in "$scratch"/fs-*.log; do
    [[ -s "$f" ]] || continue
    log "$(basename "$f"):"
    show_tail 10 "$f"
  done
}

run_exit_if_timed_out show_diagnostics "QEMU (pid $guest_done)"
if [[ -f "$scratch/init-error" ]]; then
  log "ERROR: guest init: $(<"$scratch/init-error")"
  show_diagnostics
  exit 125
fi
run_exit_with_code show_diagnostics QEMU "its command"
