import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  DEFAULT_BACKOFF_LIMIT,
  describeTaskInfoIssues,
  MAX_ENTRY_CHARS,
  MAX_INFO_BYTES,
  MAX_LIST_ENTRIES,
  parseTaskInfo,
  taskInfoSchema,
  type TaskInfo,
  validateNamespaceName,
  validateTaskName,
} from '../../src/task/info.ts';

/** The failure reason for `info`, or a test failure if it was accepted. */
function reasonFor(info: unknown): string {
  const result = parseTaskInfo(typeof info === 'string' ? info : JSON.stringify(info));
  if (result.ok) throw new Error(`expected ${JSON.stringify(info)} to be rejected, got ${JSON.stringify(result.info)}`);
  return result.reason;
}

function accepted(info: unknown): TaskInfo {
  const result = parseTaskInfo(JSON.stringify(info));
  if (!result.ok) throw new Error(`expected ${JSON.stringify(info)} to be accepted: ${result.reason}`);
  return result.info;
}

describe('parseTaskInfo accepts', () => {
  it('an image alone, with backoffLimit defaulting to 0 so a failure is not silently retried', () => {
    expect(parseTaskInfo('{"image": "alpine:3.20"}')).toStrictEqual({
      ok: true,
      info: { image: 'alpine:3.20', backoffLimit: 0 },
    });
    expect(DEFAULT_BACKOFF_LIMIT).toBe(0);
  });

  it('every field at once, unchanged', () => {
    const info = {
      image: 'ghcr.io/acme/report:1.4',
      command: ['sh', '-c'],
      args: ['echo "$GREETING"', ''],
      env: { GREETING: 'hello', 'app.mode': 'batch', _X: '' },
      resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } },
      timeoutSeconds: 3600,
      backoffLimit: 3,
      ttlSecondsAfterFinished: 300,
    };
    expect(accepted(info)).toStrictEqual(info);
  });

  it.each([
    'alpine',
    'alpine:3.20',
    'library/alpine',
    'docker.io/library/alpine:latest',
    'ghcr.io/acme/report:1.4',
    'localhost/app',
    'localhost:5000/app',
    'registry:5000/team/app:v1',
    'my-registry.example.com:443/a/b_c/d__e/f-g:tag-1.0_rc',
    `alpine@sha256:${'a'.repeat(64)}`,
    `ghcr.io/acme/app:1.0@sha256:${'0123456789abcdef'.repeat(4)}`,
  ])('image %s', (image) => {
    expect(accepted({ image }).image).toBe(image);
  });

  it.each(['0', '1', '0.5', '.5', '500m', '100n', '2u', '1k', '128Mi', '1Gi', '2G', '1e3', '1E', '1.5Ti'])(
    'quantity %s',
    (q) => {
      expect(accepted({ image: 'alpine', resources: { limits: { cpu: q, memory: q } } }).resources).toStrictEqual({
        limits: { cpu: q, memory: q },
      });
    },
  );

  it('a request equal to its limit, even in different units', () => {
    expect(accepted({ image: 'alpine', resources: { requests: { memory: '1Gi' }, limits: { memory: '1024Mi' } } })).toBeTruthy();
    expect(accepted({ image: 'alpine', resources: { requests: { cpu: '1' }, limits: { cpu: '1000m' } } })).toBeTruthy();
  });

  it(`exactly ${MAX_LIST_ENTRIES} args and command entries of exactly ${MAX_ENTRY_CHARS} characters`, () => {
    const full = Array.from({ length: MAX_LIST_ENTRIES }, () => 'x');
    const long = ['y'.repeat(MAX_ENTRY_CHARS)];
    expect(accepted({ image: 'alpine', command: long, args: full }).args).toHaveLength(MAX_LIST_ENTRIES);
  });

  it('a text of exactly MAX_INFO_BYTES (64 KiB)', () => {
    expect(MAX_INFO_BYTES).toBe(65_536);
    const base = '{"image":"alpine"}';
    const result = parseTaskInfo(base + ' '.repeat(MAX_INFO_BYTES - base.length));
    expect(result).toStrictEqual({ ok: true, info: { image: 'alpine', backoffLimit: 0 } });
  });

  it('the bounds of backoffLimit, timeoutSeconds and ttlSecondsAfterFinished', () => {
    expect(accepted({ image: 'alpine', backoffLimit: 0 }).backoffLimit).toBe(0);
    expect(accepted({ image: 'alpine', backoffLimit: 10 }).backoffLimit).toBe(10);
    expect(accepted({ image: 'alpine', timeoutSeconds: 1 }).timeoutSeconds).toBe(1);
    expect(accepted({ image: 'alpine', ttlSecondsAfterFinished: 300 }).ttlSecondsAfterFinished).toBe(300);
  });
});

describe('parseTaskInfo rejects, saying which field is wrong and how to fix it', () => {
  it('an empty text', () => {
    expect(reasonFor('')).toBe('info is empty: set it to a JSON object with at least an image, for example {"image": "alpine:3.20"}');
    expect(reasonFor('  \n')).toMatch(/^info is empty/);
  });

  it('invalid JSON, quoting the parser error', () => {
    const reason = reasonFor('{"image": "alpine",}');
    expect(reason).toMatch(/^info is not valid JSON \(.+\): fix the syntax, for example \{"image": "alpine:3.20"\}$/);
    let parserMessage = '';
    try {
      JSON.parse('{"image": "alpine",}');
    } catch (err) {
      parserMessage = (err as Error).message;
    }
    expect(reason).toContain(`(${parserMessage})`);
  });

  it.each([
    ['[]', 'a list'],
    ['"alpine"', 'the string "alpine"'],
    ['42', 'the number 42'],
    ['true', 'the boolean true'],
    ['null', 'null'],
  ])('JSON that is not an object: %s', (raw, what) => {
    expect(reasonFor(raw)).toBe(`info must be a JSON object like {"image": "alpine:3.20"}, not ${what}`);
  });

  it('a missing image', () => {
    expect(reasonFor({})).toBe('info.image is required: set the container image, for example "alpine:3.20"');
    expect(reasonFor({ command: ['true'] })).toBe('info.image is required: set the container image, for example "alpine:3.20"');
  });

  it('an empty or non-string image', () => {
    expect(reasonFor({ image: '' })).toBe('info.image must not be empty: set the container image, for example "alpine:3.20"');
    expect(reasonFor({ image: 3 })).toBe('info.image must be a string naming the container image, for example "alpine:3.20"');
  });

  it.each([
    'Alpine',
    'alpine linux',
    'alpine:',
    ':3.20',
    'alpine:-rc',
    'MyOrg/app',
    'alpine@sha256:abc',
    'https://ghcr.io/acme/app',
    '/alpine',
    'alpine/',
    ' alpine',
  ])('a malformed image %j', (image) => {
    expect(reasonFor({ image })).toBe(
      `info.image must be an image reference like [registry/]name[:tag][@digest], with a lowercase name and no spaces ` +
        `(got ${JSON.stringify(image)}), for example "alpine:3.20" or "ghcr.io/acme/report:1.4"`,
    );
  });

  it('an image longer than 512 characters', () => {
    expect(reasonFor({ image: 'a'.repeat(513) })).toBe('info.image is 513 characters long; at most 512 are allowed');
  });

  it('unknown fields, one message each, suggesting the field that was probably meant', () => {
    const allowed = 'image, command, args, env, annotations, resources, timeoutSeconds, backoffLimit, ttlSecondsAfterFinished';
    expect(reasonFor({ image: 'alpine', timeout: 60, Image: 'x', volumes: [] })).toBe(
      [
        `info.timeout is not a known field (did you mean info.timeoutSeconds?): remove it; info accepts ${allowed}`,
        `info.Image is not a known field (did you mean info.image?): remove it; info accepts ${allowed}`,
        `info.volumes is not a known field: remove it; info accepts ${allowed}`,
      ].join('; '),
    );
  });

  it('unknown fields inside resources', () => {
    expect(reasonFor({ image: 'alpine', resources: { request: {}, limits: { gpu: '1' } } })).toBe(
      'info.resources.limits.gpu is not a known field: remove it; info.resources.limits accepts cpu, memory; ' +
        'info.resources.request is not a known field: remove it; info.resources accepts requests, limits',
    );
  });

  it('every bad field at once, each named', () => {
    const reason = reasonFor({ image: 'alpine', command: 'echo hi', args: [1], timeoutSeconds: 0, backoffLimit: 11 });
    expect(reason.split('; ')).toStrictEqual([
      'info.command must be a list of strings, for example ["sh", "-c", "echo hello"], not the string "echo hi"',
      'info.args[0] must be a string, not the number 1',
      'info.timeoutSeconds must be a whole number of seconds greater than 0, for example 3600, not the number 0',
      'info.backoffLimit must be a whole number from 0 to 10, for example 2, not the number 11',
    ]);
  });

  it(`more than ${MAX_LIST_ENTRIES} args or command entries`, () => {
    const tooMany = Array.from({ length: MAX_LIST_ENTRIES + 1 }, () => 'x');
    expect(reasonFor({ image: 'alpine', args: tooMany })).toBe('info.args has 101 entries; at most 100 are allowed');
    expect(reasonFor({ image: 'alpine', command: tooMany })).toBe('info.command has 101 entries; at most 100 are allowed');
  });

  it(`an entry longer than ${MAX_ENTRY_CHARS} characters`, () => {
    expect(reasonFor({ image: 'alpine', args: ['ok', 'x'.repeat(MAX_ENTRY_CHARS + 1)] })).toBe(
      'info.args[1] is 4097 characters long; at most 4096 are allowed',
    );
  });

  it('a text over MAX_INFO_BYTES, counted in UTF-8 bytes rather than characters', () => {
    const base = '{"image":"alpine"}';
    expect(reasonFor(base + ' '.repeat(MAX_INFO_BYTES - base.length + 1))).toBe(
      'info is 64.0 KiB; at most 64 KiB is allowed: keep large inputs out of info (bake them into the image or pass a URL in args)',
    );
    // 33,000 characters but 66,000+ bytes.
    const wide = JSON.stringify({ image: 'alpine', env: { TEXT: 'é'.repeat(33_000) } });
    expect(wide.length).toBeLessThan(MAX_INFO_BYTES);
    expect(reasonFor(wide)).toMatch(/^info is 64\.5 KiB; at most 64 KiB is allowed/);
    // Characters outside the BMP take 4 bytes for 2 UTF-16 units.
    const emoji = JSON.stringify({ image: 'alpine', env: { TEXT: '😀'.repeat(16_400) } });
    expect(emoji.length).toBeLessThan(MAX_INFO_BYTES);
    expect(reasonFor(emoji)).toMatch(/^info is 64\.1 KiB; at most 64 KiB is allowed/);
  });

  it('a huge text', () => {
    expect(reasonFor('x'.repeat(10 * 1024 * 1024))).toMatch(/^info is 10240 KiB; at most 64 KiB is allowed/);
  });

  it('env as a list of {name, value}: env is an object of name → value', () => {
    expect(reasonFor({ image: 'alpine', env: [{ name: 'A', value: 'b' }] })).toBe(
      'info.env must be an object mapping variable names to string values, for example {"LOG_LEVEL": "debug"}, not a list',
    );
  });

  it('invalid env variable names', () => {
    const rule = 'is not a valid environment variable name: use letters, digits, "_", "-" and ".", not starting with a digit, for example "LOG_LEVEL"';
    expect(reasonFor({ image: 'alpine', env: { '1ST': 'x', OK: 'y', 'A B': 'z', 'A=B': 'w' } })).toBe(
      [`info.env["1ST"] ${rule}`, `info.env["A B"] ${rule}`, `info.env["A=B"] ${rule}`].join('; '),
    );
  });

  it('non-string env values, showing how to quote them', () => {
    expect(reasonFor({ image: 'alpine', env: { PORT: 8080, DEBUG: true, X: null } })).toBe(
      'info.env.PORT must be a string, not the number 8080 (write "8080"); ' +
        'info.env.DEBUG must be a string, not the boolean true (write "true"); ' +
        'info.env.X must be a string, not null',
    );
  });

  it(`more than ${MAX_LIST_ENTRIES} env variables`, () => {
    const env = Object.fromEntries(Array.from({ length: MAX_LIST_ENTRIES + 1 }, (_, i) => [`V${i}`, 'x']));
    expect(reasonFor({ image: 'alpine', env })).toBe('info.env has 101 variables; at most 100 are allowed');
  });

  it('a "__proto__" key, which validation would otherwise drop silently', () => {
    expect(reasonFor('{"image": "alpine", "env": {"__proto__": "x"}}')).toBe(
      'info uses the key "__proto__", which is not allowed anywhere in info: remove or rename it',
    );
  });

  it('malformed quantities, and numbers where strings are needed', () => {
    expect(reasonFor({ image: 'alpine', resources: { limits: { cpu: 2, memory: '1 GB' }, requests: { memory: '-1Mi' } } })).toBe(
      'info.resources.requests.memory must be a Kubernetes quantity like "512Mi" or "2Gi" (got "-1Mi"); ' +
        'info.resources.limits.cpu must be a string, for example "500m" (half a CPU) or "2" (write "2", not 2); ' +
        'info.resources.limits.memory must be a Kubernetes quantity like "512Mi" or "2Gi" (got "1 GB")',
    );
  });

  it('a request above its limit', () => {
    expect(reasonFor({ image: 'alpine', resources: { requests: { cpu: '2', memory: '1Gi' }, limits: { cpu: '1500m', memory: '1G' } } })).toBe(
      'info.resources.requests.cpu ("2") must not exceed info.resources.limits.cpu ("1500m"): lower the request or raise the limit; ' +
        'info.resources.requests.memory ("1Gi") must not exceed info.resources.limits.memory ("1G"): lower the request or raise the limit',
    );
  });

  it.each([
    [{ timeoutSeconds: 1.5 }, 'info.timeoutSeconds must be a whole number of seconds greater than 0, for example 3600, not the number 1.5'],
    [{ timeoutSeconds: '60' }, 'info.timeoutSeconds must be a whole number of seconds greater than 0, for example 3600, not the string "60"'],
    [{ backoffLimit: -1 }, 'info.backoffLimit must be a whole number from 0 to 10, for example 2, not the number -1'],
    [{ backoffLimit: null }, 'info.backoffLimit must be a whole number from 0 to 10, for example 2, not null'],
    [{ ttlSecondsAfterFinished: 0 }, 'info.ttlSecondsAfterFinished must be a whole number of seconds, 300 or more (nightwatch reads the outcome from the finished Job), for example 86400, not the number 0'],
    [{ ttlSecondsAfterFinished: 1e300 }, 'info.ttlSecondsAfterFinished must be a whole number of seconds, 300 or more (nightwatch reads the outcome from the finished Job), for example 86400, not the number 1e+300'],
  ])('out-of-range numbers: %j', (fields, reason) => {
    expect(reasonFor({ image: 'alpine', ...fields })).toBe(reason);
  });
});

describe('taskInfoSchema with describeTaskInfoIssues, for per-field errors in an API', () => {
  it('gives one problem per bad field, keyed by its path', () => {
    const parsed = taskInfoSchema.safeParse({ image: '', args: ['ok', 7], extra: true });
    expect(parsed.success).toBe(false);
    expect(describeTaskInfoIssues(parsed.error?.issues ?? [])).toStrictEqual([
      { field: 'info.image', message: 'info.image must not be empty: set the container image, for example "alpine:3.20"' },
      { field: 'info.args[1]', message: 'info.args[1] must be a string, not the number 7' },
      {
        field: 'info.extra',
        message:
          'info.extra is not a known field: remove it; info accepts image, command, args, env, annotations, resources, timeoutSeconds, backoffLimit, ttlSecondsAfterFinished',
      },
    ]);
  });

  it('carries readable messages on the issues themselves', () => {
    const parsed = taskInfoSchema.safeParse({ image: 'alpine', timeoutSeconds: -5 });
    expect(parsed.error?.issues.map((i) => [i.path, i.message])).toStrictEqual([
      [['timeoutSeconds'], 'must be a whole number of seconds greater than 0, for example 3600, not the number -5'],
    ]);
  });

  it('infers TaskInfo from the schema, with backoffLimit always set', () => {
    expectTypeOf<TaskInfo['image']>().toEqualTypeOf<string>();
    expectTypeOf<TaskInfo['backoffLimit']>().toEqualTypeOf<number>();
    expectTypeOf<TaskInfo['env']>().toEqualTypeOf<Record<string, string> | undefined>();
    expectTypeOf<TaskInfo['args']>().toEqualTypeOf<string[] | undefined>();
  });
});

describe('validateTaskName', () => {
  it.each(['a', 'report', 'nightly-report-2024', '0', 'a'.repeat(63)])('accepts %s', (name) => {
    expect(validateTaskName(name)).toBeNull();
  });

  it('rejects an empty name', () => {
    expect(validateTaskName('')).toBe(
      'task name is empty: it becomes the Kubernetes Job name, so use lowercase letters, digits and "-", ' +
        'starting and ending with a letter or digit, for example "nightly-report"',
    );
  });

  it('rejects a name over 63 characters, because the Job name is copied into a pod label', () => {
    expect(validateTaskName('a'.repeat(64))).toBe(
      `task name "${'a'.repeat(40)}…" is 64 characters long; it becomes the Kubernetes Job name, which may be at most 63: shorten it`,
    );
  });

  it.each([
    ['Nightly_Report', 'nightly-report'],
    ['-report', 'report'],
    ['report-', 'report'],
    ['my.report', 'my-report'],
    ['report 1', 'report-1'],
  ])('rejects %j and suggests %j', (name, suggestion) => {
    expect(validateTaskName(name)).toBe(
      `task name ${JSON.stringify(name)} is not valid: it becomes the Kubernetes Job name, so use only lowercase letters, ` +
        `digits and "-", starting and ending with a letter or digit, for example ${JSON.stringify(suggestion)}`,
    );
  });

  it('rejects a name with nothing salvageable, without a bogus suggestion', () => {
    expect(validateTaskName('___')).toBe(
      'task name "___" is not valid: it becomes the Kubernetes Job name, so use only lowercase letters, digits and "-", ' +
        'starting and ending with a letter or digit',
    );
  });
});

describe('validateNamespaceName', () => {
  it.each(['default', 'demo', 'team-a', 'a'.repeat(63)])('accepts %s', (ns) => {
    expect(validateNamespaceName(ns)).toBeNull();
  });

  it.each(['', 'Demo', 'team_a', 'kube.system', 'a'.repeat(64)])('rejects %j, naming the namespace', (ns) => {
    expect(validateNamespaceName(ns)).toMatch(/^namespace .*(must name a Kubernetes namespace)/);
  });

  it('explains an invalid namespace', () => {
    expect(validateNamespaceName('Team_A')).toBe(
      'namespace "Team_A" is not valid: it must name a Kubernetes namespace, so use only lowercase letters, digits and "-", ' +
        'starting and ending with a letter or digit, for example "team-a"',
    );
  });
});

describe('info.annotations', () => {
  it('accepts qualified annotation keys with string values', () => {
    const parsed = parseTaskInfo(JSON.stringify({ image: 'alpine', annotations: { 'example.com/owner': 'team-a', note: 'x' } }));
    expect(parsed).toMatchObject({ ok: true, info: { annotations: { 'example.com/owner': 'team-a', note: 'x' } } });
  });

  it('rejects keys that are not Kubernetes qualified names, and non-string values', () => {
    expect(reasonFor({ image: 'alpine', annotations: { 'bad key!': 'x' } })).toMatch(/^info\.annotations\["bad key!"\] is not a valid annotation key/);
    expect(reasonFor({ image: 'alpine', annotations: { owner: 3 } })).toMatch(/^info\.annotations\.owner must be a string, not the number 3$/);
  });
});
