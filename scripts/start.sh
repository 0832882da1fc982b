#!/usr/bin/env bash
# `npm start`: install what is missing, build, create the default emulated zoned disk on first
# run, and serve it. Extra arguments go to `vhost-user-zbd serve` (e.g. npm start -- --queues 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh >&2
source scripts/native-addon.sh
build_native_addon_if_stale >&2
# Rebuild when any source file is newer than the build: a directory's mtime does not change when
# a file in a subdirectory is edited, so compare files, not the src directory.
if [[ ! -f dist/cli/main.js ]] || [[ -n "$(find src tsconfig.json -newer dist/cli/main.js -type f -print -quit)" ]]; then
  npx tsc -p tsconfig.json
fi

data=${VHOST_USER_ZBD_DATA:-${XDG_DATA_HOME:-$HOME/.local/share}/vhost-user-zbd}
run=${VHOST_USER_ZBD_RUN:-${XDG_RUNTIME_DIR:-$HOME/.cache/vhost-user-zbd}}
mkdir -p "$data" "$run"
chmod 700 "$run"
image=${VHOST_USER_ZBD_IMAGE:-$data/default.img}
socket=${VHOST_USER_ZBD_SOCKET:-$run/vhost-user-zbd.sock}
if [[ ! -e "$image" ]]; then
  node bin/vhost-user-zbd.js create "$image" --size 4G --zone-size 64M --conventional 4 --max-open 16 --max-active 32
fi
echo "image:  $image" >&2
echo "socket: $socket" >&2
exec node bin/vhost-user-zbd.js serve --socket "$socket" --image "$image" "$@"
