/** Per-request cost contexts for HTTP servers: the fastify plugin and the express middleware. */
export { costGuardFastify, type CostGuardFastifyOptions } from './fastify.js';
export { costGuardExpress, type CostGuardExpressOptions } from './express.js';
export { type CostGuardMiddlewareOptions, type PerRequest, attributionOf, costHeaders } from './common.js';
