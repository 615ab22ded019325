// Every workflow the worker runs (the bundle's entry point).
export { budgetWorkflow } from './budget.js';
export { reportWorkflow } from './report.js';
