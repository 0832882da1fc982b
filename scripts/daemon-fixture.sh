# Sourced by profile-daemon.sh and session-stress.sh: the pieces both use to put one daemon
# in front of the benchmark's load generator.

# A 1 GiB file of random data at $1, read once so it is page-cached.
fixture_file() {
  head -c 1073741824 /dev/urandom > "$1"
  cat "$1" > /dev/null
}

# Waits up to 10 s for the socket $1; otherwise says that $2 did not listen (and prints the
# file $3, a daemon log, if given) and exits 1.
fixture_wait_socket() {
  for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done
  echo "$2: the daemon did not listen" >&2
  [ -z "${3:-}" ] || cat "$3" >&2
  exit 1
}

# The load generator's job (JSON) for one queue of 256 over the whole 1 GiB file:
#   fixture_job SOCKET DAEMON_PID OP BS QD DURATION_MS
fixture_job() {
  printf '{"socket":"%s","daemonPid":%d,"op":"%s","bs":%d,"qd":%d,"queues":1,"queueSize":256,"offset":0,"span":1073741824,"warmupMs":300,"durationMs":%d,"spinUs":50}' \
    "$1" "$2" "$3" "$4" "$5" "$6"
}
