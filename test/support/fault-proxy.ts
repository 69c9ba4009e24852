// A fault-injecting HTTPS proxy in front of the real Kubernetes API server, for tests that need
// the API server to refuse (401, 403, 429) or to be slow on purpose. Everything it is not told
// to disturb passes through unchanged, so the worker behind it talks to the real cluster.
//
// It serves HTTPS with a certificate of its own (made with openssl) and writes a copy of the
// kubeconfig whose server is the proxy and whose CA is that certificate; the credentials stay
// the kubeconfig's own, applied by the proxy to its upstream requests.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest, createServer, type RequestOptions } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export interface SeenRequest {
  method: string;
  /** Path and query, e.g. /apis/batch/v1/namespaces/default/jobs */
  path: string;
  /** The name of the Job a `POST …/jobs` creates, read from its body. */
  createsJob?: string;
}

/** What the proxy does with one request: answer it itself, hold it first, or (undefined) pass it on. */
export type Fault = { status: number; body: unknown } | { delayMs: number };

export interface ProxyEvent extends SeenRequest {
  /** `refused <status>`, or `passed <status>` once the upstream answer was sent, or `abandoned` when the client left first. */
  outcome: string;
  at: number;
}

export interface FaultProxy {
  /** A kubeconfig that reaches the cluster through this proxy. */
  kubeconfigPath: string;
  /** Decides each request's fate; replace it at any time. */
  rule: (req: SeenRequest) => Fault | undefined;
  /** Every request as it arrived, in order. */
  arrivals: (SeenRequest & { at: number })[];
  /** Everything the proxy did, in order. */
  events: ProxyEvent[];
  close(): Promise<void>;
}

/** Kubernetes' own shape for a refusal, as the API server would send it. */
export function kubernetesStatus(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export async function startFaultProxy(kubeconfigPath: string): Promise<FaultProxy> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const upstream = new URL(kc.getCurrentCluster()!.server);
  const dir = await mkdtemp(join(tmpdir(), 'nightwatch-fault-proxy-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=nightwatch-fault-proxy',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  const cert = await readFile(join(dir, 'cert.pem'));
  const key = await readFile(join(dir, 'key.pem'));

  const proxy: FaultProxy = {
    kubeconfigPath: join(dir, 'kubeconfig'),
    rule: () => undefined,
    arrivals: [],
    events: [],
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    },
  };
  const record = (seen: SeenRequest, outcome: string) => proxy.events.push({ ...seen, outcome, at: Date.now() });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const seen: SeenRequest = { method: req.method ?? 'GET', path: req.url ?? '/' };
    if (seen.method === 'POST' && /^\/apis\/batch\/v1\/namespaces\/[^/]+\/jobs(\?|$)/.test(seen.path)) {
      try {
        seen.createsJob = (JSON.parse(body.toString()) as { metadata?: { name?: string } }).metadata?.name;
      } catch {
        // Not JSON: the API server will say so; nothing to match on.
      }
    }
    proxy.arrivals.push({ ...seen, at: Date.now() });
    let clientLeft = false;
    res.on('close', () => {
      if (!res.writableFinished) clientLeft = true;
    });
    const fault = proxy.rule(seen);
    if (fault && 'status' in fault) {
      res.writeHead(fault.status, { 'content-type': 'application/json' }).end(JSON.stringify(fault.body));
      record(seen, `refused ${fault.status}`);
      return;
    }
    if (fault) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (clientLeft) {
      // The caller gave up (a worker shutting down): the request never reaches the cluster.
      record(seen, 'abandoned');
      return;
    }
    const options: RequestOptions = {
      hostname: upstream.hostname,
      port: upstream.port,
      path: seen.path,
      method: seen.method,
      headers: { ...req.headers, host: upstream.host, 'content-length': String(body.length) },
    };
    await kc.applyToHTTPSOptions(options);
    const up = httpsRequest(options, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      // As the API server does for a watch: the headers go out at once, before any event.
      res.flushHeaders();
      answer.pipe(res);
      res.on('finish', () => record(seen, `passed ${answer.statusCode}`));
      res.on('close', () => {
        if (!res.writableFinished) {
          answer.destroy();
          record(seen, 'abandoned');
        }
      });
    });
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault proxy: upstream ${upstream.host} failed: ${err.message}`);
    });
    up.end(body);
  }

  const server = createServer({ cert, key }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`fault proxy: ${String(err)}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;

  const proxied = new KubeConfig();
  proxied.loadFromString(kc.exportConfig());
  const cluster = proxied.getCurrentCluster()!;
  proxied.clusters = proxied.clusters.map((c) =>
    c.name === cluster.name ? { ...c, server: `https://127.0.0.1:${port}`, caData: cert.toString('base64'), caFile: undefined, skipTLSVerify: false } : c,
  );
  await writeFile(proxy.kubeconfigPath, proxied.exportConfig(), { mode: 0o600 });
  return proxy;
}
