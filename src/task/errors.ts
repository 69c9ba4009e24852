// Who is to blame for a failed Kubernetes API call, and what to do about it:
//   task       the task's own fault (invalid spec, unknown namespace): fail it now, retrying cannot help
//   transient  the cluster's, the operator's or the network's: retry with backoff, show the error meanwhile
//   conflict   the object already exists: only the caller knows whether that is its own earlier create
//
// @kubernetes/client-node 2.x throws an ApiException { code: HTTP status, body, headers } for any
// non-2xx answer, with the body as the raw response text (a JSON Status object from the API server,
// or anything at all from a proxy); 401 comes with no body. Network failures surface from undici's
// fetch as TypeError("fetch failed") with the system error (code ECONNREFUSED, …) as its cause.
// ApiException is recognised by shape, not instanceof, to keep the client out of this pure module.

export type KubernetesErrorKind = 'task' | 'transient' | 'conflict';
export type ClassifiedKubernetesError = { kind: KubernetesErrorKind; reason: string };

/** The fields of a Kubernetes `Status` object (kind: Status) that explain a failure. */
export type KubernetesStatus = {
  code: number;
  reason?: string;
  message?: string;
  details?: { name?: string; group?: string; kind?: string };
};

const MAX_DETAIL_CHARS = 1000;

/**
 * The HTTP status and the API server's Status object of an ApiException, or null if `err` is not
 * an HTTP error answer from the API server (a network error, a bug).
 */
export function readKubernetesStatus(err: unknown): KubernetesStatus | null {
  if (typeof err !== 'object' || err === null) return null;
  const { code, body } = err as { code?: unknown; body?: unknown };
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 100 || code > 599 || !('body' in err)) return null;

  let status: unknown = body;
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body);
    } catch {
      // Not JSON: a proxy or load balancer answered. Its text is still the best explanation.
      const text = oneLine(body);
      return text ? { code, message: text } : { code };
    }
  }
  if (typeof status !== 'object' || status === null) return { code };
  const s = status as Record<string, unknown>;
  const details = typeof s.details === 'object' && s.details !== null ? (s.details as Record<string, unknown>) : {};
  const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
  return {
    code,
    ...(text(s.reason) && { reason: text(s.reason) }),
    ...(text(s.message) && { message: oneLine(text(s.message) ?? '') }),
    ...(Object.keys(details).length > 0 && {
      details: {
        ...(text(details.name) && { name: text(details.name) }),
        ...(text(details.group) && { group: text(details.group) }),
        ...(text(details.kind) && { kind: text(details.kind) }),
      },
    }),
  };
}

export function classifyKubernetesError(err: unknown): ClassifiedKubernetesError {
  const status = readKubernetesStatus(err);
  if (status) return classifyStatus(status);
  return classifyThrown(err);
}

const HTTP_REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * An admission webhook's or a ValidatingAdmissionPolicy's denial: 403 by default, 422 or 400 when
 * the policy says Invalid. Unlike a missing RBAC grant ("cannot create resource"), it is about this
 * task, and retrying cannot change it.
 */
const ADMISSION_DENIAL = /denied the request|denied request|ValidatingAdmissionPolicy|admission webhook/i;

function classifyStatus(s: KubernetesStatus): ClassifiedKubernetesError {
  const said = describeStatus(s);
  const name = s.details?.name;
  const message = s.message ?? '';
  if ([400, 403, 422].includes(s.code) && ADMISSION_DENIAL.test(message) && !/cannot \w+ resource/i.test(message)) {
    return { kind: 'task', reason: `the cluster's admission policy refused the Job (${said}); change the task to meet the policy, or ask the operator` };
  }
  switch (s.code) {
    case 400:
    case 422:
      return { kind: 'task', reason: `Kubernetes rejected the Job as invalid (${said}); fix the task's info` };
    case 413:
      return { kind: 'task', reason: `Kubernetes rejected the Job as too large (${said}); make the task's info smaller` };
    case 404:
      if (s.details?.kind === 'namespaces' && name) {
        return { kind: 'task', reason: `namespace '${name}' does not exist in the cluster; create it or fix the task` };
      }
      if (s.details?.kind === 'jobs' && name) {
        return { kind: 'task', reason: `Job '${name}' no longer exists (${said}); it was deleted before nightwatch saw it finish` };
      }
      // No object named: the API path itself is missing, which is the cluster's problem.
      return {
        kind: 'transient',
        reason: `Kubernetes API does not serve the request (${said}); check that the cluster serves batch/v1 Jobs; retrying`,
      };
    case 409:
      if (s.reason === undefined || s.reason === 'AlreadyExists') {
        const object = name ? `a Job named '${name}'` : 'the Job';
        return { kind: 'conflict', reason: `${object} already exists (${said})` };
      }
      return { kind: 'transient', reason: `the Job changed while nightwatch was updating it (${said}); retrying` };
    case 401:
      return {
        kind: 'transient',
        reason: `Kubernetes API rejected nightwatch's credentials (${said}); check the kubeconfig or service account token; retrying`,
      };
    case 403:
      if (/exceeded quota/i.test(s.message ?? '')) {
        return {
          kind: 'transient',
          reason: `the namespace's ResourceQuota is used up (${said}); free some quota or raise it; retrying`,
        };
      }
      return {
        kind: 'transient',
        reason: `Kubernetes API refused the request (${said}); grant nightwatch's account permission to manage Jobs in that namespace; retrying`,
      };
    case 429:
      return { kind: 'transient', reason: `Kubernetes API is throttling requests (${said}); retrying` };
    default:
      return s.code >= 500
        ? { kind: 'transient', reason: `Kubernetes API failed (${said}); retrying` }
        : { kind: 'transient', reason: `Kubernetes API answered unexpectedly (${said}); retrying` };
  }
}

/** "404 NotFound: namespaces "demo" not found". */
function describeStatus(s: KubernetesStatus): string {
  const head = `${s.code} ${s.reason ?? HTTP_REASONS[s.code] ?? 'error'}`;
  return s.message ? `${head}: ${truncate(s.message)}` : head;
}

// Error codes Node and undici put on network failures, grouped by what the operator should check.
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME']);
const TIMEOUT = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const TLS = /^(CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|ERR_TLS_|ERR_SSL_|ERR_OSSL_|HOSTNAME_MISMATCH)/;

function classifyThrown(err: unknown): ClassifiedKubernetesError {
  const chain = causes(err);
  for (const e of chain) {
    const code = typeof e.code === 'string' ? e.code : undefined;
    const detail = truncate(errorText(e) || code || 'no detail');
    if (code && UNREACHABLE.has(code)) {
      return { kind: 'transient', reason: `Kubernetes API unreachable (${detail}); retrying` };
    }
    if (code && DNS.has(code)) {
      return {
        kind: 'transient',
        reason: `Kubernetes API host could not be resolved (${detail}); check the server address in the kubeconfig; retrying`,
      };
    }
    if ((code && TIMEOUT.has(code)) || e.name === 'TimeoutError') {
      return { kind: 'transient', reason: `Kubernetes API did not answer in time (${detail}); retrying` };
    }
    if (code && TLS.test(code)) {
      return {
        kind: 'transient',
        reason: `TLS with the Kubernetes API failed (${detail}); check the certificate authority and server name in the kubeconfig; retrying`,
      };
    }
    if (e.name === 'AbortError') {
      return { kind: 'transient', reason: `the Kubernetes API request was aborted (${detail}); retrying` };
    }
  }
  const first = chain[0];
  if (first && /fetch failed|network|socket/i.test(first.message)) {
    const detail = chain.map(errorText).filter(Boolean).join(': ');
    return { kind: 'transient', reason: `Kubernetes API unreachable (${truncate(detail)}); retrying` };
  }
  const detail = first ? chain.map(errorText).filter(Boolean).join(': ') : String(err);
  return {
    kind: 'transient',
    reason: `Kubernetes client failed (${truncate(detail || 'no detail')}); check the kubeconfig and the worker's logs; retrying`,
  };
}

type ErrorLike = { name: string; message: string; code?: unknown };

/** `err`, its causes, and the errors an AggregateError (e.g. from trying IPv4 and IPv6) wraps. */
function causes(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0 && out.length < 10) {
    const e = queue.shift();
    if (typeof e !== 'object' || e === null || !('message' in e)) continue;
    const { name, message, code, cause, errors } = e as Record<string, unknown>;
    let text = typeof message === 'string' ? message : '';
    if (text === '' && Array.isArray(errors)) {
      text = errors.map((x) => (x instanceof Error ? x.message : '')).filter(Boolean).join(', ');
    }
    out.push({ name: typeof name === 'string' ? name : 'Error', message: text, code });
    if (cause !== undefined) queue.push(cause);
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return out;
}

function errorText(e: ErrorLike): string {
  return oneLine(e.message);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function truncate(text: string): string {
  return text.length > MAX_DETAIL_CHARS ? `${text.slice(0, MAX_DETAIL_CHARS)}…` : text;
}
