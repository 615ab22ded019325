/**
 * Every connection Cost Guard opens to Temporal (the worker's NativeConnection, the API's and the
 * CLI's client Connection, the bench) is made here, from `config.temporal`: the address, TLS with a
 * CA, a client certificate and key and a server name (mTLS), and a Temporal Cloud style API key,
 * configured with the variables Temporal's own CLI reads (TEMPORAL_TLS*, TEMPORAL_API_KEY).
 *
 * A failed connection says what to set: a plain connection to a TLS frontend fails with a transport
 * error that names nothing useful, so on failure we probe the address and explain. (The worker's
 * NativeConnection is made in src/worker/ from the same options: the CLI never loads the native bridge.)
 */
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { Connection, type ConnectionOptions } from '@temporalio/client';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { ConfigError, type Config } from '../config/index.js';
import { UnavailableError } from '../domain/errors.js';

type TemporalConfig = Pick<Config['temporal'], 'address' | 'tls' | 'apiKey'>;

const TLS_HELP =
  'set TEMPORAL_TLS_SERVER_CA_CERT_PATH (the CA that signed the server certificate; not needed for a publicly trusted one such as Temporal Cloud), ' +
  'TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (mTLS), or TEMPORAL_API_KEY (API-key auth); TEMPORAL_TLS_SERVER_NAME if the certificate names another host';

function readPem(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`Invalid configuration in the environment:\n  ${variable} = ${JSON.stringify(path)}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The SDK's `tls` option: false for a plain connection, else the files read now. */
export function temporalTlsConfig(config: TemporalConfig): TLSConfig | false {
  const tls = config.tls;
  if (!tls) return false;
  return {
    ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
    ...(tls.serverCaCertPath ? { serverRootCACertificate: readPem('TEMPORAL_TLS_SERVER_CA_CERT_PATH', tls.serverCaCertPath) } : {}),
    ...(tls.clientCertPath && tls.clientKeyPath
      ? { clientCertPair: { crt: readPem('TEMPORAL_TLS_CLIENT_CERT_PATH', tls.clientCertPath), key: readPem('TEMPORAL_TLS_CLIENT_KEY_PATH', tls.clientKeyPath) } }
      : {}),
  };
}

/** Options for `Connection.connect` / `NativeConnection.connect` (both take these fields). */
export function temporalConnectionOptions(config: TemporalConfig): Pick<ConnectionOptions, 'address' | 'tls'> & { apiKey?: string } {
  return { address: config.address, tls: temporalTlsConfig(config), ...(config.apiKey ? { apiKey: config.apiKey } : {}) };
}

/** What the server at `address` answers to a TLS handshake: it speaks TLS, it does not, or nothing answers. */
async function probeTls(address: string, serverName: string | undefined, timeoutMs = 3000): Promise<'tls' | 'plain' | 'unknown'> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, servername: serverName ?? (/^[\d.:]+$/.test(host) ? undefined : host), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (answer: 'tls' | 'plain' | 'unknown') => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done('unknown'), timeoutMs);
    socket.once('secureConnect', () => done('tls'));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // An answer that is not TLS (an HTTP/2 server reading our ClientHello as garbage) versus no answer at all.
      if (/ECONNREFUSED|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT|EAI_AGAIN/.test(err.code ?? '')) done('unknown');
      else if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|ECONNRESET|unexpected eof|socket disconnected/i.test(`${err.code ?? ''} ${err.message}`)) done('plain');
      else done('tls');
    });
  });
}

/**
 * Why a connection to Temporal failed, in words that say what to set. `cause` is the SDK's error;
 * the probe tells a plain client at a TLS frontend (and the reverse) from a server that is down.
 */
export async function explainConnectFailure(config: TemporalConfig, cause: unknown): Promise<string> {
  const base = `cannot connect to Temporal at ${config.address}: ${(cause as Error).message}`;
  const spoken = await probeTls(config.address, config.tls?.serverName);
  if (!config.tls && spoken === 'tls') {
    return `${base}. The server requires TLS and Cost Guard connected without it: ${TLS_HELP}.`;
  }
  if (config.tls && spoken === 'plain') {
    return `${base}. The server does not speak TLS, but TLS is on (TEMPORAL_TLS, TEMPORAL_TLS_* or TEMPORAL_API_KEY is set): unset them, or set TEMPORAL_TLS=false, for a plain server.`;
  }
  if (config.tls && spoken === 'tls') {
    const text = String((cause as Error).message);
    if (!config.tls.clientCertPath && !config.apiKey) {
      return `${base}. The TLS handshake or the first call failed without a client certificate: a server with mTLS needs TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (Temporal Cloud: those, or TEMPORAL_API_KEY).`;
    }
    if (/certificate|UnknownIssuer|invalid peer|BadSignature|NotValidForName|verify/i.test(text)) {
      return `${base}. The server's certificate was not accepted: set TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA that signed it, and TEMPORAL_TLS_SERVER_NAME to a name it carries.`;
    }
  }
  return base;
}

/** A client Connection (API, CLI, CostTracker users); failures say what to set. */
export async function connectTemporalClient(config: TemporalConfig, opts: { connectTimeoutMs?: number } = {}): Promise<Connection> {
  const options = temporalConnectionOptions(config);
  try {
    return await Connection.connect({ ...options, ...(opts.connectTimeoutMs ? { connectTimeout: opts.connectTimeoutMs } : {}) });
  } catch (err) {
    throw new UnavailableError(await explainConnectFailure(config, err), { cause: err });
  }
}
