#!/usr/bin/env bash
# Get a QEMU that can show the zoned disk to a guest (>= 10.2: vhost-user-test-device-pci) on
# a Debian 12 machine, from Debian's own archive only: qemu-system-x86 of trixie-backports,
# downloaded with a private apt state (nothing is installed, the host's apt state is not
# touched) and unpacked into a private prefix with every library it loads, trixie's own
# loader and the firmware of the same packages. Prints the path of a wrapper executable that
# runs it, as the last line on stdout.
#
# Usage: qemu-scripts/get-qemu.sh [-q|--quiet] [--update] [--dry-run]
#   -q, --quiet  nothing on stderr when it is cached already
#   --update     ask the archive for the current version even when one is cached (backports
#                keep only the newest version: this fetches the new one when it moved on)
#   --dry-run    print the wrapper path a cached QEMU has, or would have, and exit (no network)
#
# Once cached it works offline: without --update the newest complete prefix is used as is.
# Concurrent runs wait for each other (flock); a half-done download is never used.
#
# Cache layout (CACHE = ${VHOST_USER_ZBD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vhost-user-zbd}):
#   CACHE/qemu-apt/                      private apt state: sources, pins, lists, downloaded debs
#   CACHE/qemu-<version>-r<recipe>/root/ the unpacked packages (usr/bin, usr/lib, usr/share)
#   CACHE/qemu-<version>-r<recipe>/bin/qemu-system-x86_64   the wrapper (what is printed)
#   CACHE/qemu-<version>-r<recipe>/.complete                 stamp: version, packages, date
#
# The wrapper runs the emulator through the prefix's loader with the prefix's libraries only
# (checked with `ld.so --list` at build time for the binary and its modules) and passes -L for
# the prefix's firmware. QEMU looks for its modules and data relative to its executable's
# directory when that holds a `qemu-bundle` directory: run through the loader, that is the
# loader's directory, where a qemu-bundle link to the prefix is made. Without it QEMU falls
# back to the host's 7.2 module directory and `-device help` aborts on a module of the wrong
# build (QEMU_MODULE_DIR alone does not help: the host directory is still searched after it).
#
# Environment: GET_QEMU_SUITE (default trixie-backports), GET_QEMU_MIRROR (default
# http://deb.debian.org/debian).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$script_dir/lib/common.sh"
# shellcheck source=lib/qemu.sh
source "$script_dir/lib/qemu.sh"
script_init get-qemu 1

quiet=0
update=0
dry_run=0
for arg in "$@"; do
  case "$arg" in
    -q|--quiet) quiet=1 ;;
    --update) update=1 ;;
    --dry-run) dry_run=1 ;;
    -h|--help) help_text; exit 0 ;;
    *) log "unknown argument: $arg"; usage ;;
  esac
done

# Bump when the unpacking or the wrapper changes: a new key dir is built beside the old one.
recipe=1
suite=${GET_QEMU_SUITE:-trixie-backports}
base_suite=${suite%-backports}
mirror=${GET_QEMU_MIRROR:-http://deb.debian.org/debian}
package=qemu-system-x86
cache_root=$(cache_dir)
apt_dir="$cache_root/qemu-apt"
multiarch=x86_64-linux-gnu

# Key dirs of complete prefixes, newest version first.
complete_dirs() {
  local d
  for d in "$cache_root"/qemu-*-r"$recipe"; do
    if [[ -f "$d/.complete" && -x "$d/bin/qemu-system-x86_64" ]]; then
      printf '%s\t%s\n' "$(sed -n 's/^version //p' "$d/.complete")" "$d"
    fi
  done | sort -t $'\t' -k1,1 -V -r | cut -f2
}
# The version without its epoch, file-name safe: 1:11.1.3+ds-2~bpo13+1 -> 11.1.3-ds-2-bpo13-1.
key_dir_for() { echo "$cache_root/qemu-$(tr -c 'A-Za-z0-9.\n' '-' <<<"${1#*:}")-r$recipe"; }

# --- offline path: a complete prefix exists and no --update ---
if ((!update)); then
  cached=$(complete_dirs | head -n 1)
  if [[ -n "$cached" ]]; then
    ((quiet)) || log "cached: $(sed -n 's/^version //p' "$cached/.complete") in $cached"
    echo "$cached/bin/qemu-system-x86_64"
    exit 0
  fi
  if ((dry_run)); then
    echo "$cache_root/qemu-<version>-r$recipe/bin/qemu-system-x86_64"
    exit 0
  fi
fi
((!dry_run)) || die "--dry-run with --update: the version is only known from the archive"

need_debs apt dpkg
mkdir -p "$apt_dir"
# One run at a time through the private apt state and the unpacking.
exec 9>"$apt_dir.lock"
if ! flock -n 9; then
  log "another get-qemu.sh is running; waiting for it"
  flock 9
  if ((!update)); then
    cached=$(complete_dirs | head -n 1)
    if [[ -n "$cached" ]]; then
      log "fetched by a concurrent run: $cached"
      echo "$cached/bin/qemu-system-x86_64"
      exit 0
    fi
  fi
fi

# --- the private apt state ---
mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial,debs}
: >"$apt_dir/status"
printf 'deb %s %s main\ndeb %s %s main\n' "$mirror" "$base_suite" "$mirror" "$suite" >"$apt_dir/sources.list"
# Backports are pinned below the release by default (100): pin the suite high so the newest
# QEMU and the libraries it was built against come from it.
printf 'Package: *\nPin: release n=%s\nPin-Priority: 990\n' "$suite" >"$apt_dir/preferences"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::Etc::Preferences=$apt_dir/preferences" -o Dir::Etc::PreferencesParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
  -o "Dir::State::extended_states=$apt_dir/extended_states" -o "Dir::Cache=$apt_dir/cache"
  -o APT::Architecture=amd64 -o APT::Architectures=amd64
  # As root apt drops to _apt for downloads, which cannot write a private directory.
  -o APT::Sandbox::User=root -o Debug::NoLocking=1)

log "apt-get update ($base_suite, $suite) in the private apt state $apt_dir"
apt-get "${apt_opts[@]}" -q update >"$apt_dir/update.log" 2>&1 || {
  show_tail 15 "$apt_dir/update.log"
  cached=$(complete_dirs | head -n 1)
  if [[ -n "$cached" ]]; then
    log "warning: the archive is not reachable; keeping the cached $cached"
    echo "$cached/bin/qemu-system-x86_64"
    exit 0
  fi
  die "apt-get update failed (is $mirror reachable?)"
}
version=$(apt-cache "${apt_opts[@]}" policy "$package" | sed -n 's/^ *Candidate: //p')
[[ -n "$version" && "$version" != "(none)" ]] || die "$package is not in $base_suite/$suite"
upstream=${version#*:}
upstream=${upstream%%[+~-]*}
qg_valid_version "$upstream" || die "cannot read the upstream version of $package $version"
qg_version_ge "$upstream" "$QG_ZONED_MIN_VERSION" ||
  die "$package in $suite is $version, older than $QG_ZONED_MIN_VERSION (vhost-user-test-device-pci): set GET_QEMU_SUITE"
log "$package candidate: $version"

key_dir=$(key_dir_for "$version")
wrapper="$key_dir/bin/qemu-system-x86_64"
if [[ -f "$key_dir/.complete" && -x "$wrapper" ]]; then
  log "up to date: $version in $key_dir"
  echo "$wrapper"
  exit 0
fi

# --- the package closure: what qemu-system-x86 depends on, recursively ---
# Recommends and suggests stay out (firmware for other machines, virtiofsd, ...); virtual
# names (<...>) are provided by a real package the closure also lists.
mapfile -t closure < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances "$package=$version" |
  sed -n 's/^\([a-z0-9][a-z0-9.+-]*\)$/\1/p' | sort -u)
((${#closure[@]} > 5)) || die "the dependency closure of $package $version looks wrong: ${closure[*]}"
# The packages whose files QEMU loads at run time: the emulator, its data and firmware, and
# shared libraries. Tools and scripts in the closure (dpkg, perl, debconf, ...) serve the
# maintainer scripts of an install, which does not happen here.
take=()
for p in "${closure[@]}"; do
  case "$p" in
    "$package"|qemu-system-common|qemu-system-data|qemu-system-modules-*|seabios|ipxe-qemu|lib*|zlib1g) take+=("$p") ;;
  esac
done
log "downloading ${#take[@]} of the ${#closure[@]} packages in the closure of $package $version"
work=$(mktemp -d "$cache_root/.get-qemu.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The file names apt gives the candidates ('URI' FILE SIZE HASH), asked once: one apt call per
# package costs minutes on a busy machine.
apt-get "${apt_opts[@]}" -q --print-uris download "${take[@]}" >"$work/uris.txt" 2>"$work/download.log" || {
  show_tail 15 "$work/download.log"
  die "apt-get --print-uris download failed"
}
mapfile -t files < <(awk '/^'"'"'/ { print $2 }' "$work/uris.txt")
((${#files[@]} == ${#take[@]})) || die "apt names ${#files[@]} files for ${#take[@]} packages (see $work/uris.txt)"
(cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -q download "${take[@]}" >"$work/download.log" 2>&1) || {
  show_tail 15 "$work/download.log"
  die "apt-get download failed"
}

# --- unpack into the prefix ---
root="$work/root"
mkdir -p "$root"
debs=()
for f in "${files[@]}"; do
  f="$apt_dir/debs/$f"
  [[ -f "$f" ]] || die "downloaded package missing: $f"
  debs+=("$f")
  dpkg-deb -x "$f" "$root"
done
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/lintian"

# Absolute symlinks (Debian's /usr/share/qemu/bios-256k.bin -> /usr/share/seabios/...) would
# resolve on the host: make them point into the prefix.
while IFS= read -r -d '' l; do
  t=$(readlink "$l")
  [[ "$t" == /* ]] || continue
  ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$root$t")" "$l"
done < <(find "$root" -type l -print0)

loader=
for c in usr/lib64/ld-linux-x86-64.so.2 lib64/ld-linux-x86-64.so.2 "usr/lib/$multiarch/ld-linux-x86-64.so.2"; do
  if [[ -e "$root/$c" ]]; then loader=$c; break; fi
done
[[ -n "$loader" ]] || die "no ld-linux-x86-64.so.2 in the unpacked libc6"
[[ -x "$root/usr/bin/qemu-system-x86_64" ]] || die "no usr/bin/qemu-system-x86_64 in $package"
[[ -f "$root/usr/share/seabios/bios-256k.bin" ]] || die "no seabios bios-256k.bin in the prefix"

# --- move into place, write the wrapper, check it ---
mkdir -p "$key_dir"
rm -rf "$key_dir/root" "$key_dir/bin"
mv "$root" "$key_dir/root"
root="$key_dir/root"
mkdir -p "$key_dir/bin"
libpath="$root/usr/lib/$multiarch:$root/lib/$multiarch"
moddir="$root/usr/lib/$multiarch/qemu"
mkdir -p "$moddir"
# The loader is the executable QEMU sees (/proc/self/exe): its directory gets the qemu-bundle
# link (see the top of this file).
exe_dir=$(dirname "$(realpath "$root/$loader")")
ln -sfn "$(realpath --relative-to="$exe_dir" "$root")" "$exe_dir/qemu-bundle"
{
  echo '#!/bin/sh'
  echo "# Generated by qemu-scripts/get-qemu.sh: Debian $package $version ($suite), run from a"
  echo '# private prefix with its own loader, libraries, firmware (-L) and modules (qemu-bundle).'
  printf 'P=%q\n' "$root"
  echo "exec \"\$P/$loader\" --library-path \"\$P/usr/lib/$multiarch:\$P/lib/$multiarch\" --argv0 qemu-system-x86_64 \\"
  echo '  "$P/usr/bin/qemu-system-x86_64" -L "$P/usr/share/qemu" -L "$P/usr/share/seabios" "$@"'
} >"$work/wrapper"
chmod 755 "$work/wrapper"
mv -f "$work/wrapper" "$wrapper"

# Every library must resolve inside the prefix (a host library of another release would load
# and fail in odd ways later).
# Modules are dlopen()ed with the same library path: each is checked as well.
: >"$work/ldd.txt"
for obj in "$root/usr/bin/qemu-system-x86_64" "$moddir"/*.so; do
  [[ -f "$obj" ]] || continue
  "$root/$loader" --library-path "$libpath" --list "$obj" >"$work/ldd-one.txt" 2>&1 ||
    { show_tail +1 "$work/ldd-one.txt"; die "the prefix's loader cannot resolve $obj"; }
  outside=$(awk -v p="$root/" '/=>/ { if (index($3, p) != 1) print } !/=>/ && $1 ~ /^\// { if (index($1, p) != 1) print }' "$work/ldd-one.txt")
  if [[ -n "$outside" ]] || grep -q 'not found' "$work/ldd-one.txt"; then
    show_tail +1 "$work/ldd-one.txt"
    die "$obj: libraries resolve outside the prefix or not at all: $outside"
  fi
  cat "$work/ldd-one.txt" >>"$work/ldd.txt"
done
nlibs=$(awk '/=>/ { print $3 }' "$work/ldd.txt" | sort -u | wc -l)
nmods=$(find "$moddir" -name '*.so' | wc -l)
banner=$("$wrapper" --version | head -n 1) || die "the wrapper does not run: $wrapper --version"
[[ "$banner" =~ version\ $upstream ]] || die "the wrapper reports '$banner', expected $upstream"
# -device help loads every module QEMU knows: it must find only the prefix's.
"$wrapper" -device help >"$work/device-help.txt" 2>&1 || { show_tail 5 "$work/device-help.txt"; die "$wrapper -device help fails"; }
grep -q '"vhost-user-test-device-pci"' "$work/device-help.txt" || die "$wrapper has no vhost-user-test-device-pci"

{
  printf 'version %s\nsuite %s\nbanner %s\nlibraries %s, modules %s (all resolved in the prefix)\nfetched %s\n' \
    "$version" "$suite" "$banner" "$nlibs" "$nmods" "$(date -Is)"
  for f in "${debs[@]}"; do echo "deb $(basename "$f")"; done
} | cache_complete "$key_dir"
log "QEMU $version ready: $wrapper ($nlibs libraries, $(du -sm "$root" | cut -f1) MB)"

# Older prefixes and the packages of other versions go (each ~100 MB).
cache_prune "$key_dir" "old QEMU prefix" "$cache_root"/qemu-*-r[0-9]*
keep_debs=$(printf '%s\n' "${debs[@]}")
for f in "$apt_dir"/debs/*.deb; do
  grep -qxF "$f" <<<"$keep_debs" || rm -f "$f"
done
echo "$wrapper"
