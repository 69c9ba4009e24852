// What `npm start` prints (scripts/start.sh → scripts/start-banner.sh): the built-in local token is
// shown so a new user can sign in; tokens an operator configured never reach the terminal.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const banner = fileURLToPath(new URL('../../scripts/start-banner.sh', import.meta.url));
const start = fileURLToPath(new URL('../../scripts/start.sh', import.meta.url));
const LOCAL = 'dev-token:demo';

function print(apiTokens: string): Promise<string> {
  const env = { PATH: process.env.PATH ?? '', LOCAL_API_TOKENS: LOCAL, API_TOKENS: apiTokens, TEMPORAL_UI_URL: 'http://ui', KUBECONFIG: '/k' };
  return new Promise((resolve, reject) =>
    execFile('bash', [banner, 'http://127.0.0.1:8080'], { env }, (err, stdout, stderr) => (err ? reject(err) : resolve(stdout + stderr))),
  );
}

describe('the npm start banner', () => {
  it('names the built-in local token', async () => {
    const out = await print(LOCAL);
    expect(out).toContain('web page          http://127.0.0.1:8080/   (token: dev-token for user demo — local only)');
    expect(out).toContain('Temporal Web UI   http://ui');
  });

  it.each([
    ['an operator token', 'Zq9f-operator-secret:alice'],
    ['several, one of them the local one', `${LOCAL},Zq9f-operator-secret:alice`],
    ['the local token under another user', 'dev-token:Zq9f-operator-secret'],
  ])('never prints configured tokens: %s', async (_what, tokens) => {
    const out = await print(tokens);
    expect(out).not.toContain('Zq9f-operator-secret');
    expect(out).not.toContain('dev-token');
    expect(out).toContain('a token from API_TOKENS; configured tokens are not shown');
  });

  it('is the only place start.sh shows tokens, and start.sh gives it the built-in value', async () => {
    const script = await readFile(start, 'utf8');
    expect(script).toContain(`LOCAL_API_TOKENS=${LOCAL}\n`);
    expect(script).toContain('LOCAL_API_TOKENS=$LOCAL_API_TOKENS bash scripts/start-banner.sh "$api"');
    // API_TOKENS appears only where it is defaulted, never in anything printed.
    expect(script.split('\n').filter((l) => l.includes('API_TOKENS') && !l.trimStart().startsWith('#'))).toEqual([
      `LOCAL_API_TOKENS=${LOCAL}`,
      'export API_TOKENS=${API_TOKENS:-$LOCAL_API_TOKENS}',
      'LOCAL_API_TOKENS=$LOCAL_API_TOKENS bash scripts/start-banner.sh "$api"',
    ]);
  });
});
