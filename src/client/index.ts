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
export {
  CostContext,
  currentCostContext,
  runWithCostContext,
  withCostAttribution,
  type CallPricer,
  type CallStatus,
  type CostAttribution,
  type CostTotals,
  type RecordedCall,
} from './context.js';
export {
  ORIGINAL_MAX_TOKENS,
  applyPromptGuard,
  isWrappedAnthropic,
  isWrappedOpenAI,
  wrapAnthropic,
  wrapOpenAI,
  type PromptGuardChange,
  type PromptGuardOptions,
  type StreamUsageMode,
  type UsageRecorder,
  type WrapperOptions,
} from './wrappers/index.js';
export { costGuardExpress, costGuardFastify, type CostGuardExpressOptions, type CostGuardFastifyOptions, type CostGuardMiddlewareOptions } from './middleware/index.js';
