// The stack script's own promises: a taken port is named, status tells what is down, and a
// stack that is not running stops cleanly. (Starting and stopping the real stack is what every
// `npm test` run does; these cases use a scratch state folder so the running stack is untouched.)
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../scripts/stack/stack.sh', import.meta.url));
let dir: string;
let blocker: Server;
let port: number;

function stack(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('bash', [script, ...args], { env: { ...process.env, NW_STACK_DIR: dir, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nightwatch-stack-'));
  blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  port = (blocker.address() as { port: number }).port;
});
afterAll(async () => {
  blocker.close();
  await rm(dir, { recursive: true, force: true });
});

describe('stack.sh', () => {
  it('refuses to start on a taken port, naming the port, the component and the variable', async () => {
    const { code, out } = await stack(['start'], { NW_TEMPORAL_PORT: String(port) });
    expect(code).not.toBe(0);
    expect(out).toContain(`port ${port} for temporal is taken by another process; free it or set NW_TEMPORAL_PORT to another port`);
    // nothing was left running from the scratch folder
    expect((await stack(['status'], {})).out).toMatch(/temporal\s+stopped/);
  });

  it('reports components that are not running and exits non-zero', async () => {
    const { code, out } = await stack(['status'], {});
    expect(code).toBe(1);
    for (const c of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'temporal']) {
      expect(out).toMatch(new RegExp(`${c}\\s+stopped`));
    }
  });

  it('stops a stack that is not running without complaint', async () => {
    const { code, out } = await stack(['stop'], {});
    expect(code).toBe(0);
    expect(out).toContain('stopped');
  });

  it('rejects an unknown command with its usage', async () => {
    const { code, out } = await stack(['launch'], {});
    expect(code).toBe(2);
    expect(out).toContain('usage:');
  });
});
