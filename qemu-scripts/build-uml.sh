#!/usr/bin/env bash
# Build the User-Mode Linux 6.12 guest kernel (one host executable) from Debian's
# linux-source-6.12 tarball, out of tree, into a cache directory outside the repo.
#
# Usage: qemu-scripts/build-uml.sh [-v|--verbose] [-q|--quiet] [--force]
#   -v, --verbose  stream the make output to stderr (default: only into build.log)
#   --force        rebuild even when a completed build for this cache key exists
#   -q, --quiet    say nothing on stderr when the kernel is already built
#
# The last line on stdout is the path of the `linux` binary; progress goes to stderr.
#
# Cache layout (CACHE = ${VHOST_USER_ZBD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vhost-user-zbd}):
#   CACHE/src-6.12-<srckey>/             unpacked kernel source, reused by every build
#   CACHE/uml-6.12-<key>/linux           the kernel; <key> hashes uml.config + source version
#   CACHE/uml-6.12-<key>/.complete       stamp written last: only then is the build done
#   CACHE/*.lock                         flock files serialising concurrent builds
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$script_dir/lib/common.sh"
script_init build-uml 1
fragment="$script_dir/uml.config"
tarball=${UML_LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
cache_root=$(cache_dir)
# Bump when the build recipe below changes in a way that changes the result.
recipe_version=1

verbose=0
force=0
quiet=0
for arg in "$@"; do
  case "$arg" in
    -v|--verbose) verbose=1 ;;
    --force) force=1 ;;
    -q|--quiet) quiet=1 ;;
    -h|--help) help_text; exit 0 ;;
    *) log "unknown argument: $arg"; exit 2 ;;
  esac
done

# --- dependencies (only this script's; scripts/install-deps.sh installs them all) ---
deps=(flex bison bc libelf-dev libssl-dev xz-utils gcc make)
# UML_LINUX_SOURCE_TARBALL points at another tarball: Debian's source package is then optional.
[[ -n "${UML_LINUX_SOURCE_TARBALL:-}" ]] || deps+=(linux-source-6.12)
need_debs "${deps[@]}"
[[ -r "$tarball" ]] || die "kernel source tarball not found: $tarball (package linux-source-6.12)"

# --- cache keys ---
src_version=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || true)
# Size+mtime catch a replaced tarball even when the package version is unknown.
src_id="$src_version $(stat -c '%s %Y' "$tarball")"
src_key=$(printf '%s\n' "$src_id" | sha256sum | cut -c1-12)
build_key=$(
  { printf 'recipe %s\nsource %s\n' "$recipe_version" "$src_id"; cat "$fragment"; } |
    sha256sum | cut -c1-16
)
src_dir="$cache_root/src-6.12-$src_key"
key_dir="$cache_root/uml-6.12-$build_key"
kernel="$key_dir/linux"

have_kernel() { [[ -x "$kernel" ]]; }
print_kernel() { echo "$kernel"; }
cache_claim "$key_dir" "$force" "$quiet" have_kernel print_kernel

# --- unpack the source once (exclusive lock), then hold it shared while building ---
exec 9>"$src_dir.lock"
flock -x 9
if [[ ! -f "$src_dir/.unpacked" ]]; then
  # Leftovers of an unpack that was killed (we hold this version's lock, nobody else uses them).
  rm -rf "$src_dir" "$cache_root/.unpack-$src_key".*
  log "unpacking $tarball into $src_dir (once; ~1.7 GB)"
  t0=$SECONDS
  # Unpack into a temp dir and rename, so an interrupted unpack is never mistaken for a tree.
  tmp_unpack=$(mktemp -d "$cache_root/.unpack-$src_key.XXXXXX")
  trap 'rm -rf "$tmp_unpack"' EXIT
  tar -xJf "$tarball" -C "$tmp_unpack"
  top=("$tmp_unpack"/*)
  if ((${#top[@]} != 1)) || [[ ! -f "${top[0]}/Makefile" ]]; then
    die "unexpected tarball layout in $tarball"
  fi
  mv "${top[0]}" "$src_dir"
  rm -rf "$tmp_unpack"
  trap - EXIT
  touch "$src_dir/.unpacked"
  log "unpacked in $((SECONDS - t0)) s"
fi
flock -s 9

# Remove source trees of older linux-source versions nobody is using (1.7 GB each).
cache_prune "$src_dir" "stale source tree" "$cache_root"/src-6.12-*

# --- configure ---
mkdir -p "$key_dir"
build_dir="$key_dir/build"
build_log="$key_dir/build.log"
# An interrupted build's object dir is reused: Kbuild records each object's command in a
# .cmd file written after the object, so half-written objects are rebuilt.
mkdir -p "$build_dir"
: >"$build_log"
kver=$(awk -F' = ' '$1=="VERSION"{v=$2} $1=="PATCHLEVEL"{p=$2} $1=="SUBLEVEL"{s=$2} END{print v"."p"."s}' "$src_dir/Makefile")
log "kernel $kver (package ${src_version:-unknown}), key $build_key"
log "build dir $build_dir, log $build_log"

run_make() {
  if ((verbose)); then
    make -C "$src_dir" ARCH=um O="$build_dir" "$@" 2>&1 | tee -a "$build_log" >&2
  else
    if ! make -C "$src_dir" ARCH=um O="$build_dir" "$@" >>"$build_log" 2>&1; then
      tail -n 60 "$build_log" >&2
      return 1
    fi
  fi
}

t0=$SECONDS
run_make tinyconfig || die "make tinyconfig failed (see $build_log)"
# -m: merge only; olddefconfig then resolves dependencies.
(cd "$build_dir" && "$src_dir/scripts/kconfig/merge_config.sh" -m -O "$build_dir" \
  "$build_dir/.config" "$fragment") >>"$build_log" 2>&1 || die "merge_config.sh failed (see $build_log)"
run_make olddefconfig || die "make olddefconfig failed (see $build_log)"

# Every symbol of the fragment must have survived olddefconfig (unmet dependencies drop them
# silently).
lost=()
while IFS= read -r line; do
  if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
    sym=${BASH_REMATCH[1]}
    want="${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
    if ! grep -qxF "$want" "$build_dir/.config"; then
      lost+=("$want (got: $(grep -E "^(# )?${sym}[= ]" "$build_dir/.config" || echo absent))")
    fi
  elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
    sym=${BASH_REMATCH[1]}
    if grep -qE "^$sym=" "$build_dir/.config"; then
      lost+=("$sym unset (got: $(grep -E "^$sym=" "$build_dir/.config"))")
    fi
  fi
done <"$fragment"
if ((${#lost[@]})); then
  log "ERROR: these symbols of $fragment did not survive olddefconfig:"
  printf '  %s\n' "${lost[@]}" >&2
  exit 1
fi
log "config ok: all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$fragment") fragment symbols present"

# --- build ---
log "make -j$(nproc) linux (a few minutes)"
run_make -j"$(nproc)" linux || die "kernel build failed (see $build_log)"
[[ -x "$build_dir/linux" ]] || die "build finished but $build_dir/linux is missing"

# Publish atomically: copy under a temp name, rename, then write the stamp.
cp "$build_dir/linux" "$kernel.tmp"
mv -f "$kernel.tmp" "$kernel"
cp "$build_dir/.config" "$key_dir/config"
cp "$build_dir/System.map" "$key_dir/System.map" 2>/dev/null || true
printf 'source %s\nkey %s\nbuilt %s\nseconds %s\n' "$src_id" "$build_key" "$(date -Is)" \
  "$((SECONDS - t0))" | cache_complete "$key_dir"
# The objects are of no further use: a changed fragment gets a new key and a clean build.
rm -rf "$build_dir"
log "built in $((SECONDS - t0)) s: $kernel"
print_kernel
