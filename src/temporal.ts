// Temporal connection settings shared by the worker, the API and the tools: the same
// variables reach a local dev server, a self-hosted cluster (mTLS) or Temporal Cloud (API key).
import { readFileSync } from 'node:fs';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { TLSConfig } from '@temporalio/client';
import type { Config } from './config.ts';

/** Valid for both the client's Connection and the worker's NativeConnection. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

export function temporalConnectionOptions(config: Config): TemporalConnectionOptions {
  const tls =
    config.TEMPORAL_TLS || config.TEMPORAL_TLS_CERT_PATH || config.TEMPORAL_API_KEY
      ? {
          ...(config.TEMPORAL_TLS_CERT_PATH && config.TEMPORAL_TLS_KEY_PATH
            ? {
                clientCertPair: {
                  crt: readFileSync(config.TEMPORAL_TLS_CERT_PATH),
                  key: readFileSync(config.TEMPORAL_TLS_KEY_PATH),
                },
              }
            : {}),
          ...(config.TEMPORAL_TLS_CA_PATH ? { serverRootCACertificate: readFileSync(config.TEMPORAL_TLS_CA_PATH) } : {}),
        }
      : undefined;
  return {
    address: config.TEMPORAL_ADDRESS,
    ...(tls ? { tls } : {}),
    ...(config.TEMPORAL_API_KEY ? { apiKey: config.TEMPORAL_API_KEY } : {}),
  };
}

export async function connectTemporalClient(config: Config): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(config));
  return new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
}

/** Link to a workflow in the Temporal Web UI. */
export function workflowUrl(config: Config, workflowId: string): string {
  return `${config.TEMPORAL_UI_URL.replace(/\/$/, '')}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** Whether a run of `workflowId` is open; false when it finished or never existed. */
export async function workflowIsRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    const { status } = await client.workflow.getHandle(workflowId).describe();
    return status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
