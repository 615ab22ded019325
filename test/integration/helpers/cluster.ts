/**
 * The Temporal an integration file runs against: by default a dev server of its own
 * (helpers/temporal.ts); with COSTGUARD_TEST_TEMPORAL=cluster, the production-shaped cluster of
 * scripts/cluster.sh (16 shards, PostgreSQL, mTLS), reached with the TEMPORAL_* variables that
 * `bash scripts/cluster.sh server` prints. Each stack on the cluster gets a namespace of its own,
 * deleted at teardown, so runs never see each other's workflows (workflow ids are fixed per scope).
 */
import { randomBytes } from 'node:crypto';
import { Client } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { type Config, loadConfig } from '../../../src/config/index.js';
import { connectTemporalClient, temporalConnectionOptions } from '../../../src/temporal/connection.js';

export type TemporalTarget = 'dev' | 'cluster';

/** COSTGUARD_TEST_TEMPORAL: `dev` (default) or `cluster`; anything else stops the run. */
export function temporalTarget(): TemporalTarget {
  const v = process.env.COSTGUARD_TEST_TEMPORAL || 'dev';
  if (v !== 'dev' && v !== 'cluster') throw new Error(`COSTGUARD_TEST_TEMPORAL=${v}: expected dev or cluster`);
  return v;
}

const CONNECTION_VARIABLES = ['TEMPORAL_ADDRESS', 'TEMPORAL_TLS', 'TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_SERVER_NAME', 'TEMPORAL_API_KEY'];

/** The cluster's connection variables from this process's environment (what `cluster.sh server` prints). */
export function clusterConnectionEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of CONNECTION_VARIABLES) if (process.env[name]) env[name] = process.env[name]!;
  if (!env.TEMPORAL_TLS_CLIENT_CERT_PATH && !env.TEMPORAL_API_KEY) {
    throw new Error('COSTGUARD_TEST_TEMPORAL=cluster, but no cluster credentials are in the environment: run eval "$(bash scripts/cluster.sh server)" first (it starts the cluster and prints TEMPORAL_ADDRESS and TEMPORAL_TLS_*)');
  }
  return env;
}

export interface ClusterNamespace {
  env: TestWorkflowEnvironment;
  namespace: string;
  /** TEMPORAL_* for loadConfig and child processes: the cluster's address, credentials and this namespace. */
  connectionEnv: Record<string, string>;
  /** Closes the connections and deletes the namespace (the cluster removes its workflows in the background). */
  teardown(): Promise<void>;
}

async function until<T>(what: string, probe: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** A fresh namespace on the cluster, ready for workflows, and a test environment connected to it over TLS. */
export async function clusterNamespace(): Promise<ClusterNamespace> {
  const namespace = `costguard-test-${randomBytes(4).toString('hex')}`;
  const connectionEnv = { ...clusterConnectionEnv(), TEMPORAL_NAMESPACE: namespace };
  const temporal: Config['temporal'] = loadConfig(connectionEnv).temporal;
  const admin = await connectTemporalClient(temporal, { connectTimeoutMs: 30_000 });
  await admin.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
  // Every frontend learns of a new namespace on its next cache refresh (2 s by default).
  await until(`namespace ${namespace} on the frontend`, () => new Client({ connection: admin, namespace }).workflow.count(''));
  const { address, tls, apiKey } = temporalConnectionOptions(temporal);
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address, namespace, connectionOptions: { tls, ...(apiKey ? { apiKey } : {}) } });
  return {
    env,
    namespace,
    connectionEnv,
    async teardown() {
      await env.teardown().catch(() => undefined);
      await admin.operatorService.deleteNamespace({ namespace }).catch(() => undefined);
      await admin.close();
    },
  };
}
