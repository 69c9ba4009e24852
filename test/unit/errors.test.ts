import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiException, BatchV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyKubernetesError, readKubernetesStatus } from '../../src/task/errors.ts';

const HEADERS = { 'content-type': 'application/json' };

/** A Status object as the API server sends it. */
function status(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details && { details }), code };
}

/** An ApiException exactly as client-node 2.x throws it for a non-2xx answer: the body is the raw text. */
function apiException(code: number, body: unknown): ApiException<unknown> {
  return new ApiException(code, 'Unknown API Status Code!', typeof body === 'string' ? body : JSON.stringify(body), HEADERS);
}

function systemError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, errno: -111, syscall: 'connect' });
}

const NAMESPACE_MISSING = status(404, 'NotFound', 'namespaces "demo" not found', { name: 'demo', kind: 'namespaces' });
const INVALID = status(
  422,
  'Invalid',
  'Job.batch "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label must consist of lower case alphanumeric characters',
  { name: 'Bad_Name', group: 'batch', kind: 'Job', causes: [{ reason: 'FieldValueInvalid', field: 'metadata.name' }] },
);
const ALREADY_EXISTS = status(409, 'AlreadyExists', 'jobs.batch "report" already exists', { name: 'report', group: 'batch', kind: 'jobs' });

describe('readKubernetesStatus', () => {
  it('parses the Status JSON text client-node leaves in the body', () => {
    expect(readKubernetesStatus(apiException(404, NAMESPACE_MISSING))).toStrictEqual({
      code: 404,
      reason: 'NotFound',
      message: 'namespaces "demo" not found',
      details: { name: 'demo', kind: 'namespaces' },
    });
  });

  it('accepts a body that is already an object', () => {
    expect(readKubernetesStatus(new ApiException(409, 'Conflict', ALREADY_EXISTS, {}))).toStrictEqual({
      code: 409,
      reason: 'AlreadyExists',
      message: 'jobs.batch "report" already exists',
      details: { name: 'report', group: 'batch', kind: 'jobs' },
    });
  });

  it('keeps a non-JSON body (a proxy’s page) as the message, on one line', () => {
    expect(readKubernetesStatus(apiException(502, '<html>\n  <h1>502 Bad Gateway</h1>\n</html>'))).toStrictEqual({
      code: 502,
      message: '<html> <h1>502 Bad Gateway</h1> </html>',
    });
  });

  it('copes with no body (client-node sends none with 401)', () => {
    expect(readKubernetesStatus(new ApiException(401, 'Unauthorized', undefined, {}))).toStrictEqual({ code: 401 });
  });

  it('is null for anything that is not an HTTP answer', () => {
    expect(readKubernetesStatus(systemError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:6443'))).toBeNull();
    expect(readKubernetesStatus(new Error('boom'))).toBeNull();
    expect(readKubernetesStatus('boom')).toBeNull();
    expect(readKubernetesStatus(null)).toBeNull();
    expect(readKubernetesStatus({ code: 'ECONNRESET', body: '' })).toBeNull();
  });
});

describe('classifyKubernetesError: the task’s own fault', () => {
  it('an invalid Job (422 Invalid), quoting what Kubernetes said', () => {
    expect(classifyKubernetesError(apiException(422, INVALID))).toStrictEqual({
      kind: 'task',
      reason: `Kubernetes rejected the Job as invalid (422 Invalid: ${INVALID.message}); fix the task's info`,
    });
  });

  it('a bad request (400 BadRequest)', () => {
    expect(classifyKubernetesError(apiException(400, status(400, 'BadRequest', 'the body of the request was in an unknown format')))).toStrictEqual({
      kind: 'task',
      reason: "Kubernetes rejected the Job as invalid (400 BadRequest: the body of the request was in an unknown format); fix the task's info",
    });
  });

  it('a Job too large for the API server (413)', () => {
    expect(classifyKubernetesError(apiException(413, status(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728')))).toStrictEqual({
      kind: 'task',
      reason: "Kubernetes rejected the Job as too large (413 RequestEntityTooLarge: Request entity too large: limit is 3145728); make the task's info smaller",
    });
  });

  it('a namespace that does not exist (404 on namespaces)', () => {
    expect(classifyKubernetesError(apiException(404, NAMESPACE_MISSING))).toStrictEqual({
      kind: 'task',
      reason: "namespace 'demo' does not exist in the cluster; create it or fix the task",
    });
  });

  it('a Job that is gone (404 on jobs)', () => {
    const gone = status(404, 'NotFound', 'jobs.batch "report" not found', { name: 'report', group: 'batch', kind: 'jobs' });
    expect(classifyKubernetesError(apiException(404, gone))).toStrictEqual({
      kind: 'task',
      reason: "Job 'report' no longer exists (404 NotFound: jobs.batch \"report\" not found); it was deleted before nightwatch saw it finish",
    });
  });
});

describe('classifyKubernetesError: conflicts the caller resolves', () => {
  it('a Job of that name already exists (409 AlreadyExists)', () => {
    expect(classifyKubernetesError(apiException(409, ALREADY_EXISTS))).toStrictEqual({
      kind: 'conflict',
      reason: "a Job named 'report' already exists (409 AlreadyExists: jobs.batch \"report\" already exists)",
    });
  });

  it('a 409 without a readable body', () => {
    expect(classifyKubernetesError(apiException(409, ''))).toStrictEqual({ kind: 'conflict', reason: 'the Job already exists (409 Conflict)' });
  });

  it('but an optimistic-concurrency Conflict is just retried', () => {
    const conflict = status(409, 'Conflict', 'Operation cannot be fulfilled on jobs.batch "report": the object has been modified');
    expect(classifyKubernetesError(apiException(409, conflict))).toStrictEqual({
      kind: 'transient',
      reason: `the Job changed while nightwatch was updating it (409 Conflict: ${conflict.message}); retrying`,
    });
  });
});

describe('classifyKubernetesError: transient, retried with the reason shown', () => {
  it('401: bad credentials', () => {
    expect(classifyKubernetesError(new ApiException(401, 'Unauthorized', undefined, {}))).toStrictEqual({
      kind: 'transient',
      reason: "Kubernetes API rejected nightwatch's credentials (401 Unauthorized); check the kubeconfig or service account token; retrying",
    });
  });

  it('403: missing RBAC permission', () => {
    const forbidden = status(
      403,
      'Forbidden',
      'jobs.batch is forbidden: User "system:serviceaccount:nightwatch:worker" cannot create resource "jobs" in API group "batch" in the namespace "demo"',
      { group: 'batch', kind: 'jobs' },
    );
    expect(classifyKubernetesError(apiException(403, forbidden))).toStrictEqual({
      kind: 'transient',
      reason: `Kubernetes API refused the request (403 Forbidden: ${forbidden.message}); grant nightwatch's account permission to manage Jobs in that namespace; retrying`,
    });
  });

  it('403: the namespace’s quota is used up', () => {
    const quota = status(403, 'Forbidden', 'jobs.batch "report" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1, used: count/jobs.batch=5, limited: count/jobs.batch=5');
    expect(classifyKubernetesError(apiException(403, quota))).toStrictEqual({
      kind: 'transient',
      reason: `the namespace's ResourceQuota is used up (403 Forbidden: ${quota.message}); free some quota or raise it; retrying`,
    });
  });

  it.each([
    [403, 'Forbidden', 'an admission webhook', 'admission webhook "jobs.policy.example.com" denied the request: images from docker.io are not allowed'],
    [403, 'Forbidden', 'a ValidatingAdmissionPolicy', 'jobs.batch "report" is forbidden: ValidatingAdmissionPolicy \'no-latest\' with binding \'no-latest\' denied request: use a pinned tag'],
    [422, 'Invalid', 'a ValidatingAdmissionPolicy (Invalid)', 'jobs.batch "report" is invalid: : ValidatingAdmissionPolicy \'review\' with binding \'review\' denied request: needs review'],
  ])('%i from %s: the task is refused at once, with the policy\'s message', (code, reason, _, message) => {
    const denied = status(code, reason, message);
    expect(classifyKubernetesError(apiException(code, denied))).toStrictEqual({
      kind: 'task',
      reason: `the cluster's admission policy refused the Job (${code} ${reason}: ${message}); change the task to meet the policy, or ask the operator`,
    });
  });

  it('429: throttled', () => {
    expect(classifyKubernetesError(apiException(429, status(429, 'TooManyRequests', 'Too many requests, please try again later.')))).toStrictEqual({
      kind: 'transient',
      reason: 'Kubernetes API is throttling requests (429 TooManyRequests: Too many requests, please try again later.); retrying',
    });
  });

  it.each([
    [500, status(500, 'InternalError', 'Internal error occurred: etcdserver: request timed out'), 'Kubernetes API failed (500 InternalError: Internal error occurred: etcdserver: request timed out); retrying'],
    [503, status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'), 'Kubernetes API failed (503 ServiceUnavailable: the server is currently unable to handle the request); retrying'],
    [504, status(504, 'Timeout', 'Timeout: request did not complete within requested timeout'), 'Kubernetes API failed (504 Timeout: Timeout: request did not complete within requested timeout); retrying'],
    [502, 'Bad Gateway', 'Kubernetes API failed (502 Bad Gateway: Bad Gateway); retrying'],
    [503, '', 'Kubernetes API failed (503 Service Unavailable); retrying'],
  ])('%i from the API server or a proxy', (code, body, reason) => {
    expect(classifyKubernetesError(apiException(code, body))).toStrictEqual({ kind: 'transient', reason });
  });

  it('404 with no object named: the API path itself is missing', () => {
    const missing = status(404, 'NotFound', 'the server could not find the requested resource');
    expect(classifyKubernetesError(apiException(404, missing))).toStrictEqual({
      kind: 'transient',
      reason:
        'Kubernetes API does not serve the request (404 NotFound: the server could not find the requested resource); ' +
        'check that the cluster serves batch/v1 Jobs; retrying',
    });
  });

  it('any other status', () => {
    expect(classifyKubernetesError(apiException(418, 'teapot'))).toStrictEqual({
      kind: 'transient',
      reason: 'Kubernetes API answered unexpectedly (418 error: teapot); retrying',
    });
  });

  it('a refused connection, as undici’s fetch reports it', () => {
    const err = new TypeError('fetch failed', { cause: systemError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:6443') });
    expect(classifyKubernetesError(err)).toStrictEqual({
      kind: 'transient',
      reason: 'Kubernetes API unreachable (connect ECONNREFUSED 127.0.0.1:6443); retrying',
    });
  });

  it('a refused connection on every address tried (an AggregateError with no message of its own)', () => {
    const both = Object.assign(
      new AggregateError([systemError('ECONNREFUSED', 'connect ECONNREFUSED ::1:6443'), systemError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:6443')], ''),
      { code: 'ECONNREFUSED' },
    );
    expect(classifyKubernetesError(new TypeError('fetch failed', { cause: both }))).toStrictEqual({
      kind: 'transient',
      reason: 'Kubernetes API unreachable (connect ECONNREFUSED ::1:6443, connect ECONNREFUSED 127.0.0.1:6443); retrying',
    });
  });

  it.each([
    ['ECONNRESET', 'read ECONNRESET', 'Kubernetes API unreachable (read ECONNRESET); retrying'],
    ['EHOSTUNREACH', 'connect EHOSTUNREACH 10.0.0.1:6443', 'Kubernetes API unreachable (connect EHOSTUNREACH 10.0.0.1:6443); retrying'],
    ['UND_ERR_SOCKET', 'other side closed', 'Kubernetes API unreachable (other side closed); retrying'],
    ['ETIMEDOUT', 'connect ETIMEDOUT 10.0.0.1:6443', 'Kubernetes API did not answer in time (connect ETIMEDOUT 10.0.0.1:6443); retrying'],
    ['UND_ERR_CONNECT_TIMEOUT', 'Connect Timeout Error', 'Kubernetes API did not answer in time (Connect Timeout Error); retrying'],
    ['UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error', 'Kubernetes API did not answer in time (Headers Timeout Error); retrying'],
    [
      'ENOTFOUND',
      'getaddrinfo ENOTFOUND k8s.example.invalid',
      'Kubernetes API host could not be resolved (getaddrinfo ENOTFOUND k8s.example.invalid); check the server address in the kubeconfig; retrying',
    ],
    [
      'EAI_AGAIN',
      'getaddrinfo EAI_AGAIN k8s.example.com',
      'Kubernetes API host could not be resolved (getaddrinfo EAI_AGAIN k8s.example.com); check the server address in the kubeconfig; retrying',
    ],
    [
      'SELF_SIGNED_CERT_IN_CHAIN',
      'self-signed certificate in certificate chain',
      'TLS with the Kubernetes API failed (self-signed certificate in certificate chain); check the certificate authority and server name in the kubeconfig; retrying',
    ],
    [
      'ERR_TLS_CERT_ALTNAME_INVALID',
      "Hostname/IP does not match certificate's altnames",
      "TLS with the Kubernetes API failed (Hostname/IP does not match certificate's altnames); check the certificate authority and server name in the kubeconfig; retrying",
    ],
  ])('network error %s', (code, message, reason) => {
    expect(classifyKubernetesError(new TypeError('fetch failed', { cause: systemError(code, message) }))).toStrictEqual({ kind: 'transient', reason });
    // The same error thrown bare, without fetch's wrapper.
    expect(classifyKubernetesError(systemError(code, message))).toStrictEqual({ kind: 'transient', reason });
  });

  it('a request that timed out or was aborted through its signal', () => {
    expect(classifyKubernetesError(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))).toStrictEqual({
      kind: 'transient',
      reason: 'Kubernetes API did not answer in time (The operation was aborted due to timeout); retrying',
    });
    expect(classifyKubernetesError(new DOMException('This operation was aborted', 'AbortError'))).toStrictEqual({
      kind: 'transient',
      reason: 'the Kubernetes API request was aborted (This operation was aborted); retrying',
    });
  });

  it('"fetch failed" with no recognisable cause', () => {
    expect(classifyKubernetesError(new TypeError('fetch failed', { cause: new Error('bad port') }))).toStrictEqual({
      kind: 'transient',
      reason: 'Kubernetes API unreachable (fetch failed: bad port); retrying',
    });
  });

  it('a client misconfiguration or anything else thrown', () => {
    expect(classifyKubernetesError(new Error('No active cluster!'))).toStrictEqual({
      kind: 'transient',
      reason: "Kubernetes client failed (No active cluster!); check the kubeconfig and the worker's logs; retrying",
    });
    expect(classifyKubernetesError('weird')).toStrictEqual({
      kind: 'transient',
      reason: "Kubernetes client failed (weird); check the kubeconfig and the worker's logs; retrying",
    });
  });

  it('keeps a huge message to a readable length', () => {
    const { reason } = classifyKubernetesError(apiException(500, status(500, 'InternalError', 'x'.repeat(10_000))));
    expect(reason.length).toBeLessThan(1100);
    expect(reason).toMatch(/^Kubernetes API failed \(500 InternalError: x+…\); retrying$/);
  });
});

describe('classifyKubernetesError on errors thrown by a real BatchV1Api', () => {
  let server: http.Server;
  let answer: { code: number; body: string } = { code: 500, body: '' };
  let batch: BatchV1Api;

  function clientFor(url: string): BatchV1Api {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc.makeApiClient(BatchV1Api);
  }

  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      res.writeHead(answer.code, HEADERS).end(answer.body);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    batch = clientFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });

  afterAll(() => {
    server.close();
  });

  async function thrownBy(call: () => Promise<unknown>): Promise<unknown> {
    try {
      await call();
    } catch (err) {
      return err;
    }
    throw new Error('expected the call to throw');
  }

  const create = () => batch.createNamespacedJob({ namespace: 'demo', body: { metadata: { name: 'report' } } });

  it('404 namespace: an ApiException whose body is the Status text, classified as the task’s fault', async () => {
    answer = { code: 404, body: JSON.stringify(NAMESPACE_MISSING) };
    const err = await thrownBy(create);
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<unknown>).body).toBe(JSON.stringify(NAMESPACE_MISSING));
    expect(classifyKubernetesError(err)).toStrictEqual({
      kind: 'task',
      reason: "namespace 'demo' does not exist in the cluster; create it or fix the task",
    });
  });

  it('422 Invalid', async () => {
    answer = { code: 422, body: JSON.stringify(INVALID) };
    expect(classifyKubernetesError(await thrownBy(create))).toStrictEqual({
      kind: 'task',
      reason: `Kubernetes rejected the Job as invalid (422 Invalid: ${INVALID.message}); fix the task's info`,
    });
  });

  it('409 AlreadyExists', async () => {
    answer = { code: 409, body: JSON.stringify(ALREADY_EXISTS) };
    expect(classifyKubernetesError(await thrownBy(create)).kind).toBe('conflict');
  });

  it('401, which client-node throws without a body', async () => {
    answer = { code: 401, body: JSON.stringify(status(401, 'Unauthorized', 'Unauthorized')) };
    expect(classifyKubernetesError(await thrownBy(create))).toStrictEqual({
      kind: 'transient',
      reason: "Kubernetes API rejected nightwatch's credentials (401 Unauthorized); check the kubeconfig or service account token; retrying",
    });
  });

  it('503 from a proxy in front of the API server', async () => {
    answer = { code: 503, body: 'upstream connect error' };
    expect(classifyKubernetesError(await thrownBy(create))).toStrictEqual({
      kind: 'transient',
      reason: 'Kubernetes API failed (503 Service Unavailable: upstream connect error); retrying',
    });
  });

  it('a refused connection', async () => {
    const closed = http.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    const err = await thrownBy(() => clientFor(`https://127.0.0.1:${port}`).createNamespacedJob({ namespace: 'demo', body: {} }));
    expect(classifyKubernetesError(err)).toStrictEqual({
      kind: 'transient',
      reason: `Kubernetes API unreachable (connect ECONNREFUSED 127.0.0.1:${port}); retrying`,
    });
  });
});
