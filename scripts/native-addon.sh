# Sourced by scripts/test.sh and scripts/start.sh: build the native addon when it is missing or
# older than any of its sources. A checkout that changed native/ or binding.gyp must not keep
# loading the old addon (symptom: "<function> is not a function" from src/native.ts).
native_addon=build/Release/vhost_user_zbd_native.node

native_addon_stale() {
  [[ ! -f $native_addon ]] || [[ -n "$(find native binding.gyp -newer "$native_addon" -type f -print -quit)" ]]
}

build_native_addon_if_stale() {
  if native_addon_stale; then npm run install; fi
}
