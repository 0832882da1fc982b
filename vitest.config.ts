import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60000,
    // Separate processes: tests use fds, signals and native handles that must not leak
    // between files sharing a thread.
    pool: 'forks',
    // Child processes (crash test, daemon, guest) run the compiled dist/: build it once.
    globalSetup: ['test/global-setup.ts'],
  },
});
