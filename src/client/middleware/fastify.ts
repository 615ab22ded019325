/**
 * The fastify plugin: `app.register(costGuardFastify, { userIdHeader: 'x-user-id' })`. Every request
 * gets a cost context (src/client/context.ts): wrapped SDK calls made while serving it are
 * attributed to its user, task type and tags, counted in `request.costGuard`, and aborted if the
 * client disconnects before the response is finished.
 *
 * Written without `fastify-plugin` (not a dependency of Cost Guard): the plugin carries the symbols
 * fastify-plugin would set, `skip-override` so its hooks apply to the whole application rather than
 * to an encapsulated child context, and its display name and metadata.
 *
 * The context is entered in `onRequest` and again in `preHandler`: fastify parses the body from
 * stream events, outside the request's async context, so the handler would otherwise run without it.
 */
import type { FastifyPluginCallback, FastifyRequest } from 'fastify';
import { type CostContext, runWithCostContext } from '../context.js';
import { type CostGuardMiddlewareOptions, costHeaders, firstHeader, newRequestContext, onClientGone } from './common.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's cost context (set by the Cost Guard plugin; null on routes outside it). */
    costGuard: CostContext | null;
  }
}

export type CostGuardFastifyOptions = CostGuardMiddlewareOptions<FastifyRequest>;

const plugin: FastifyPluginCallback<CostGuardFastifyOptions> = (fastify, opts, done) => {
  fastify.decorateRequest('costGuard', null);
  fastify.addHook('onRequest', (request, reply, next) => {
    const ctx = newRequestContext(opts, request, (name) => firstHeader(request.headers[name]));
    request.costGuard = ctx;
    if (opts.abortOnDisconnect !== false) onClientGone(reply.raw, ctx);
    runWithCostContext(ctx, next);
  });
  fastify.addHook('preHandler', (request, _reply, next) => {
    if (request.costGuard) runWithCostContext(request.costGuard, next);
    else next();
  });
  if (opts.responseHeaders) {
    fastify.addHook('onSend', (request, reply, payload, next) => {
      if (request.costGuard) reply.headers(costHeaders(request.costGuard));
      next(null, payload);
    });
  }
  done();
};

Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'costguard',
  [Symbol.for('plugin-meta')]: { name: 'costguard', fastify: '5.x' },
});

/** The fastify plugin (register it before the routes whose calls it should attribute). */
export const costGuardFastify = plugin;
