# shellcheck shell=bash
# Sourced (not executed) by every script in qemu-scripts/: what they have in common, defined
# once so the two guest runners (run-uml.sh, run-qemu.sh) and the two builders
# (build-uml.sh, build-qemu-guest.sh) cannot drift apart. Loading it defines functions only;
# script_init names the calling script.
#
#   messages     script_init, log, die, help_text, usage, show_tail
#   options      opt_env, opt_words
#   guest runs   run_*: the scratch directory the guest reports through, the watchdog, the
#                output streams, the exit-code rules, the generated guest script's pieces
#   build cache  cache_*, need_debs: where builds live, one builder per key, the stamp

# --- messages ---

# script_init NAME DIE_CODE: every message starts with "NAME: ", die exits with DIE_CODE (the
# guest runners use 125, their code for "no exit code from the command"), and the help text
# is the caller's leading comment block.
script_init() {
  script_name=$1
  die_code=$2
  script_file=${BASH_SOURCE[1]:-$0}
}
log() { echo "$script_name: $*" >&2; }
die() { log "ERROR: $*"; exit "$die_code"; }
help_text() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$script_file"; }
usage() { help_text >&2; exit 2; }
# show_tail N FILE: the last N lines of FILE (+1: all of it) on stderr, set off as a quote.
show_tail() { tail -n "$1" "$2" | sed 's/^/  | /' >&2; }

# --- options ---

# opt_env ARRAY NAME=VALUE (--env): append to the array named ARRAY. Refused unless it is a
# variable assignment: it becomes an `export` line of the generated guest script.
opt_env() {
  # shellcheck disable=SC2178  # a nameref to the caller's array
  local -n opt_into=$1
  [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, got: $2"
  opt_into+=("$2")
}

# opt_words ARRAY "WORDS" (--kernel-args): append the blank-separated words to ARRAY.
opt_words() {
  # shellcheck disable=SC2178  # a nameref to the caller's array
  local -n opt_into=$1
  local -a opt_words
  read -r -a opt_words <<<"$2"
  opt_into+=("${opt_words[@]}")
}

# --- guest runs (run-uml.sh, run-qemu.sh) ---
# The guest reports through the private scratch directory $scratch (shared with it):
#   stdout, stderr  the command's output: the guest appends, the host streams it live
#   console.log     the guest console (kernel log)
#   tmp/            the command's TMPDIR
#   booted          the guest got as far as starting the command
#   exit-code       the command's exit code, written last (run_guest_report)
#   timed-out       written by the watchdog before it kills the guest
# Exit codes of a run: the command's; 124 timed out; 125 no exit code reported (boot failure,
# panic, crash) or the runner itself failed.
# Reads the caller's options keep, verbose, interactive (0/1; interactive: the console is the
# terminal, nothing to stream) and timeout_s (seconds; 0: none), each 0 when unset. Sets
# scratch, guest_pid, guest_rc, guest_done and elapsed_ms.

# run_make_scratch BASE: create the scratch directory under BASE.
run_make_scratch() {
  scratch=$(mktemp -d "$1/$script_name.XXXXXX")
  run_scratch_made=$scratch
}

# The files the guest appends to and the host streams, and the command's TMPDIR.
run_prepare_scratch() {
  mkdir "$scratch/tmp"
  : >"$scratch/stdout"
  : >"$scratch/stderr"
  : >"$scratch/console.log"
}

# run_trap_cleanup [FUNC]: from here on every exit, also by INT (130) or TERM (143), stops
# the guest, the watchdog and the streams, calls FUNC (the script's own teardown) and removes
# the scratch directory (--keep: says where it is instead).
run_trap_cleanup() {
  run_cleanup_hook=${1:-}
  guest_pid=
  watchdog_pid=
  tails=()
  trap run_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# shellcheck disable=SC2317  # reached through the EXIT trap
run_cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  if [[ -n "$guest_pid" ]]; then
    run_signal_guest TERM
    # Up to 2 s for a clean exit (the guest is our unreaped child: exited = zombie).
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [[ "$(ps -o stat= -p "$guest_pid" 2>/dev/null)" == [A-Y]* ]] || break
      sleep 0.2
    done
    run_signal_guest KILL
  fi
  [[ -z "$watchdog_pid" ]] || kill "$watchdog_pid" 2>/dev/null || true
  for p in "${tails[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -z "$run_cleanup_hook" ]] || "$run_cleanup_hook"
  if [[ -n "${run_scratch_made:-}" ]]; then
    if ((${keep:-0})); then
      log "scratch kept in $run_scratch_made"
    else
      rm -rf "$run_scratch_made"
    fi
  fi
  exit "$rc"
}

# run_signal_guest SIG: send SIG to the guest's process group when it has its own (UML calls
# setsid() at start, and its helper processes share that group; before that, its pid), else
# to its pid only (QEMU stays in our process group: signalling that would hit this script).
run_signal_guest() {
  if ((guest_group)); then
    kill "-$1" -- "-$guest_pid" 2>/dev/null || kill "-$1" "$guest_pid" 2>/dev/null || true
  else
    kill "-$1" "$guest_pid" 2>/dev/null || true
  fi
}

# Runs in the background: after the timeout, mark the run timed out, TERM the guest, KILL it
# 5 s later. A TERM (the guest exited in time) ends it quietly.
# shellcheck disable=SC2317  # the trap is reached by a signal
run_watchdog() {
  local sp
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$run_timeout" & sp=$!
  wait "$sp" || exit 0
  : >"$scratch/timed-out"
  run_signal_guest TERM
  sleep 5 & sp=$!
  wait "$sp" || exit 0
  run_signal_guest KILL
}

# Copy FILE to stdout as it grows; tail stops once the guest is gone (reaped).
run_stream() { tail -q -n +1 -s 0.2 -f --pid="$guest_pid" "$1"; }

# Just before the guest starts: the clock for elapsed_ms, and no core files (a crashing UML or
# QEMU would dump one as large as the guest's RAM).
run_begin() {
  run_start_ns=$(date +%s%N)
  ulimit -c 0
}

# run_watch PID GROUP: the guest PID has just been started in the background; GROUP 1 when
# PID leads its own process group (see run_signal_guest). Starts the watchdog (unless
# timeout_s is 0) and, unless interactive, the streams of the command's stdout and stderr and
# (verbose) of the guest console.
run_watch() {
  guest_pid=$1
  guest_group=$2
  run_timeout=${timeout_s:-0}
  if ((run_timeout > 0)); then
    run_watchdog &
    watchdog_pid=$!
  fi
  if ((!${interactive:-0})); then
    run_stream "$scratch/stdout" &
    tails+=($!)
    run_stream "$scratch/stderr" >&2 &
    tails+=($!)
    if ((${verbose:-0})); then
      run_stream "$scratch/console.log" >&2 &
      tails+=($!)
    fi
  fi
}

# Wait for the guest to exit; sets guest_rc (its exit status), guest_done (its pid, for
# messages) and elapsed_ms. Stops the watchdog and lets the streams flush.
run_wait() {
  local t
  guest_rc=0
  wait "$guest_pid" || guest_rc=$?
  # shellcheck disable=SC2034  # read by the runner scripts' messages
  guest_done=$guest_pid
  if [[ -n "$watchdog_pid" ]]; then
    kill "$watchdog_pid" 2>/dev/null || true
    wait "$watchdog_pid" || true
    watchdog_pid=
  fi
  # Any helper process left in the guest's group goes now (the group only: the pid is free
  # again).
  if ((guest_group)); then kill -KILL -- "-$guest_pid" 2>/dev/null || true; fi
  guest_pid=
  # The guest is reaped: the tails see its pid gone, flush what is left and stop.
  for t in "${tails[@]}"; do wait "$t" || true; done
  tails=()
  elapsed_ms=$((($(date +%s%N) - run_start_ns) / 1000000))
}

# The last lines of the guest console, unless they were on the terminal already (-v,
# interactive).
run_show_console() {
  if ((!${verbose:-0} && !${interactive:-0})); then
    if [[ -s "$scratch/console.log" ]]; then
      log "last lines of the guest console:"
      show_tail 40 "$scratch/console.log"
    else
      log "the guest console is empty (it boots with 'quiet')"
    fi
  fi
}

# run_exit_if_timed_out DIAG KILLED: exit 124 when the watchdog fired. KILLED says what it
# killed; DIAG is the function that shows why the guest hung (its console, logs).
run_exit_if_timed_out() {
  [[ -f "$scratch/timed-out" ]] || return 0
  log "ERROR: timed out after ${run_timeout} s; killed $2"
  "$1"
  exit 124
}

# run_exit_with_code DIAG HOST START: exit with the command's exit code, or 125 when the guest
# reported none. HOST names the guest's host process in messages (UML, QEMU); START is where
# a guest that did not boot far enough stopped short of ("its init script"). With
# RUN_UML_TIMING / RUN_QEMU_TIMING set, says how long the guest ran.
run_exit_with_code() {
  local diag=$1 host=$2 rc timing
  if [[ ! -f "$scratch/exit-code" ]]; then
    if [[ -f "$scratch/booted" ]]; then
      log "ERROR: the guest did not report an exit code ($host exit status $guest_rc)"
    else
      log "ERROR: the guest did not reach $3 ($host exit status $guest_rc)"
    fi
    "$diag"
    exit 125
  fi
  rc=$(<"$scratch/exit-code")
  [[ "$rc" =~ ^[0-9]+$ ]] || die "bad exit code file content: $rc"
  if ((guest_rc != 0)); then
    log "warning: $host exited with status $guest_rc after the command finished"
    "$diag"
  fi
  timing=$(run_env_name TIMING)
  [[ -z "${!timing:-}" ]] || log "guest run took ${elapsed_ms} ms"
  exit "$rc"
}

# run_env_name SUFFIX: the runner's environment variable SUFFIX: RUN_UML_SUFFIX for
# run-uml.sh, RUN_QEMU_SUFFIX for run-qemu.sh.
run_env_name() {
  local n=${script_name^^}
  echo "${n//-/_}_$1"
}

# The top of a generated guest script: S (the scratch directory) and the command's
# environment: PATH and HOME of the caller, TMPDIR and RUN_UML_SCRATCH / RUN_QEMU_SCRATCH in
# the scratch directory, then each NAME=VALUE given (a later one wins).
run_guest_env() {
  local e
  printf 'S=%q\n' "$scratch"
  printf 'export PATH=%q\n' "$PATH"
  printf 'export HOME=%q\n' "${HOME:-/root}"
  printf 'export TMPDIR=%q\n' "$scratch/tmp"
  printf 'export %s=%q\n' "$(run_env_name SCRATCH)" "$scratch"
  for e in "$@"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
}

# run_guest_command CMD...: the generated script's CWD (the caller's) and CMD.
run_guest_command() {
  printf 'CWD=%q\n' "$PWD"
  printf 'CMD=('; printf ' %q' "$@"; printf ' )\n'
}

# The generated script's report of the command's exit code ($rc) to the host.
run_guest_report() {
  cat <<'EOF'
# Write-then-rename: the host never sees a partial exit code.
echo "$rc" >"$S/exit-code.tmp" && mv -f "$S/exit-code.tmp" "$S/exit-code"
EOF
}

# --- build cache (build-uml.sh, build-qemu-guest.sh) ---
# A build lives in CACHE/NAME-<key>/, <key> hashing the build's inputs (each script says
# which), so a changed input builds anew next to the old build instead of over it.
# KEY_DIR/.complete is written last: only then is the build done. KEY_DIR.lock is the flock
# file that keeps it to one builder per key.

# The cache directory: outside the repository, shared by every checkout.
cache_dir() { echo "${VHOST_USER_ZBD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vhost-user-zbd}"; }

# need_debs PKG...: die naming those of the Debian packages PKG... that are not installed.
need_debs() {
  local p root missing=()
  for p in "$@"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]]; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} == 0)) && return
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  die "missing Debian packages: ${missing[*]} — run: sudo $root/scripts/install-deps.sh --no-npm"
}

# cache_claim KEY_DIR FORCE QUIET BUILT PRINT: return when the caller is to build KEY_DIR,
# holding its lock (fd 8) until the caller exits. When the build is complete already (the
# stamp, and the function BUILT finds the files), call PRINT and exit 0; FORCE 1 builds
# anyway. QUIET 1: nothing on stderr when it is up to date.
cache_claim() {
  local key_dir=$1 force=$2 quiet=$3 built=$4 print=$5
  # Fast path without locking: the stamp is written only after the files are in place.
  if ((!force)) && [[ -f "$key_dir/.complete" ]] && "$built"; then
    ((quiet)) || log "up to date: $key_dir"
    "$print"
    exit 0
  fi
  mkdir -p "$(dirname "$key_dir")"
  # One builder per key; a second caller waits and then finds the stamp.
  exec 8>"$key_dir.lock"
  if ! flock -n 8; then
    log "another build of $key_dir is running; waiting for it"
    flock 8
  fi
  if ((force)); then
    rm -f "$key_dir/.complete"
  elif [[ -f "$key_dir/.complete" ]] && "$built"; then
    log "built by a concurrent run: $key_dir"
    "$print"
    exit 0
  fi
}

# cache_complete KEY_DIR: write the stamp (its text, for people, from stdin) under a temp
# name and rename it, so that a stamp is never partial.
cache_complete() {
  cat >"$1/.complete.tmp"
  mv -f "$1/.complete.tmp" "$1/.complete"
}

# cache_prune SPARE WHAT DIR...: remove every DIR but SPARE whose lock no build holds (older
# keys, each a full build's size). WHAT, unless empty, names them in a log line.
cache_prune() {
  local spare=$1 what=$2 old
  shift 2
  for old in "$@"; do
    [[ -d "$old" && "$old" != "$spare" ]] || continue
    (
      exec 7>"$old.lock"
      if flock -n 7; then
        [[ -z "$what" ]] || log "removing $what $old"
        rm -rf "$old"
        rm -f "$old.lock"
      fi
    )
  done
}
