// The operator's policy (src/policy.ts) and its configuration (src/config.ts): pure rules, no stack.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Config } from '../../src/config.ts';
import {
  annotationProblem,
  applyPolicyDefaults,
  checkInfoAgainstPolicy,
  imageProblem,
  infoPolicyProblems,
  namespaceProblem,
  normalizeImage,
  podOptions,
  policyFromConfig,
  systemDomainOf,
  type Policy,
} from '../../src/policy.ts';
import { parseTaskInfo, type TaskInfo } from '../../src/task/info.ts';

/** Only what is given: no process environment leaks into these tests. */
const config = (env: Record<string, string> = {}): Config => loadConfig(env, '/nonexistent/namespace');
const policy = (env: Record<string, string> = {}): Policy => policyFromConfig(config(env));

function info(value: object): TaskInfo {
  const parsed = parseTaskInfo(JSON.stringify(value));
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.info;
}

describe('configuration', () => {
  it('has documented defaults', () => {
    const c = config();
    expect(c).toMatchObject({
      POD_ANNOTATIONS_ALLOWED: [],
      IMAGES_ALLOWED: [],
      TASK_DEFAULT_TIMEOUT: 86_400,
      TASK_MAX_TIMEOUT: 604_800,
      TASK_DEFAULT_TTL: 86_400,
      TASK_DEFAULT_REQUESTS: { cpu: '100m', memory: '128Mi' },
      TASK_DEFAULT_LIMITS: { memory: '1Gi' },
      TASK_MAX_RESOURCES: { cpu: '4', memory: '16Gi' },
      POD_RUN_AS_NON_ROOT: false,
      POD_RUN_AS_USER: 65532,
    });
    expect(c.IMAGE_PULL_POLICY).toBeUndefined();
    expect(c.NIGHTWATCH_NAMESPACE).toBeUndefined();
  });

  it('reads durations in seconds, minutes, hours or days, and "none"', () => {
    const c = config({ TASK_DEFAULT_TIMEOUT: '90m', TASK_MAX_TIMEOUT: '2d', TASK_DEFAULT_TTL: 'none' });
    expect([c.TASK_DEFAULT_TIMEOUT, c.TASK_MAX_TIMEOUT, c.TASK_DEFAULT_TTL]).toEqual([5_400, 172_800, null]);
    expect(config({ TASK_DEFAULT_TIMEOUT: '600' }).TASK_DEFAULT_TIMEOUT).toBe(600);
    expect(config({ TASK_MAX_TIMEOUT: 'none', TASK_DEFAULT_TIMEOUT: 'none' })).toMatchObject({ TASK_MAX_TIMEOUT: null, TASK_DEFAULT_TIMEOUT: null });
  });

  it('reads resource lists and "none"', () => {
    const c = config({ TASK_DEFAULT_REQUESTS: 'cpu=250m', TASK_DEFAULT_LIMITS: 'none', TASK_MAX_RESOURCES: 'memory=64Gi, cpu=16' });
    expect(c.TASK_DEFAULT_REQUESTS).toEqual({ cpu: '250m' });
    expect(c.TASK_DEFAULT_LIMITS).toEqual({});
    expect(c.TASK_MAX_RESOURCES).toEqual({ memory: '64Gi', cpu: '16' });
  });

  it('takes its own namespace from NIGHTWATCH_NAMESPACE, else POD_NAMESPACE, else the service-account file', () => {
    expect(config({ NIGHTWATCH_NAMESPACE: 'ops', POD_NAMESPACE: 'other' }).NIGHTWATCH_NAMESPACE).toBe('ops');
    expect(config({ POD_NAMESPACE: 'nightwatch' }).NIGHTWATCH_NAMESPACE).toBe('nightwatch');
    const dir = mkdtempSync(join(tmpdir(), 'nw-sa-'));
    try {
      writeFileSync(join(dir, 'namespace'), 'nightwatch-prod\n');
      expect(loadConfig({}, join(dir, 'namespace')).NIGHTWATCH_NAMESPACE).toBe('nightwatch-prod');
      expect(loadConfig({ POD_NAMESPACE: 'x' }, join(dir, 'namespace')).NIGHTWATCH_NAMESPACE).toBe('x');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(config().NIGHTWATCH_NAMESPACE).toBeUndefined();
  });

  it.each([
    [{ TASK_DEFAULT_TIMEOUT: '1w' }, /TASK_DEFAULT_TIMEOUT/],
    [{ TASK_DEFAULT_TIMEOUT: '8d' }, /TASK_DEFAULT_TIMEOUT \(8d\) must not exceed TASK_MAX_TIMEOUT \(7d\)/],
    [{ TASK_DEFAULT_TTL: '60s' }, /TASK_DEFAULT_TTL must be at least 300s/],
    [{ TASK_DEFAULT_REQUESTS: 'gpu=1' }, /TASK_DEFAULT_REQUESTS: "gpu=1" is not cpu=<quantity>/],
    [{ TASK_DEFAULT_REQUESTS: 'memory=lots' }, /TASK_DEFAULT_REQUESTS/],
    [{ TASK_DEFAULT_REQUESTS: 'memory=2Gi' }, /TASK_DEFAULT_REQUESTS: memory=2Gi exceeds TASK_DEFAULT_LIMITS memory=1Gi/],
    [{ TASK_DEFAULT_LIMITS: 'memory=32Gi' }, /TASK_DEFAULT_LIMITS: memory=32Gi exceeds TASK_MAX_RESOURCES memory=16Gi/],
    [{ POD_ANNOTATIONS_ALLOWED: 'a*b' }, /POD_ANNOTATIONS_ALLOWED: "a\*b"/],
    [{ POD_ANNOTATIONS_ALLOWED: 'has space' }, /POD_ANNOTATIONS_ALLOWED/],
    [{ IMAGES_ALLOWED: 'Bad Registry/' }, /IMAGES_ALLOWED/],
    [{ IMAGE_PULL_POLICY: 'Sometimes' }, /IMAGE_PULL_POLICY/],
    [{ ALLOWED_NAMESPACES: 'default,kube-system' }, /ALLOWED_NAMESPACES: namespace 'kube-system' is never open/],
    [{ ALLOWED_NAMESPACES: 'default,ops', NIGHTWATCH_NAMESPACE: 'ops' }, /ALLOWED_NAMESPACES: namespace 'ops' is never open to tasks: nightwatch itself runs there/],
    [{ NIGHTWATCH_NAMESPACE: 'Not_A_Namespace' }, /NIGHTWATCH_NAMESPACE/],
    [{ POD_RUN_AS_USER: '0' }, /POD_RUN_AS_USER/],
  ])('stops at start-up on %j', (env, message) => {
    expect(() => config(env)).toThrow(ConfigError);
    expect(() => config(env)).toThrow(message);
  });
});

describe('namespaces', () => {
  const open = { allowedNamespaces: ['*'], ownNamespace: 'nightwatch' };

  it('keeps kube-* and nightwatch\'s own namespace closed even with *', () => {
    for (const ns of ['kube-system', 'kube-public', 'kube-node-lease', 'kube-anything']) {
      expect(namespaceProblem(open, ns)).toMatch(new RegExp(`^namespace '${ns}' is never open to tasks: kube-\\* namespaces`));
    }
    expect(namespaceProblem(open, 'nightwatch')).toMatch(/^namespace 'nightwatch' is never open to tasks: nightwatch itself runs there \(NIGHTWATCH_NAMESPACE\)/);
    expect(namespaceProblem(open, 'team-a')).toBeNull();
    expect(namespaceProblem(open, 'kubeflow')).toBeNull();
  });

  it('names the allowed list for a namespace that is not in it', () => {
    expect(namespaceProblem({ allowedNamespaces: ['a', 'b'] }, 'c')).toBe(
      "namespace 'c' is not open to tasks (ALLOWED_NAMESPACES is a,b): move the task to one of those namespaces, or ask the operator to allow it",
    );
    expect(namespaceProblem({ allowedNamespaces: ['a'] }, 'a')).toBeNull();
  });
});

describe('pod annotations', () => {
  it.each([
    ['container.apparmor.security.beta.kubernetes.io/task', 'kubernetes.io'],
    ['seccomp.security.alpha.kubernetes.io/pod', 'kubernetes.io'],
    ['cluster-autoscaler.kubernetes.io/safe-to-evict', 'kubernetes.io'],
    ['kubernetes.io/psp', 'kubernetes.io'],
    ['node.k8s.io/x', 'k8s.io'],
    ['pod-complete.stage.kwok.x-k8s.io/delay', 'x-k8s.io'],
    ['iam.amazonaws.com/role', 'amazonaws.com'],
    ['eks.amazonaws.com/role-arn', 'amazonaws.com'],
    ['sidecar.istio.io/inject', 'istio.io'],
    ['vault.hashicorp.com/agent-inject', 'hashicorp.com'],
    ['k8s.v1.cni.cncf.io/networks', 'cncf.io'],
    ['karpenter.sh/do-not-disrupt', 'karpenter.sh'],
  ])('treats %s as a system key (%s)', (key, domain) => {
    expect(systemDomainOf(key)).toBe(domain);
  });

  it.each(['owner', 'example.com/owner', 'prometheus.io/scrape', 'nightwatch.io/kwok-run-duration', 'notkubernetes.io/x', 'k8s.io.example.com/x'])(
    'treats %s as an ordinary key',
    (key) => expect(systemDomainOf(key)).toBeNull(),
  );

  it('allows nothing by default', () => {
    expect(annotationProblem(policy(), 'example.com/owner')).toMatch(/accepts no pod annotations \(POD_ANNOTATIONS_ALLOWED is empty\)/);
    expect(annotationProblem(policy(), 'owner')).not.toBeNull();
  });

  it('matches exact keys, whole domains ("domain/") and prefixes ("prefix*")', () => {
    const p = policy({ POD_ANNOTATIONS_ALLOWED: 'example.com/,prometheus.io/scrape,nightwatch.io/kwok-*,owner' });
    for (const ok of ['example.com/anything', 'prometheus.io/scrape', 'nightwatch.io/kwok-run-duration', 'nightwatch.io/kwok-outcome', 'owner']) {
      expect(annotationProblem(p, ok), ok).toBeNull();
    }
    for (const refused of ['sub.example.com/x', 'prometheus.io/port', 'nightwatch.io/task-id', 'owner2', 'example.com']) {
      expect(annotationProblem(p, refused), refused).toMatch(/matching example\.com\/, prometheus\.io\/scrape, nightwatch\.io\/kwok-\*, owner \(POD_ANNOTATIONS_ALLOWED\)/);
    }
  });

  it('never opens a system key through "*" or a prefix that does not name its domain', () => {
    const p = policy({ POD_ANNOTATIONS_ALLOWED: '*,s*,kubernetes.io/' });
    expect(annotationProblem(p, 'example.com/owner')).toBeNull();
    expect(annotationProblem(p, 'kubernetes.io/x')).toBeNull();
    expect(annotationProblem(p, 'sidecar.istio.io/inject')).toMatch(/sidecar\.istio\.io is a system domain \(under istio\.io\)/);
    expect(annotationProblem(p, 'container.apparmor.security.beta.kubernetes.io/task')).toMatch(/system domain \(under kubernetes\.io\)/);
  });

  it('opens a system key the operator names explicitly, and only that', () => {
    const p = policy({ POD_ANNOTATIONS_ALLOWED: 'sidecar.istio.io/inject,cluster-autoscaler.kubernetes.io/' });
    expect(annotationProblem(p, 'sidecar.istio.io/inject')).toBeNull();
    expect(annotationProblem(p, 'cluster-autoscaler.kubernetes.io/safe-to-evict')).toBeNull();
    expect(annotationProblem(p, 'sidecar.istio.io/status')).not.toBeNull();
    expect(annotationProblem(p, 'traffic.sidecar.istio.io/excludeOutboundPorts')).not.toBeNull();
  });
});

describe('images', () => {
  it.each([
    ['alpine', 'docker.io/library/alpine'],
    ['alpine:3.20', 'docker.io/library/alpine:3.20'],
    ['acme/app:1', 'docker.io/acme/app:1'],
    ['docker.io/alpine', 'docker.io/library/alpine'],
    ['index.docker.io/acme/app', 'docker.io/acme/app'],
    ['ghcr.io/acme/app@sha256:abc', 'ghcr.io/acme/app@sha256:abc'],
    ['localhost:5000/app', 'localhost:5000/app'],
    ['registry:5000/app', 'registry:5000/app'],
  ])('normalizes %s to %s', (ref, full) => expect(normalizeImage(ref)).toBe(full));

  it('allows any image by default', () => {
    expect(imageProblem(policy(), 'evil.example/miner:latest')).toBeNull();
  });

  it('allows registries, repository prefixes and repositories, with any tag or digest', () => {
    const p = policy({ IMAGES_ALLOWED: 'ghcr.io/acme/,docker.io/library/alpine,registry.internal:5000/' });
    for (const ok of ['ghcr.io/acme/etl:2', 'ghcr.io/acme/team/etl@sha256:0123456789abcdef0123456789abcdef', 'alpine', 'alpine:3.20', 'docker.io/library/alpine:3', 'registry.internal:5000/x/y']) {
      expect(imageProblem(p, ok), ok).toBeNull();
    }
    for (const refused of ['ghcr.io/acmeevil/x', 'ghcr.io/other/x', 'alpinex', 'busybox', 'evil.io/docker.io/library/alpine', 'registry.internal/x']) {
      expect(imageProblem(p, refused), refused).toMatch(/is not from a registry or repository this server accepts \(IMAGES_ALLOWED is /);
    }
    expect(imageProblem(p, 'busybox')).toContain('"busybox" (docker.io/library/busybox)');
  });

  it('reads Docker Hub shorthand in the allow-list', () => {
    const p = policy({ IMAGES_ALLOWED: 'alpine,acme/' });
    expect(imageProblem(p, 'docker.io/library/alpine:3')).toBeNull();
    expect(imageProblem(p, 'acme/tool')).toBeNull();
    expect(imageProblem(p, 'busybox')).not.toBeNull();
  });
});

describe('infoPolicyProblems', () => {
  const p = policy({ POD_ANNOTATIONS_ALLOWED: 'example.com/', IMAGES_ALLOWED: 'ghcr.io/acme/' });

  it('names every refused field', () => {
    const problems = infoPolicyProblems(
      p,
      info({
        image: 'alpine',
        annotations: { 'example.com/ok': 'y', 'iam.amazonaws.com/role': 'admin', other: 'x' },
        timeoutSeconds: 8 * 86_400,
        resources: { requests: { cpu: '8' }, limits: { memory: '17Gi' } },
      }),
    );
    expect(problems.map((x) => x.field)).toEqual([
      'info.image',
      'info.annotations["iam.amazonaws.com/role"]',
      'info.annotations["other"]',
      'info.timeoutSeconds',
      'info.resources.requests.cpu',
      'info.resources.limits.memory',
    ]);
    for (const problem of problems) expect(problem.message.startsWith(problem.field)).toBe(true);
    expect(problems[3]!.message).toBe(
      'info.timeoutSeconds (691200) is more than this server allows, 604800 (7d, TASK_MAX_TIMEOUT): lower it, or split the work into shorter tasks',
    );
    expect(problems[5]!.message).toBe('info.resources.limits.memory ("17Gi") is more than this server allows per task, "16Gi" (TASK_MAX_RESOURCES): lower it');
  });

  it('accepts what is within the policy, maxima included', () => {
    expect(
      infoPolicyProblems(p, info({ image: 'ghcr.io/acme/x', timeoutSeconds: 604_800, resources: { limits: { cpu: '4000m', memory: '16384Mi' } } })),
    ).toEqual([]);
  });

  it('has no maximum when the operator turns it off', () => {
    const open = policy({ TASK_MAX_TIMEOUT: 'none', TASK_DEFAULT_TIMEOUT: 'none', TASK_MAX_RESOURCES: 'none' });
    expect(infoPolicyProblems(open, info({ image: 'a', timeoutSeconds: 10 ** 8, resources: { limits: { cpu: '1k' } } }))).toEqual([]);
  });

  it('joins the problems into one reason for the worker', () => {
    const checked = checkInfoAgainstPolicy(p, info({ image: 'ghcr.io/acme/x', annotations: { 'sidecar.istio.io/inject': 'false' } }));
    expect(checked).toEqual({
      ok: false,
      reason: expect.stringMatching(/^info\.annotations\["sidecar\.istio\.io\/inject"\] is not allowed: sidecar\.istio\.io is a system domain/),
    });
  });
});

describe('applyPolicyDefaults', () => {
  const p = policy();

  it('fills in timeout, TTL, requests and limits where the task is silent', () => {
    expect(applyPolicyDefaults(p, info({ image: 'alpine' }))).toStrictEqual({
      image: 'alpine',
      backoffLimit: 0,
      timeoutSeconds: 86_400,
      ttlSecondsAfterFinished: 86_400,
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
    });
    expect(checkInfoAgainstPolicy(p, info({ image: 'alpine' }))).toMatchObject({ ok: true, info: { timeoutSeconds: 86_400 } });
  });

  it("keeps the task's own values", () => {
    const own = info({ image: 'a', timeoutSeconds: 60, ttlSecondsAfterFinished: 600, resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } } });
    expect(applyPolicyDefaults(p, own)).toStrictEqual(own);
  });

  it('never contradicts the task: a default request is lowered to its limit, a default limit raised to its request', () => {
    const low = applyPolicyDefaults(p, info({ image: 'a', resources: { limits: { memory: '64Mi', cpu: '50m' } } }));
    expect(low.resources).toStrictEqual({ requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '50m', memory: '64Mi' } });
    const high = applyPolicyDefaults(p, info({ image: 'a', resources: { requests: { memory: '4Gi' } } }));
    expect(high.resources).toStrictEqual({ requests: { cpu: '100m', memory: '4Gi' }, limits: { memory: '4Gi' } });
  });

  it('adds nothing when the operator has no defaults', () => {
    const none = policy({ TASK_DEFAULT_TIMEOUT: 'none', TASK_DEFAULT_TTL: 'none', TASK_DEFAULT_REQUESTS: 'none', TASK_DEFAULT_LIMITS: 'none' });
    expect(applyPolicyDefaults(none, info({ image: 'a' }))).toStrictEqual({ image: 'a', backoffLimit: 0 });
  });

  it('does not change the info it is given', () => {
    const given = info({ image: 'a', resources: { limits: { memory: '64Mi' } } });
    const copy = structuredClone(given);
    applyPolicyDefaults(p, given);
    expect(given).toStrictEqual(copy);
  });
});

describe('podOptions', () => {
  it('runs as root-less uid 65532 only with the switch, and passes the pull policy', () => {
    expect(podOptions(policy())).toStrictEqual({});
    expect(podOptions(policy({ POD_RUN_AS_NON_ROOT: 'true', IMAGE_PULL_POLICY: 'Always' }))).toStrictEqual({ runAsUser: 65532, imagePullPolicy: 'Always' });
    expect(podOptions(policy({ POD_RUN_AS_NON_ROOT: 'true', POD_RUN_AS_USER: '1000' }))).toStrictEqual({ runAsUser: 1000 });
  });
});
