import { defineConfig } from 'vitest/config';

// Three projects, one runner:
//  unit        pure functions, and workflows on a real Temporal dev server with stub activities
//  integration the real local stack: Temporal, Kubernetes (etcd, apiserver, controllers, KWOK), MariaDB
//  browser     the web page in headless Chromium
// Every project shares test/support/global-setup.ts, which checks that the local stack is up and
// creates this run's own database (dropped at the end).
export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/quiet-runtime.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'], fileParallelism: false } },
      { extends: true, test: { name: 'browser', include: ['test/browser/**/*.test.ts'], fileParallelism: false } },
    ],
  },
});
