// The Kubernetes client: a kubeconfig file when KUBECONFIG is set, otherwise the usual
// default chain (~/.kube/config, then the in-cluster service account).
import { BatchV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/**
 * @kubernetes/client-node 2.0 builds a new undici Agent for every request, so no connection is
 * ever reused and every request pays a TCP and TLS handshake, on the API server too. This keeps the
 * first Agent made for each context (cluster and user) and hands it to every later request; the
 * bearer token still travels per request, so token rotation is unaffected. (A client certificate
 * rotated on disk is picked up on restart only.)
 */
class ConnectionReusingKubeConfig extends KubeConfig {
  private readonly dispatchers = new Map<string, Dispatcher>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (!fresh) return;
    const key = this.getCurrentContext();
    const pooled = this.dispatchers.get(key);
    if (!pooled) {
      this.dispatchers.set(key, fresh);
      return;
    }
    context.setDispatcher(pooled);
    // Never used, so it holds no connection; closing it only releases the object.
    void fresh.close();
  }
}

export interface KubeClients {
  batch: BatchV1Api;
  core: CoreV1Api;
  /** The loaded configuration, for watches (src/job-watch.ts). */
  kubeconfig: KubeConfig;
  /** The API server's address, for messages and docs. */
  server: string;
}

export function createKubeClients(kubeconfigPath?: string): KubeClients {
  const kc = new ConnectionReusingKubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new Error(
      `no Kubernetes cluster configured${kubeconfigPath ? ` in ${kubeconfigPath}` : ''}; set KUBECONFIG to a kubeconfig file or run in a cluster`,
    );
  }
  return { batch: kc.makeApiClient(BatchV1Api), core: kc.makeApiClient(CoreV1Api), kubeconfig: kc, server: cluster.server };
}
