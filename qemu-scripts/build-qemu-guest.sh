#!/usr/bin/env bash
# Build the QEMU test guest: Debian's 6.12 amd64 kernel (downloaded with `apt-get download`,
# the only network access) and a small busybox-static initramfs whose /init loads
# virtio_blk, btrfs, f2fs and ext4, mounts the host's / read-only over virtiofs and runs a command or a shell
# (qemu-scripts/qemu-guest/init). Everything goes into a cache directory outside the repo.
#
# Usage: qemu-scripts/build-qemu-guest.sh [-q|--quiet] [--force] [--dry-run]
#   -q, --quiet  say nothing on stderr when the guest is already built
#   --force      rebuild even when a completed build for this cache key exists
#   --dry-run    only print the paths a build would produce (nothing downloaded or built;
#                for --print-cmdline of run-qemu.sh / run-vm.sh)
#
# The last two lines on stdout are the kernel path and the initramfs path.
#
# Environment:
#   QEMU_GUEST_KERNEL_PACKAGE  Debian package to take the kernel from (default: the
#                              -unsigned twin of what linux-image-6.12-amd64 depends on)
#
# Cache layout (CACHE = ${VHOST_USER_ZBD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vhost-user-zbd}):
#   CACHE/debs/PKG_VERSION_amd64.deb      the downloaded kernel package (kept: offline rebuilds)
#   CACHE/qemu-guest-<key>/vmlinuz        <key> hashes the recipe version, the package version,
#   CACHE/qemu-guest-<key>/initrd.img     busybox version, the module list and the init script
#   CACHE/qemu-guest-<key>/.complete      stamp written last: only then is the build done
#   CACHE/*.lock                          flock files serialising concurrent builds
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$script_dir/lib/common.sh"
script_init build-qemu-guest 1
init_src="$script_dir/qemu-guest/init"
cache_root=$(cache_dir)
# Bump when the build recipe below changes in a way that changes the result (the cache key
# hashes the inputs, not this script, so that edits which do not change the guest keep it).
recipe_version=2
# Modules the guest loads, in this order (their dependencies are added first): the disk driver
# and the zoned filesystems the guest tests use (the cloud flavour lacks f2fs, hence the full
# amd64 kernel). virtio_pci, virtio_ring, fuse and virtiofs are built in (checked below
# against the package's config, so a future package that makes them modular fails loudly
# instead of booting without its root share).
# crc32c_generic and crc32_generic: btrfs (through libcrc32c) and f2fs ask the crypto API for
# crc32c and crc32 at mount time; those soft dependencies are not in the modules' depends=,
# and the guest has no modprobe to load them on request (f2fs mount fails with ENOENT).
# ext4 is modular in the amd64 kernel (regular-disk tests make one on the served disk).
modules=(virtio_blk crc32c_generic crc32_generic btrfs f2fs ext4)
builtin_required=(CONFIG_VIRTIO_PCI CONFIG_VIRTIO_FS CONFIG_FUSE_FS CONFIG_DEVTMPFS
  CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_IO_URING CONFIG_AIO CONFIG_SYSVIPC
  CONFIG_BLK_DEV_ZONED CONFIG_SERIAL_8250_CONSOLE)

force=0
quiet=0
dry_run=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -q|--quiet) quiet=1 ;;
    --dry-run) dry_run=1 ;;
    -h|--help) help_text; exit 0 ;;
    *) log "unknown argument: $arg"; exit 2 ;;
  esac
done

need_debs busybox-static cpio xz-utils gzip
# busybox-static (which conflicts with the dynamic busybox package) puts the static binary
# here; the initramfs has no libc.
busybox=/bin/busybox
[[ -f "$init_src" ]] || die "missing $init_src"

# --- which kernel package: resolved from the local apt lists (no network) ---
resolve_package() {
  if [[ -n "${QEMU_GUEST_KERNEL_PACKAGE:-}" ]]; then
    echo "$QEMU_GUEST_KERNEL_PACKAGE"
    return
  fi
  # The meta package names the current ABI; its -unsigned twin has the same kernel and
  # modules without the signature wrapper (we boot with -kernel, no secure boot).
  local signed
  signed=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.12\.[^ ]*-amd64\)$/\1/p' | head -n 1)
  [[ -n "$signed" ]] && echo "$signed-unsigned"
}
pkg=$(resolve_package || true)
version=
if [[ -n "$pkg" ]]; then
  version=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1 || true)
fi
((dry_run)) || mkdir -p "$cache_root/debs"
if [[ -z "$version" ]]; then
  # No apt lists (offline, cleaned image): fall back to the newest package already cached.
  # shellcheck disable=SC2012  # our own file names: no blanks
  deb=$(ls -1t "$cache_root"/debs/linux-image-6.12.*[0-9]-amd64-unsigned_*.deb 2>/dev/null | head -n 1 || true)
  [[ -n "$deb" ]] || die "cannot resolve the kernel package from the apt lists (${pkg:-linux-image-6.12-amd64 unknown}) and none is cached — run: apt-get update"
  pkg=$(dpkg-deb -f "$deb" Package)
  version=$(dpkg-deb -f "$deb" Version)
  log "apt lists do not resolve the kernel package; using the cached $pkg $version"
fi
deb="$cache_root/debs/${pkg}_${version//:/%3a}_amd64.deb"

busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
build_key=$(
  { printf 'recipe %s\npackage %s %s\nbusybox %s\nmodules %s\n' "$recipe_version" "$pkg" "$version" \
      "$busybox_version" "${modules[*]}"
    cat "$init_src"; } | sha256sum | cut -c1-16
)
key_dir="$cache_root/qemu-guest-$build_key"
kernel="$key_dir/vmlinuz"
initrd="$key_dir/initrd.img"

have_guest() { [[ -f "$kernel" && -f "$initrd" ]]; }
print_guest() { printf '%s\n%s\n' "$kernel" "$initrd"; }
if ((dry_run)); then
  print_guest
  exit 0
fi
cache_claim "$key_dir" "$force" "$quiet" have_guest print_guest

work=$(mktemp -d "$cache_root/.qemu-guest-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- download (the deb lock keeps two keys that share a package from racing) ---
exec 9>"$cache_root/debs/.lock"
flock 9
if [[ ! -s "$deb" ]]; then
  log "apt-get download $pkg=$version (~110 MB)"
  # apt verifies the file against the signed index. As root it would drop to the _apt user,
  # which cannot write into a private directory; downloading as root into it is fine.
  (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$version" >&2) ||
    die "apt-get download $pkg=$version failed (is deb.debian.org reachable? apt-get update?)"
  got=("$work"/*.deb)
  [[ -f "${got[0]}" ]] || die "apt-get download produced no .deb"
  mv -f "${got[0]}" "$deb.tmp"
  mv -f "$deb.tmp" "$deb"
fi
flock -u 9

# --- unpack the kernel and the modules we need ---
log "extracting $pkg $version"
dpkg-deb -x "$deb" "$work/pkg"
kvers=("$work"/pkg/lib/modules/*)
if ((${#kvers[@]} != 1)) || [[ ! -d "${kvers[0]}" ]]; then die "unexpected module layout in $deb"; fi
kver=$(basename "${kvers[0]}")
moddir="${kvers[0]}"
config="$work/pkg/boot/config-$kver"
[[ -f "$work/pkg/boot/vmlinuz-$kver" ]] || die "no boot/vmlinuz-$kver in $deb"
[[ -f "$config" ]] || die "no boot/config-$kver in $deb"
for sym in "${builtin_required[@]}"; do
  grep -qx "$sym=y" "$config" || die "$pkg: $sym is not built in ($(grep -E "^(# )?${sym}[= ]" "$config" || echo absent)); the init cannot work"
done

# Module file by name (module names use _ where file names may use -). The package has no
# modules.dep (depmod makes it at install time); modules.order lists every modular .ko.
modpath() {
  local f
  f=$(grep -E "(^|/)${1//_/[_-]}\.ko$" "$moddir/modules.order" | head -n 1 || true)
  [[ -n "$f" && -f "$moddir/$f.xz" ]] || return 1
  echo "$moddir/$f.xz"
}
# `depends=` from the module's .modinfo section (no kmod tools needed on the host).
moddeps() { xz -dc "$1" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '; }
load_order=()
add_module() {
  local name=$1 path dep
  for m in "${load_order[@]}"; do [[ "$m" == "$name" ]] && return 0; done
  if grep -qE "(^|/)${name//_/[_-]}\.ko$" "$moddir/modules.builtin"; then
    return 0 # built in: nothing to load
  fi
  path=$(modpath "$name") || die "module $name not found in $pkg"
  for dep in $(moddeps "$path"); do add_module "$dep"; done
  load_order+=("$name")
  mkdir -p "$work/root/lib/modules"
  xz -dc "$path" >"$work/root/lib/modules/$name.ko"
}
for m in "${modules[@]}"; do add_module "$m"; done

# --- the initramfs tree ---
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,host,lib/modules,tmp}
cp "$busybox" "$root/bin/busybox"
cp "$init_src" "$root/init"
chmod 755 "$root/init" "$root/bin/busybox"
printf '%s\n' "${load_order[@]}" >"$root/lib/modules/load-order"
printf '%s\n' "$kver" >"$root/lib/modules/kernel-version"

# The kernel opens /dev/console for init's stdio before init can mount devtmpfs, so the
# archive must contain that node. mknod would need root; instead append a second newc
# archive holding only the node (the kernel unpacks concatenated archives in order).
newc_entry() { # name mode rdevmajor rdevminor
  local name=$1 mode=$2 maj=$3 min=$4 namesize hdr pad
  namesize=$((${#name} + 1))
  hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    0 "$mode" 0 0 1 0 0 0 0 "$maj" "$min" "$namesize" 0)
  printf '%s%s\0' "$hdr" "$name"
  pad=$(((4 - (110 + namesize) % 4) % 4))
  head -c "$pad" /dev/zero
}
(
  cd "$root"
  # Sorted and owned by root so the same inputs give the same archive.
  find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet
  { newc_entry dev/console $((8#020600)) 5 1; newc_entry TRAILER!!! 0 0 0; }
) | gzip -n -9 >"$work/initrd.img"

cp "$work/pkg/boot/vmlinuz-$kver" "$work/vmlinuz"
mkdir -p "$key_dir"
mv -f "$work/vmlinuz" "$kernel"
mv -f "$work/initrd.img" "$initrd"
cp "$config" "$key_dir/config"
printf 'package %s %s\nkernel %s\nmodules %s\nbuilt %s\n' "$pkg" "$version" "$kver" \
  "${load_order[*]}" "$(date -Is)" | cache_complete "$key_dir"
log "built $key_dir (kernel $kver, modules: ${load_order[*]:-none})"

# Drop older guests and packages nobody is building (each ~50 MB).
cache_prune "$key_dir" "" "$cache_root"/qemu-guest-*
flock 9
for old in "$cache_root"/debs/linux-image-*.deb; do
  if [[ -f "$old" && "$old" != "$deb" ]]; then rm -f "$old"; fi
done
flock -u 9

print_guest
