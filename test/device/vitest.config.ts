// Tests of the host zoned device backend against real kernel zoned devices. They run only
// inside the UML guest (test/guest/device-backend.test.ts boots it with null_blk and
// scsi_debug and runs `npx vitest run --config test/device/vitest.config.ts` there), so the
// main run does not include them: their files end in .guest.ts, not .test.ts.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/device/**/*.guest.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One device, one test file at a time: files share null_blk and scsi_debug.
    fileParallelism: false,
    // Outside the guest this fails (never skips); dist/ must have been built by the host run.
    globalSetup: ['test/device/guest-setup.ts'],
  },
});
