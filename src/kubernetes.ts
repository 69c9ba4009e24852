// The Kubernetes client: a kubeconfig file when KUBECONFIG is set, otherwise the usual
// default chain (~/.kube/config, then the in-cluster service account).
import { BatchV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';

export interface KubeClients {
  batch: BatchV1Api;
  core: CoreV1Api;
  /** The API server's address, for messages and docs. */
  server: string;
}

export function createKubeClients(kubeconfigPath?: string): KubeClients {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new Error(
      `no Kubernetes cluster configured${kubeconfigPath ? ` in ${kubeconfigPath}` : ''}; set KUBECONFIG to a kubeconfig file or run in a cluster`,
    );
  }
  return { batch: kc.makeApiClient(BatchV1Api), core: kc.makeApiClient(CoreV1Api), server: cluster.server };
}
