/**
 * The express 5 middleware: `app.use(costGuardExpress({ userIdHeader: 'x-user-id' }))`. Every request
 * gets a cost context (src/client/context.ts): wrapped SDK calls made while serving it are
 * attributed to its user, task type and tags, counted in `res.locals.costGuard`, and aborted if the
 * client disconnects before the response is finished.
 *
 * Mount it AFTER the body parsers (`app.use(express.json())` first): a body parser calls `next()`
 * from the request stream's events, outside the request's async context, so the routes after it
 * would not see a context opened before it.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { runWithCostContext } from '../context.js';
import { type CostGuardMiddlewareOptions, costHeaders, newRequestContext, onClientGone } from './common.js';

export type CostGuardExpressOptions = CostGuardMiddlewareOptions<Request>;

export function costGuardExpress(opts: CostGuardExpressOptions = {}): RequestHandler {
  return function costGuard(req: Request, res: Response, next: NextFunction): void {
    const ctx = newRequestContext(opts, req, (name) => req.get(name));
    res.locals.costGuard = ctx;
    if (opts.abortOnDisconnect !== false) onClientGone(res, ctx);
    if (opts.responseHeaders) {
      // Set just before the headers go out, so they count every call made until then.
      const writeHead = res.writeHead;
      res.writeHead = function (this: Response, ...args: unknown[]) {
        if (!this.headersSent) for (const [k, v] of Object.entries(costHeaders(ctx))) this.setHeader(k, v);
        return (writeHead as (...a: unknown[]) => Response).apply(this, args);
      } as Response['writeHead'];
    }
    runWithCostContext(ctx, () => next());
  };
}
