// The workflow bundle preloads nightwatch's workflow modules (src/worker-setup.ts,
// WORKFLOW_PRELOAD_MODULES): they are evaluated once in the workflow thread and shared by every
// workflow it runs. The SDK deep-freezes what they export, so a module-level object that workflow
// code mutates fails loudly; but a module-level `let`/`var`, or a Map/Set/array filled at run time,
// would silently carry one workflow's state into another (a determinism bug across tasks). These
// tests read the very bundle the other tests run (test/support/global-setup.ts builds it with
// bundleWorkflows) and check that it preloads nightwatch's modules and that none of them keeps such
// state at module level.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const bundle = readFileSync(inject('workflowBundlePath'), 'utf8');

/** nightwatch's own modules in the bundle (webpack names each `./path` from the project root). */
const ownModules = [...new Set([...bundle.matchAll(/^\/\*\*\*\/ "(\.\/(?!node_modules\/)[^"]+\.ts)"/gm)].map((m) => m[1]!))].sort();

/**
 * Declarations at a module's top level (column 0, as the code is formatted) that hold state a
 * workflow could change: `let`/`var` bindings, and collections whose contents freezing does not
 * protect. Constants, functions and frozen-at-load objects are fine.
 */
const MUTABLE_TOP_LEVEL = [
  /^(?:export\s+)?(?:let|var)\s/,
  /^(?:export\s+)?const\s+\w+[^=]*=\s*new\s+(?:Map|Set|WeakMap|WeakSet|Array)\b/,
  /^(?:export\s+)?const\s+\w+\s*:(?![^=]*\breadonly\b)[^=]*(?:\[\]|Array<|Map<|Set<)[^=]*=/,
  /^(?:export\s+)?const\s+\w+\s*=\s*\[\s*\]/,
];

function mutableTopLevel(source: string): string[] {
  return source.split('\n').filter((line) => MUTABLE_TOP_LEVEL.some((re) => re.test(line)));
}

describe('the workflow modules shared by every workflow', () => {
  it('finds nightwatch’s own modules in the bundle', () => {
    // Guards the checks below against a bundle format that would leave them nothing to read.
    expect(ownModules).toContain('./workflows/index.ts');
    expect(ownModules).toContain('./workflows/task.ts');
  });

  it('are preloaded by the bundle every worker runs', () => {
    const hook = bundle.slice(bundle.indexOf('exports.preloadModules = function preloadModules()'));
    expect(hook.slice(0, hook.indexOf('\n}'))).toContain('"./workflows/index.ts"');
  });

  it('keep no per-workflow state at module level', () => {
    const offending = ownModules.flatMap((path) => mutableTopLevel(readFileSync(join(ROOT, path), 'utf8')).map((line) => `${path}: ${line.trim()}`));
    expect(offending).toEqual([]);
  });

  it('the check catches module-level state', () => {
    const caught = mutableTopLevel(
      [
        'let current = 0;',
        'export var seen;',
        'const cache = new Map<string, number>();',
        'const pending: string[] = load();',
        'const queue = [];',
        'const DONE = 3;',
        'export const FINAL: readonly string[] = ["Succeeded"];',
        'export const TaskStatus = { Normal: "Normal" } as const;',
        '  let inside = 1;',
        'export async function run() {}',
      ].join('\n'),
    );
    expect(caught).toEqual(['let current = 0;', 'export var seen;', 'const cache = new Map<string, number>();', 'const pending: string[] = load();', 'const queue = [];']);
  });
});
