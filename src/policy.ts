// The operator's policy for tasks, in one place: which namespaces, pod annotations and images a
// task may use, the run time and resources it gets when it asks for none and the most it may ask
// for, and how its pod is hardened. Built from Config; enforced by the API (a refusal naming the
// field) and by the worker (loadTask: a row inserted any other way fails with the same words), and
// the defaults are applied by the worker just before the Job is built. Pure module: no I/O.
import type { Config } from './config.ts';
import { MIN_TTL_SECONDS, QUANTITY, quantityValue, type TaskInfo, type TaskInfoProblem } from './task/info.ts';
import type { PodOptions } from './task/job.ts';

export type ResourceName = 'cpu' | 'memory';
export type ResourceList = Partial<Record<ResourceName, string>>;
export type ImagePullPolicy = 'Always' | 'IfNotPresent' | 'Never';

export interface Policy {
  /** ALLOWED_NAMESPACES; `*` opens every namespace except the closed ones. */
  allowedNamespaces: readonly string[];
  /** NIGHTWATCH_NAMESPACE: where nightwatch itself runs; never open to tasks. */
  ownNamespace?: string | undefined;
  /** POD_ANNOTATIONS_ALLOWED: exact keys, `domain/` (every key of that domain) or `prefix*`. */
  annotationsAllowed: readonly string[];
  /** IMAGES_ALLOWED: registries or repository prefixes (`ghcr.io/acme/`) or repositories; empty allows any. */
  imagesAllowed: readonly string[];
  /** IMAGE_PULL_POLICY; unset leaves Kubernetes' default. */
  imagePullPolicy?: ImagePullPolicy | undefined;
  /** TASK_DEFAULT_TIMEOUT, TASK_MAX_TIMEOUT, TASK_DEFAULT_TTL, in seconds; undefined: none. */
  defaultTimeoutSeconds?: number | undefined;
  maxTimeoutSeconds?: number | undefined;
  defaultTtlSeconds?: number | undefined;
  /** TASK_DEFAULT_REQUESTS, TASK_DEFAULT_LIMITS, TASK_MAX_RESOURCES. */
  defaultRequests: ResourceList;
  defaultLimits: ResourceList;
  maxResources: ResourceList;
  /** POD_RUN_AS_NON_ROOT with POD_RUN_AS_USER: the uid every task's container runs as; undefined: the image's user. */
  runAsUser?: number | undefined;
}

export function policyFromConfig(config: Config): Policy {
  return {
    allowedNamespaces: config.ALLOWED_NAMESPACES,
    ownNamespace: config.NIGHTWATCH_NAMESPACE,
    annotationsAllowed: config.POD_ANNOTATIONS_ALLOWED,
    imagesAllowed: config.IMAGES_ALLOWED,
    imagePullPolicy: config.IMAGE_PULL_POLICY,
    defaultTimeoutSeconds: config.TASK_DEFAULT_TIMEOUT ?? undefined,
    maxTimeoutSeconds: config.TASK_MAX_TIMEOUT ?? undefined,
    defaultTtlSeconds: config.TASK_DEFAULT_TTL ?? undefined,
    defaultRequests: config.TASK_DEFAULT_REQUESTS,
    defaultLimits: config.TASK_DEFAULT_LIMITS,
    maxResources: config.TASK_MAX_RESOURCES,
    runAsUser: config.POD_RUN_AS_NON_ROOT ? config.POD_RUN_AS_USER : undefined,
  };
}

/** What buildJob needs from the policy: how every task's pod is run. */
export function podOptions(policy: Policy): PodOptions {
  return {
    ...(policy.imagePullPolicy !== undefined && { imagePullPolicy: policy.imagePullPolicy }),
    ...(policy.runAsUser !== undefined && { runAsUser: policy.runAsUser }),
  };
}

// ---------------------------------------------------------------------------------------------
// Namespaces

/** Namespaces no task may target, whatever ALLOWED_NAMESPACES says: the cluster's own. */
export const CLOSED_NAMESPACE_PREFIX = 'kube-';

/** Why `namespace` is closed to tasks whatever ALLOWED_NAMESPACES says, or null. */
function closedNamespace(policy: Pick<Policy, 'ownNamespace'>, namespace: string): string | null {
  if (namespace.startsWith(CLOSED_NAMESPACE_PREFIX)) {
    return `namespace '${namespace}' is never open to tasks: kube-* namespaces belong to the cluster itself (even with ALLOWED_NAMESPACES=*); use a namespace of your own`;
  }
  if (policy.ownNamespace !== undefined && namespace === policy.ownNamespace) {
    return `namespace '${namespace}' is never open to tasks: nightwatch itself runs there (NIGHTWATCH_NAMESPACE), even with ALLOWED_NAMESPACES=*; use another namespace`;
  }
  return null;
}

/** null if tasks may target `namespace`, else why not (the namespace name is assumed valid). */
export function namespaceProblem(policy: Pick<Policy, 'allowedNamespaces' | 'ownNamespace'>, namespace: string): string | null {
  const allowed = policy.allowedNamespaces;
  if (!allowed.includes('*') && !allowed.includes(namespace)) {
    return `namespace '${namespace}' is not open to tasks (ALLOWED_NAMESPACES is ${allowed.join(',')}): move the task to one of those namespaces, or ask the operator to allow it`;
  }
  return closedNamespace(policy, namespace);
}

// ---------------------------------------------------------------------------------------------
// Pod annotations

/**
 * Annotation domains that components of the cluster act on: security (AppArmor, seccomp), identity
 * and credentials (IAM roles, Vault and Azure workload identity), the network (service meshes,
 * Multus, Calico), scheduling and eviction (cluster autoscaler, Karpenter) and admission policy.
 * A key in one of these domains, or in a subdomain of one, is never allowed unless an entry of
 * POD_ANNOTATIONS_ALLOWED starts with that key's own domain and `/` (`sidecar.istio.io/inject`,
 * `sidecar.istio.io/`): `*` or a prefix without the domain never opens them.
 */
export const SYSTEM_ANNOTATION_DOMAINS = [
  'kubernetes.io', // includes container.apparmor.security.beta.kubernetes.io, cluster-autoscaler.kubernetes.io, kubectl.kubernetes.io
  'k8s.io',
  'x-k8s.io', // cluster API, KWOK
  'openshift.io',
  'amazonaws.com', // iam.amazonaws.com, eks.amazonaws.com
  'azure.com',
  'azure.workload.identity',
  'cloud.google.com',
  'gke.io',
  'istio.io', // sidecar.istio.io, traffic.sidecar.istio.io, proxy.istio.io
  'linkerd.io',
  'kuma.io',
  'hashicorp.com', // vault.hashicorp.com (secret injection), consul.hashicorp.com
  'cncf.io', // k8s.v1.cni.cncf.io (Multus networks)
  'projectcalico.org',
  'cilium.io',
  'karpenter.sh',
  'kyverno.io',
  'gatekeeper.sh',
  'cert-manager.io',
  'dapr.io',
] as const;

function annotationDomain(key: string): string | null {
  const slash = key.indexOf('/');
  return slash < 0 ? null : key.slice(0, slash);
}

/** The system domain `key` falls under, or null. */
export function systemDomainOf(key: string): string | null {
  const domain = annotationDomain(key);
  if (domain === null) return null;
  return SYSTEM_ANNOTATION_DOMAINS.find((d) => domain === d || domain.endsWith(`.${d}`)) ?? null;
}

function entryMatches(entry: string, key: string): boolean {
  if (entry.endsWith('*')) return key.startsWith(entry.slice(0, -1));
  if (entry.endsWith('/')) return key.startsWith(entry) && !key.slice(entry.length).includes('/');
  return key === entry;
}

/** null if a task may set the pod annotation `key`, else why not. */
export function annotationProblem(policy: Pick<Policy, 'annotationsAllowed'>, key: string): string | null {
  const system = systemDomainOf(key);
  const domain = annotationDomain(key);
  const allowed = policy.annotationsAllowed.some(
    (entry) => entryMatches(entry, key) && (system === null || entry.startsWith(`${domain}/`)),
  );
  if (allowed) return null;
  if (system !== null) {
    return (
      `is not allowed: ${domain} is a system domain (under ${system}) that cluster components act on, ` +
      'so only the operator can open such a key, by naming it in POD_ANNOTATIONS_ALLOWED: remove it'
    );
  }
  const list = policy.annotationsAllowed;
  return list.length === 0
    ? 'is not allowed: this server accepts no pod annotations (POD_ANNOTATIONS_ALLOWED is empty): remove it, or ask the operator to allow it'
    : `is not allowed: this server accepts pod annotations matching ${list.join(', ')} (POD_ANNOTATIONS_ALLOWED): remove it, or ask the operator to allow it`;
}

// ---------------------------------------------------------------------------------------------
// Images

const DOCKER_HUB = 'docker.io';

function looksLikeRegistry(component: string): boolean {
  return component === 'localhost' || component.includes('.') || component.includes(':') || component.startsWith('[');
}

/**
 * An image reference (or an IMAGES_ALLOWED entry) in full: `alpine:3.20` →
 * `docker.io/library/alpine:3.20`, `acme/app` → `docker.io/acme/app`; other registries unchanged.
 */
export function normalizeImage(reference: string): string {
  const slash = reference.indexOf('/');
  const first = slash < 0 ? '' : reference.slice(0, slash);
  let registry = DOCKER_HUB;
  let path = reference;
  if (slash >= 0 && looksLikeRegistry(first)) {
    registry = first === 'index.docker.io' || first === 'registry-1.docker.io' ? DOCKER_HUB : first;
    path = reference.slice(slash + 1);
  }
  if (registry === DOCKER_HUB && path !== '' && !path.includes('/')) path = `library/${path}`;
  return `${registry}/${path}`;
}

/** The repository of a full reference: without its tag and digest. */
function repositoryOf(full: string): string {
  const noDigest = full.split('@')[0]!;
  const lastSlash = noDigest.lastIndexOf('/');
  const colon = noDigest.indexOf(':', lastSlash + 1);
  return colon < 0 ? noDigest : noDigest.slice(0, colon);
}

function imageEntryMatches(entry: string, full: string): boolean {
  if (entry.endsWith('/')) {
    // `ghcr.io/` is a registry; `acme/` is shorthand for docker.io/acme/.
    const prefix = looksLikeRegistry(entry.slice(0, -1).split('/')[0]!) ? entry : `${DOCKER_HUB}/${entry}`;
    return full.startsWith(prefix);
  }
  const wanted = normalizeImage(entry);
  return full === wanted || repositoryOf(full) === wanted;
}

/** null if a task may run `image`, else why not. */
export function imageProblem(policy: Pick<Policy, 'imagesAllowed'>, image: string): string | null {
  if (policy.imagesAllowed.length === 0) return null;
  const full = normalizeImage(image);
  if (policy.imagesAllowed.some((entry) => imageEntryMatches(entry, full))) return null;
  return (
    `is not allowed: ${JSON.stringify(image)}${full !== image ? ` (${full})` : ''} is not from a registry or repository this server accepts ` +
    `(IMAGES_ALLOWED is ${policy.imagesAllowed.join(', ')}): use an image from one of those`
  );
}

// ---------------------------------------------------------------------------------------------
// Run time and resources

export function formatSeconds(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

const RESOURCES: readonly ResourceName[] = ['cpu', 'memory'];

/**
 * Everything in `info` the policy refuses, one problem per field, in the words and field names of
 * describeTaskInfoIssues. `info` has passed taskInfoSchema.
 */
export function infoPolicyProblems(policy: Policy, info: TaskInfo): TaskInfoProblem[] {
  const problems: TaskInfoProblem[] = [];
  const imageWhy = imageProblem(policy, info.image);
  if (imageWhy) problems.push({ field: 'info.image', message: `info.image ${imageWhy}` });

  for (const key of Object.keys(info.annotations ?? {})) {
    const why = annotationProblem(policy, key);
    const field = `info.annotations[${JSON.stringify(key)}]`;
    if (why) problems.push({ field, message: `${field} ${why}` });
  }

  if (policy.maxTimeoutSeconds !== undefined && info.timeoutSeconds !== undefined && info.timeoutSeconds > policy.maxTimeoutSeconds) {
    problems.push({
      field: 'info.timeoutSeconds',
      message:
        `info.timeoutSeconds (${info.timeoutSeconds}) is more than this server allows, ${policy.maxTimeoutSeconds} ` +
        `(${formatSeconds(policy.maxTimeoutSeconds)}, TASK_MAX_TIMEOUT): lower it, or split the work into shorter tasks`,
    });
  }

  for (const kind of ['requests', 'limits'] as const) {
    for (const name of RESOURCES) {
      const value = info.resources?.[kind]?.[name];
      const max = policy.maxResources[name];
      if (value === undefined || max === undefined || quantityValue(value) <= quantityValue(max)) continue;
      const field = `info.resources.${kind}.${name}`;
      problems.push({
        field,
        message: `${field} (${JSON.stringify(value)}) is more than this server allows per task, ${JSON.stringify(max)} (TASK_MAX_RESOURCES): lower it`,
      });
    }
  }
  return problems;
}

/**
 * `info` with the operator's defaults filled in where the task is silent: timeout, TTL, requests
 * and limits. A default never contradicts the task: a default request above the task's own limit
 * is lowered to that limit, and a default limit below the task's own request is raised to it.
 */
export function applyPolicyDefaults(policy: Policy, info: TaskInfo): TaskInfo {
  const requests: ResourceList = {};
  const limits: ResourceList = {};
  for (const name of RESOURCES) {
    const ownRequest = info.resources?.requests?.[name];
    const ownLimit = info.resources?.limits?.[name];
    let limit = ownLimit ?? policy.defaultLimits[name];
    if (ownLimit === undefined && limit !== undefined && ownRequest !== undefined && quantityValue(ownRequest) > quantityValue(limit)) {
      limit = ownRequest;
    }
    let request = ownRequest ?? policy.defaultRequests[name];
    if (ownRequest === undefined && request !== undefined && limit !== undefined && quantityValue(request) > quantityValue(limit)) {
      request = limit;
    }
    if (request !== undefined) requests[name] = request;
    if (limit !== undefined) limits[name] = limit;
  }
  const hasRequests = Object.keys(requests).length > 0;
  const hasLimits = Object.keys(limits).length > 0;
  const timeoutSeconds = info.timeoutSeconds ?? policy.defaultTimeoutSeconds;
  const ttlSecondsAfterFinished = info.ttlSecondsAfterFinished ?? policy.defaultTtlSeconds;
  const { resources: _ignored, ...rest } = info;
  return {
    ...rest,
    ...(timeoutSeconds !== undefined && { timeoutSeconds }),
    ...(ttlSecondsAfterFinished !== undefined && { ttlSecondsAfterFinished }),
    ...((hasRequests || hasLimits) && {
      resources: { ...(hasRequests && { requests }), ...(hasLimits && { limits }) },
    }),
  };
}

export type PolicyCheck = { ok: true; info: TaskInfo } | { ok: false; reason: string };

/**
 * The worker's check of a valid `info` (the namespace is checked apart, by namespaceProblem):
 * everything the policy refuses, as one reason; else `info` with the defaults applied.
 */
export function checkInfoAgainstPolicy(policy: Policy, info: TaskInfo): PolicyCheck {
  const problems = infoPolicyProblems(policy, info);
  if (problems.length > 0) return { ok: false, reason: problems.map((p) => p.message).join('; ') };
  return { ok: true, info: applyPolicyDefaults(policy, info) };
}

// ---------------------------------------------------------------------------------------------
// Configuration checks (loadConfig reports these at start-up)

const ANNOTATION_ENTRY = /^[A-Za-z0-9][-A-Za-z0-9_./]*(\*|\/)?$|^\*$/;
const IMAGE_ENTRY = /^[a-z0-9[][-a-zA-Z0-9_.:/@[\]]*$/;

/** Problems with the policy variables in `config`, each naming its variable; empty when all is well. */
export function policyConfigProblems(config: Config): string[] {
  const problems: string[] = [];
  for (const entry of config.POD_ANNOTATIONS_ALLOWED) {
    if (!ANNOTATION_ENTRY.test(entry) || entry.slice(0, -1).includes('*')) {
      problems.push(
        `POD_ANNOTATIONS_ALLOWED: ${JSON.stringify(entry)} is not an annotation key, a domain ending in "/" or a prefix ending in "*"`,
      );
    }
  }
  for (const entry of config.IMAGES_ALLOWED) {
    if (!IMAGE_ENTRY.test(entry)) {
      problems.push(`IMAGES_ALLOWED: ${JSON.stringify(entry)} is not a registry or repository like "ghcr.io/acme/" or "docker.io/library/alpine"`);
    }
  }
  for (const ns of config.ALLOWED_NAMESPACES) {
    const closed = ns === '*' ? null : closedNamespace({ ownNamespace: config.NIGHTWATCH_NAMESPACE }, ns);
    if (closed) problems.push(`ALLOWED_NAMESPACES: ${closed}`);
  }
  const maxTimeout = config.TASK_MAX_TIMEOUT;
  if (config.TASK_DEFAULT_TIMEOUT != null && maxTimeout != null && config.TASK_DEFAULT_TIMEOUT > maxTimeout) {
    problems.push(
      `TASK_DEFAULT_TIMEOUT (${formatSeconds(config.TASK_DEFAULT_TIMEOUT)}) must not exceed TASK_MAX_TIMEOUT (${formatSeconds(maxTimeout)})`,
    );
  }
  if (config.TASK_DEFAULT_TTL != null && config.TASK_DEFAULT_TTL < MIN_TTL_SECONDS) {
    problems.push(
      `TASK_DEFAULT_TTL must be at least ${MIN_TTL_SECONDS}s (nightwatch reads a task's outcome from its finished Job), or "none" to keep finished Jobs`,
    );
  }
  for (const name of RESOURCES) {
    const request = config.TASK_DEFAULT_REQUESTS[name];
    const limit = config.TASK_DEFAULT_LIMITS[name];
    const max = config.TASK_MAX_RESOURCES[name];
    if (request !== undefined && limit !== undefined && quantityValue(request) > quantityValue(limit)) {
      problems.push(`TASK_DEFAULT_REQUESTS: ${name}=${request} exceeds TASK_DEFAULT_LIMITS ${name}=${limit}`);
    }
    for (const [variable, value] of [['TASK_DEFAULT_REQUESTS', request], ['TASK_DEFAULT_LIMITS', limit]] as const) {
      if (value !== undefined && max !== undefined && quantityValue(value) > quantityValue(max)) {
        problems.push(`${variable}: ${name}=${value} exceeds TASK_MAX_RESOURCES ${name}=${max}`);
      }
    }
  }
  return problems;
}

/** `cpu=100m,memory=128Mi` (or `none`) → { cpu: '100m', memory: '128Mi' }; throws a message on a bad entry. */
export function parseResourceList(text: string): ResourceList {
  const out: ResourceList = {};
  if (text.trim() === 'none') return out;
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [name, value, ...rest] = part.split('=').map((s) => s.trim());
    if (rest.length > 0 || (name !== 'cpu' && name !== 'memory') || value === undefined || !QUANTITY.test(value)) {
      throw new Error(`${JSON.stringify(part)} is not cpu=<quantity> or memory=<quantity>; write for example cpu=500m,memory=256Mi, or none`);
    }
    if (out[name] !== undefined) throw new Error(`${name} is given twice`);
    out[name] = value;
  }
  return out;
}
