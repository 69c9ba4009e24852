// Workflows that are running when new code is deployed resume on that code from their history.
// Every history recorded from an earlier version (test/histories/<version>/, written by
// scripts/record-histories.ts) must therefore replay on today's workflow bundle without a
// nondeterminism error. Replay needs no server: this runs the bundle against the files alone.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { beforeAll, describe, expect, inject, it } from 'vitest';

const HISTORIES = fileURLToPath(new URL('../histories/', import.meta.url));

/** `<version>/<scenario>.json` for every recorded history. */
const files = readdirSync(HISTORIES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(join(HISTORIES, d.name))
      .filter((f) => f.endsWith('.json'))
      .map((f) => `${d.name}/${f}`),
  )
  .sort();

const results = new Map<string, ReplayResult>();

beforeAll(async () => {
  // One replay worker for all files; each history is replayed under its file name as workflow id,
  // so a failure names the file it came from.
  const histories = files.map((file) => ({
    workflowId: file,
    history: historyFromJSON(JSON.parse(readFileSync(join(HISTORIES, file), 'utf8'))),
  }));
  for await (const result of Worker.runReplayHistories({ workflowBundle: { codePath: inject('workflowBundlePath') } }, histories)) {
    results.set(result.workflowId, result);
  }
}, 120_000);

describe('replaying recorded workflow histories on the current workflow code', () => {
  it('has the base set of histories to replay', () => {
    // Guards against the directory moving or being emptied, which would make every check below vacuous.
    expect(files.filter((f) => f.startsWith('v1-polling/')).length).toBeGreaterThanOrEqual(8);
  });

  it.each(files)('%s replays without nondeterminism', (file) => {
    const result = results.get(file);
    expect(result, `${file} was not replayed at all`).toBeDefined();
    const error = result!.error;
    expect(error, `${file}: ${error?.name}: ${error?.message}`).toBeUndefined();
  });
});
