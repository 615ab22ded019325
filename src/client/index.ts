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
  type PreflightStatus,
  type RecordReceipt,
} from './cost-tracker.js';
export { BudgetChangeRejectedError, assertScope, fromTemporalError, queryBudgetStatus, setScopeBudgets } from './budgets.js';
export { connectTemporal } from './connect.js';
export { Authorizer, AuthorizeValidationError, authorizeRequestProblems, scopesOf, type AuthorizeRequest, type AuthorizeResult, type Decision, type DecisionReason, type ScopeRemaining } from './preflight.js';
export { type Advice, type AdviceSettings, type Complexity, DEFAULT_ADVICE_SETTINGS, adviseModel } from '../domain/advice.js';
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
  BudgetDeniedError,
  ORIGINAL_MAX_TOKENS,
  ORIGINAL_PROMPT_GUARD,
  ResponseCache,
  applyPromptGuard,
  createResponseCache,
  type AuthorizeOptions,
  type ResponseCacheOptions,
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
