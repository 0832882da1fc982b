# Several guest scripts in one boot, each on its own disk (a TCG boot costs more than the
# checks): STEPS="SCRIPT:SERIAL:OUTDIR ..." runs each SCRIPT with EXPECT_SERIAL=SERIAL and
# OUT=OUTDIR (created). Every step runs; the exit code is the sum of theirs (capped at 99).
set -uo pipefail
total=0
for step in $STEPS; do
  IFS=: read -r script serial out <<<"$step"
  echo "=== $script (disk $serial)"
  mkdir -p "$out"
  EXPECT_SERIAL=$serial OUT=$out bash "$(dirname "$0")/$script"
  total=$((total + $?))
done
echo "steps failed checks: $total"
exit $((total > 99 ? 99 : total))
