import { defineConfig } from 'vitest/config';

// Three projects, one runner, run one after the other (sequence.groupOrder): first unit, then
// integration, then browser. Integration and browser files share the one local cluster and the
// 2-core machine, so they never run beside each other, and integration files run one at a time.
//  unit        pure functions, and workflows on a real Temporal dev server with stub activities
//  integration the real local stack: Temporal, Kubernetes (etcd, apiserver, controllers, KWOK), MariaDB
//  browser     the web page in headless Chromium
// test/support/global-setup.ts checks that the local stack is up and bundles the workflows; each test
// file makes its own database and namespaces (test/support/stack.ts, connectStack).
export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/quiet-runtime.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 1 } } },
      {
        extends: true,
        test: { name: 'integration', include: ['test/integration/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 2 } },
      },
      {
        extends: true,
        test: { name: 'browser', include: ['test/browser/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 3 } },
      },
    ],
  },
});
