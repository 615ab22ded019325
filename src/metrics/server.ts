/**
 * The worker's own Prometheus listener (`METRICS_HOST`:`METRICS_PORT`, default 127.0.0.1:9464, the
 * port Prometheus' exporter conventions give Node applications): a worker-only process has no API,
 * yet its event counters live in its memory and must be scrapeable. Like every Prometheus exporter
 * it has no authentication: bind it to a private interface (the API's `GET /metrics`, which needs an
 * API key, is the one to expose more widely). It serves `GET /metrics` and nothing else.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../lib/logger.js';
import type { CostGuardMetrics } from './index.js';

export interface MetricsServer {
  /** `http://host:port/metrics`. */
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(
  metrics: CostGuardMetrics,
  opts: { host: string; port: number; logger: Logger },
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => {
        opts.logger.error({ err }, 'metrics: rendering failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable (logged on the server)\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}/metrics`;
  opts.logger.info({ url }, 'metrics listener started');
  return {
    url,
    close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
