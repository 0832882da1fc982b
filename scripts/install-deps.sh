#!/usr/bin/env bash
# Install every Debian package the project needs, then the npm dependencies.
# Idempotent and non-interactive: apt is not touched when everything is already there,
# and `npm ci` runs only when node_modules is missing or older than package-lock.json.
#
# Usage: scripts/install-deps.sh [--no-npm] [--check]
#   --no-npm  skip the npm step
#   --check   only report missing packages (exit 1 if any), install nothing
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

do_npm=1
check_only=0
for arg in "$@"; do
  case "$arg" in
    --no-npm) do_npm=0 ;;
    --check) check_only=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "install-deps: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

# Grouped so the reason for each package is visible.
packages=(
  # native addon build (node-gyp)
  g++ make python3
  # User-Mode Linux 6.12 kernel build (qemu-scripts/build-uml.sh).
  # linux-source-6.12 comes from bookworm-security (source package linux-6.12).
  linux-source-6.12 flex bison bc libelf-dev libssl-dev xz-utils
  # guest-side tools used inside UML/QEMU guests (host / is the guest root)
  fio util-linux btrfs-progs f2fs-tools e2fsprogs
  # static busybox: `poweroff -f` in the UML init, and the QEMU initramfs userland.
  # (busybox-static and busybox conflict; the static one serves both uses.)
  busybox-static
  # QEMU non-zoned path + qemu-storage-daemon reference backend; qemu-system-common also
  # has /usr/lib/qemu/virtiofsd, which shares the host's / with the QEMU test guest
  qemu-system-x86 qemu-system-common qemu-utils
  # QEMU test guest initramfs packing (build-qemu-guest.sh; the kernel .deb comes from
  # `apt-get download`, its modules are .ko.xz: xz-utils above)
  cpio gzip
  # run-uml.sh: timeout/setsid/flock/mktemp
  coreutils
  # headless browser for the live page and zone map tests (test/observe/live-page.test.ts,
  # driven over the DevTools protocol on a pipe; no npm browser package)
  chromium
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != installed ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} Debian packages already installed"
elif ((check_only)); then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run scripts/install-deps.sh --no-npm (as root) to install them" >&2
  exit 1
else
  echo "install-deps: missing Debian packages: ${missing[*]}"
  sudo_cmd=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null; then
      sudo_cmd=(sudo)
    else
      echo "install-deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "install-deps: apt-get update"
  "${sudo_cmd[@]}" apt-get update -q
  echo "install-deps: apt-get install ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
fi

if ((check_only)); then
  exit 0
fi

if ((do_npm)); then
  lock="$repo_root/package-lock.json"
  nm="$repo_root/node_modules"
  if [[ ! -d "$nm" ]]; then
    echo "install-deps: node_modules missing: npm ci"
    (cd "$repo_root" && npm ci)
    touch "$nm"
  elif [[ "$lock" -nt "$nm" ]]; then
    echo "install-deps: package-lock.json newer than node_modules: npm ci"
    (cd "$repo_root" && npm ci)
    # npm ci does not always touch the directory itself; make the freshness check stable.
    touch "$nm"
  else
    echo "install-deps: node_modules up to date (skipping npm ci)"
  fi
else
  echo "install-deps: --no-npm: skipping npm"
fi
