/**
 * The OpenAPI document is generated from the routes: every route fastify registers is in it with the
 * key scope it needs, nothing else is, and it holds together as an OpenAPI 3.1 document (every $ref
 * resolves, every operation has an id and described responses). Built with stand-ins for the
 * dependencies: producing the document touches none of them.
 */
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/server.js';
import { STATUS_OF_CODE } from '../../src/api/errors.js';
import type { RouteScope } from '../../src/api/keys.js';
import type { CostTracker } from '../../src/client/cost-tracker.js';
import { loadConfig } from '../../src/config/index.js';
import type { CostGuardMetrics } from '../../src/metrics/index.js';

const KEY = 'cg_openapi_test_key_0123456789';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  responses?: Record<string, { description?: string }>;
}
type Document = {
  openapi: string;
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
};

let app: FastifyInstance;
let doc: Document;
const routes: { method: string; url: string; scope: RouteScope | undefined }[] = [];

beforeAll(async () => {
  app = buildApi({
    pool: {} as Pool,
    apiKeys: [KEY],
    logger: pino({ level: 'silent' }),
    temporal: {} as Client,
    tracker: {} as CostTracker,
    config: loadConfig({}),
    metrics: {} as CostGuardMetrics,
  });
  // The route plugins register their routes while the app gets ready: this sees every one.
  app.addHook('onRoute', (route) => {
    const config = route.config as { public?: boolean; scope?: RouteScope };
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method: method.toLowerCase(), url: route.url, scope: config.public ? undefined : config.scope });
  });
  const res = await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { 'x-api-key': KEY } });
  expect(res.statusCode).toBe(200);
  doc = res.json();
  return () => app.close();
});

/** `/v1/budgets/:scope` -> `/v1/budgets/{scope}` */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('the generated OpenAPI document', () => {
  it('lists every registered route, with the key scope it needs, and nothing else', () => {
    expect(routes.length).toBeGreaterThanOrEqual(14);
    for (const route of routes) {
      const op = doc.paths[openApiPath(route.url)]?.[route.method];
      expect(op, `${route.method} ${route.url}`).toBeDefined();
      expect(op!.security, `${route.method} ${route.url}`).toEqual(route.scope ? [{ apiKey: [route.scope] }, { bearer: [route.scope] }] : []);
    }
    const documented = Object.entries(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => `${m} ${path}`));
    expect(documented.sort()).toEqual(routes.map((r) => `${r.method} ${openApiPath(r.url)}`).sort());
  });

  it('is an OpenAPI 3.1 document: unique operation ids, described responses, every $ref resolved', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBeTruthy();
    expect(doc.info.version).toBeTruthy();
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
    const ids: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path).toMatch(/^\//);
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        expect(op.operationId, `${method} ${path}`).toMatch(/^[A-Za-z]+$/);
        ids.push(op.operationId!);
        expect(Object.keys(op.responses ?? {}).length, `${method} ${path}`).toBeGreaterThan(0);
        for (const [status, response] of Object.entries(op.responses ?? {})) {
          expect(status, `${method} ${path}`).toMatch(/^[1-5]\d\d$/);
          expect(response.description, `${method} ${path} ${status}`).toBeTruthy();
        }
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]*"/g) ?? [];
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      const name = /^"\$ref":"#\/components\/schemas\/(.+)"$/.exec(ref)?.[1];
      expect(name, ref).toBeDefined();
      expect(doc.components.schemas[name!], ref).toBeDefined();
    }
  });

  it('describes the one error shape, with every error code, on every keyed route', () => {
    const error = doc.components.schemas.Error as { properties: { error: { enum: string[] } }; required: string[] };
    expect(error.properties.error.enum.sort()).toEqual(Object.keys(STATUS_OF_CODE).sort());
    expect(error.required).toEqual(['error', 'message']);
    for (const route of routes.filter((r) => r.scope)) {
      const responses = doc.paths[openApiPath(route.url)]![route.method]!.responses!;
      expect(Object.keys(responses), `${route.method} ${route.url}`).toEqual(expect.arrayContaining(['401', '403', '408', '414', '429', '431']));
    }
  });
});
