// Every workflow the worker runs (the bundle's entry point).
export { budgetWorkflow } from './budget.js';
export { alertWorkflow } from './alert.js';
export { reportWorkflow } from './report.js';
export { ingestWorkflow } from './ingest.js';
