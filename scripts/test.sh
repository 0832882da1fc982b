#!/usr/bin/env bash
# The whole test suite from a fresh clone (README: `npm test`; .ci/run runs the same):
# installs what is missing, builds the addon and the TypeScript, builds the UML guest
# (cached outside the repo), typechecks, then runs every test. Guest tests fail, never skip,
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
