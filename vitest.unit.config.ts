// `npm run test:unit`: the host-only tier — everything `npm test` runs except what needs a UML or
// QEMU guest, a browser or the benchmark. It still compiles dist/ (test/global-setup.ts: the CLI
// and crash tests spawn it) and uses the native addon already built; it does not build the guest.
import { configDefaults, defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

export default mergeConfig(base, defineConfig({
  test: {
    // Most of these files wait on child processes, sockets and timers rather than compute, so
    // more files than cores run at once: 74 s with vitest's default (one worker on 2 cores),
    // 37 s with four.
    maxWorkers: 4,
    exclude: [
      ...configDefaults.exclude,
      'test/guest/**', // UML and QEMU guests
      'test/observe/live-page.test.ts', // headless Chromium
      'test/bench/**', // qemu-storage-daemon and fio
      // Slow host tests (minutes on 2 cores): hundreds of killed-and-reopened daemons, and
      // multi-GiB images reported and checked in bounded memory.
      'test/backends/crash.test.ts',
      'test/cli/report-stream.test.ts',
    ],
  },
}));
