#!/usr/bin/env bash
# The whole test suite from a fresh clone (README: `npm test`; .ci/run runs the same):
# installs what is missing, builds the addon and the TypeScript, builds the UML guest and
# fetches QEMU 11 (both cached outside the repo), typechecks, then runs every test. Guest tests fail, never skip,
# when the guest cannot be built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
source scripts/native-addon.sh
build_native_addon_if_stale
echo "test: typecheck + build"
npx tsc -p tsconfig.json
npx tsc -p tsconfig.test.json
echo "test: lint"
npm run --silent lint
echo "test: UML 6.12 guest"
UML_KERNEL=$(bash qemu-scripts/build-uml.sh | tail -n 1)
export UML_KERNEL
echo "test: guest kernel $UML_KERNEL"
# The zoned QEMU guest tests need QEMU >= 10.2: Debian 12 has 7.2, so get-qemu.sh fetches
# Debian's (trixie-backports) once into the same cache. When that fails ZONED_QEMU stays
# unset and those tests fail with get-qemu.sh's own message (they never skip).
echo "test: QEMU >= 10.2 (qemu-scripts/get-qemu.sh)"
if ZONED_QEMU=$(bash qemu-scripts/get-qemu.sh | tail -n 1) && [[ -x "$ZONED_QEMU" ]]; then
  export ZONED_QEMU
  echo "test: zoned QEMU $("$ZONED_QEMU" --version | head -n 1) at $ZONED_QEMU"
else
  unset ZONED_QEMU
  echo "test: get-qemu.sh failed: the zoned QEMU guest tests will fail"
fi

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results/vitest.json" "$@" || status=$?
# One plain closing line with the counts, whatever the reporter printed above.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results/vitest.json" || true
exit "$status"
