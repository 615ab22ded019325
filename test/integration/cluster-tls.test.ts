/**
 * The cluster's frontend takes mTLS only (scripts/cluster.sh): a plain connection, or TLS without a
 * client certificate, is refused, and what the user sees says which variables to set. Runs on the
 * cluster target only (`npm test` runs it in its cluster leg: COSTGUARD_TEST_TEMPORAL=cluster).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectTemporal } from '../../src/client/connect.js';
import { loadConfig } from '../../src/config/index.js';
import { UnavailableError } from '../../src/domain/errors.js';
import { projectRoot } from '../../src/lib/paths.js';
import { connectNative } from '../../src/worker/index.js';
import { type ClusterNamespace, clusterConnectionEnv, clusterNamespace, temporalTarget } from './helpers/cluster.js';
import { quietTemporalRuntime } from './helpers/stack.js';

const run = promisify(execFile);
const onCluster = temporalTarget() === 'cluster';

describe.runIf(onCluster)('the mTLS cluster refuses what is not mTLS, and says what to set', () => {
  let ns: ClusterNamespace;
  let secure: Record<string, string>;
  beforeAll(async () => {
    quietTemporalRuntime();
    secure = clusterConnectionEnv();
    ns = await clusterNamespace();
  });
  afterAll(async () => ns?.teardown());

  const connectError = async (env: Record<string, string>) => {
    const err = await connectTemporal(loadConfig(env), { connectTimeoutMs: 5_000 }).then(
      async ({ connection }) => {
        await connection.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnavailableError);
    return (err as Error).message;
  };

  it('a plain client connection is refused: the error says the server requires TLS and names the variables', async () => {
    const message = await connectError({ TEMPORAL_ADDRESS: secure.TEMPORAL_ADDRESS! });
    expect(message).toContain(`cannot connect to Temporal at ${secure.TEMPORAL_ADDRESS}`);
    expect(message).toContain('The server requires TLS and Cost Guard connected without it');
    for (const v of ['TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_API_KEY']) expect(message).toContain(v);
  });

  it("the worker's native connection, plain, is refused the same way", async () => {
    const err = await connectNative(loadConfig({ TEMPORAL_ADDRESS: secure.TEMPORAL_ADDRESS! }).temporal).then(
      async (c) => (await c.close(), undefined),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain('The server requires TLS and Cost Guard connected without it');
  });

  it('TLS without a client certificate is refused: the error asks for the client certificate and key', async () => {
    const message = await connectError({
      TEMPORAL_ADDRESS: secure.TEMPORAL_ADDRESS!,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: secure.TEMPORAL_TLS_SERVER_CA_CERT_PATH!,
      TEMPORAL_TLS_SERVER_NAME: secure.TEMPORAL_TLS_SERVER_NAME!,
    });
    expect(message).toContain('TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH');
  });

  it('with the CA, the client certificate and the server name, the connection works', async () => {
    const { client, connection } = await connectTemporal(loadConfig({ ...secure, TEMPORAL_NAMESPACE: ns.namespace }));
    try {
      expect(await client.workflow.count('')).toMatchObject({ count: 0 });
    } finally {
      await connection.close();
    }
  });

  it('the CLI (costguard status), plain, exits 5 (unavailable) with the same advice', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: secure.TEMPORAL_ADDRESS! };
    for (const v of ['TEMPORAL_TLS', 'TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_SERVER_NAME', 'TEMPORAL_API_KEY']) delete env[v];
    const failed = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status'], { cwd: projectRoot(), env }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(5);
    expect(failed?.stderr).toContain('The server requires TLS');
  });
});
