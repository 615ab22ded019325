/** The Cost Guard client library: record LLM usage from a service. */
export {
  CostTracker,
  CostTrackerClosedError,
  CostTrackerSendError,
  CostTrackerUnavailableError,
  CostTrackerValidationError,
  isTransientSendError,
  parseTrackedEvents,
  scopeOfEvent,
  toBatchEvent,
  type BatchEvent,
  type CostTrackerClient,
  type CostTrackerOptions,
  type CostTrackerStats,
  type RecordReceipt,
} from './cost-tracker.js';
export { BudgetChangeRejectedError, assertScope, fromTemporalError, queryBudgetStatus, setScopeBudgets } from './budgets.js';
export { connectTemporal } from './connect.js';
export { fromAnthropicUsage, fromOpenAIUsage, type TokenUsage, type UsageEventInput } from '../domain/usage.js';
