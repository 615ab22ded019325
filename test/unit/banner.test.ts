import { describe, expect, it } from 'vitest';
import { startBanner } from '../../src/cli/banner.js';
import { loadConfig } from '../../src/config/index.js';

describe('start banner', () => {
  it('lists the API, OpenAPI, metrics and Temporal UI URLs and says where the budget table is', () => {
    const text = startBanner({
      apiBase: 'http://127.0.0.1:8080',
      keyFile: '.data/api-key',
      worker: { taskQueue: 'costguard', alertTaskQueue: 'costguard-alerts' },
      temporal: { address: '127.0.0.1:7233', namespace: 'default', uiUrl: 'http://127.0.0.1:8233' },
    });
    expect(text).toContain('API:          http://127.0.0.1:8080  (key in .data/api-key');
    expect(text).toContain('OpenAPI:      http://127.0.0.1:8080/v1/openapi.json');
    expect(text).toContain('Metrics:      http://127.0.0.1:8080/metrics');
    expect(text).toContain('Temporal UI:  http://127.0.0.1:8233/namespaces/default/workflows');
    expect(text).toMatch(/budget\/system.*"User Metadata" tab \(Current Details\)/);
    expect(text.split('\n').length).toBeLessThanOrEqual(10);
  });

  it('a worker-only process shows its metrics listener and no API', () => {
    const text = startBanner({ metricsUrl: 'http://127.0.0.1:9464/metrics', temporal: { address: 't:7233', namespace: 'team a', uiUrl: 'https://ui.example/' } });
    expect(text).not.toContain('API:');
    expect(text).toContain('Metrics:      http://127.0.0.1:9464/metrics');
    expect(text).toContain('https://ui.example/namespaces/team%20a/workflows');
  });

  it('the Temporal UI URL defaults to the dev server\'s (gRPC port + 1000) and TEMPORAL_UI_URL is validated', () => {
    expect(loadConfig({}).temporal.uiUrl).toBe('http://127.0.0.1:8233');
    expect(loadConfig({ TEMPORAL_ADDRESS: 'localhost:17233' }).temporal.uiUrl).toBe('http://localhost:18233');
    expect(loadConfig({ TEMPORAL_UI_URL: 'http://10.0.0.5:8080' }).temporal.uiUrl).toBe('http://10.0.0.5:8080');
    expect(() => loadConfig({ TEMPORAL_UI_URL: 'ftp://x' })).toThrow(/TEMPORAL_UI_URL/);
  });
});
