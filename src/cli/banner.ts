/**
 * The few lines `costguard start` (and so `npm start`) prints once it runs: every URL a newcomer
 * needs, and where the budget table is in the Temporal UI. Pure, so it is unit-tested.
 */
export interface BannerInput {
  /** The API's base URL when this process serves it. */
  apiBase?: string;
  /** Where the API key is: a file, or `API_KEYS`. */
  keyFile?: string | null;
  /** The worker-only Prometheus listener, when there is one. */
  metricsUrl?: string;
  worker?: { taskQueue: string; alertTaskQueue: string };
  temporal: { address: string; namespace: string; uiUrl: string };
}

export function startBanner(b: BannerInput): string {
  const ui = b.temporal.uiUrl.replace(/\/+$/, '');
  const ns = encodeURIComponent(b.temporal.namespace);
  const lines = ['Cost Guard is running.'];
  if (b.apiBase) {
    lines.push(
      `  API:          ${b.apiBase}  (key ${b.keyFile ? `in ${b.keyFile}` : 'from API_KEYS'}, as x-api-key; health ${b.apiBase}/healthz)`,
      `  OpenAPI:      ${b.apiBase}/v1/openapi.json`,
      `  Metrics:      ${b.apiBase}/metrics  (same key)`,
    );
  }
  if (b.metricsUrl) lines.push(`  Metrics:      ${b.metricsUrl}`);
  if (b.worker) lines.push(`  Worker:       task queues ${b.worker.taskQueue} and ${b.worker.alertTaskQueue} (alerts)`);
  lines.push(
    `  Temporal UI:  ${ui}/namespaces/${ns}/workflows  (server ${b.temporal.address})`,
    `  Budgets:      open budget/system or budget/user:<id> there; the budget table is its "User Metadata" tab (Current Details)`,
    'Press Ctrl-C to stop.',
    '',
  );
  return lines.join('\n');
}
