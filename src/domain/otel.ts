/**
 * OpenTelemetry GenAI spans as usage events (POST /v1/traces, src/api/routes/otlp.ts). Pure: the
 * route decodes the OTLP body (JSON or protobuf) and validates each event this module builds with
 * the same check as POST /v1/usage.
 *
 * - A span is one event, keyed by trace id + span id (`requestId` `otel:<trace>:<span>`), so an
 *   exporter's or a Collector's retries and duplicated exports count once.
 * - A span counts when it carries a GenAI token count (`gen_ai.usage.*` of the current semantic
 *   conventions, or the older `gen_ai.usage.prompt_tokens` / `llm.usage.*` names). Other spans are
 *   ignored (and counted by the route).
 * - Cached tokens are never counted twice: the convention of src/domain/usage.ts is inclusive
 *   (`inputTokens` includes the cache reads and writes). The semantic conventions say the same of
 *   `gen_ai.usage.input_tokens`, but an instrumentation that copies Anthropic's raw `input_tokens`
 *   (which leaves the cache out) does not; `providers.<name>.inputIncludesCache: false` says so for
 *   a provider, and the cache counts are then added to the input count. Likewise for reasoning
 *   tokens and the output count.
 */
import { z } from 'zod';
import type { FieldIssue } from './errors.js';
import type { TokenUsage, UsageEventInput } from './usage.js';

/** An OTLP AnyValue as JSON gives it or as protobufjs decodes it (64-bit integers as Long objects). */
export interface OtlpAnyValue {
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: number | string | { toString(): string } | null;
  doubleValue?: number | string | null;
  arrayValue?: unknown;
  kvlistValue?: unknown;
  bytesValue?: unknown;
}
export interface OtlpKeyValue {
  key?: string | null;
  value?: OtlpAnyValue | null;
}
export interface OtlpSpan {
  /** Hex in OTLP/JSON, bytes in protobuf. */
  traceId?: string | Uint8Array | null;
  spanId?: string | Uint8Array | null;
  name?: string | null;
  startTimeUnixNano?: unknown;
  endTimeUnixNano?: unknown;
  attributes?: OtlpKeyValue[] | null;
}
export interface OtlpExportTraceRequest {
  resourceSpans?: { resource?: { attributes?: OtlpKeyValue[] | null } | null; scopeSpans?: { spans?: OtlpSpan[] | null }[] | null }[] | null;
}

/** How a provider's instrumentations count: do the input and output counts include the cache and reasoning counts? */
export interface ProviderCounting {
  inputIncludesCache: boolean;
  outputIncludesReasoning: boolean;
}

export interface OtelMapping {
  /** Attribute names tried in order for each field, each on the span first, then on its resource. */
  attributes: { userId: string[]; team: string[]; project: string[]; taskType: string[]; tags: string[] };
  /** Span or resource attributes named `<tagPrefix><name>` become the tag `<name>` (empty: off). */
  tagPrefix: string;
  /** Provider names as instrumentations send them (lower case) -> Cost Guard's (the price catalog's). */
  providerAliases: Record<string, string>;
  /** Per provider (after aliases); any other provider counts as the semantic conventions say (both true). */
  providers: Record<string, ProviderCounting>;
}

export const OTEL_DEFAULTS: OtelMapping = {
  attributes: {
    userId: ['user.id', 'enduser.id', 'costguard.user_id', 'service.name'],
    team: ['costguard.team', 'service.namespace'],
    project: ['costguard.project'],
    taskType: ['costguard.task_type', 'gen_ai.operation.name'],
    tags: ['deployment.environment.name'],
  },
  tagPrefix: 'costguard.tag.',
  providerAliases: {
    'aws.bedrock': 'aws',
    'azure.ai.openai': 'azure',
    'azure.ai.inference': 'azure',
    'gcp.gemini': 'google',
    'gcp.vertex_ai': 'google',
    'gcp.gen_ai': 'google',
    mistral_ai: 'mistral',
    x_ai: 'x-ai',
  },
  providers: {
    openai: { inputIncludesCache: true, outputIncludesReasoning: true },
    anthropic: { inputIncludesCache: true, outputIncludesReasoning: true },
  },
};

const attributeNames = z.array(z.string().min(1).max(200)).max(20);
/** The `otel` section of the config file; what it names replaces the default of that field (aliases and providers are merged). */
export const otelConfigSchema = z
  .object({
    attributes: z
      .object({ userId: attributeNames.optional(), team: attributeNames.optional(), project: attributeNames.optional(), taskType: attributeNames.optional(), tags: attributeNames.optional() })
      .strict()
      .optional(),
    tagPrefix: z.string().max(100).optional(),
    providerAliases: z.record(z.string().min(1).max(100), z.string().min(1).max(100)).optional(),
    providers: z
      .record(z.string().min(1).max(100), z.object({ inputIncludesCache: z.boolean(), outputIncludesReasoning: z.boolean().default(true) }).strict())
      .optional(),
  })
  .strict()
  .default({})
  .transform(
    (o): OtelMapping => ({
      attributes: { ...OTEL_DEFAULTS.attributes, ...o.attributes },
      tagPrefix: o.tagPrefix ?? OTEL_DEFAULTS.tagPrefix,
      providerAliases: { ...OTEL_DEFAULTS.providerAliases, ...lowerKeys(o.providerAliases ?? {}) },
      providers: { ...OTEL_DEFAULTS.providers, ...lowerKeys(o.providers ?? {}) },
    }),
  );

function lowerKeys<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v]));
}

/** Token attributes, current names first. */
const TOKEN_ATTRIBUTES: Record<Exclude<keyof TokenUsage, 'cacheWrite1hTokens'>, string[]> = {
  inputTokens: ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens', 'llm.usage.prompt_tokens'],
  outputTokens: ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens', 'llm.usage.completion_tokens'],
  cacheReadTokens: ['gen_ai.usage.cache_read.input_tokens', 'gen_ai.usage.cache_read_input_tokens', 'llm.usage.cache_read_input_tokens'],
  cacheWriteTokens: [
    'gen_ai.usage.cache_creation.input_tokens',
    'gen_ai.usage.cache_write.input_tokens',
    'gen_ai.usage.cache_creation_input_tokens',
    'llm.usage.cache_creation_input_tokens',
  ],
  reasoningTokens: ['gen_ai.usage.reasoning.output_tokens', 'gen_ai.usage.reasoning_tokens', 'llm.usage.reasoning_tokens'],
};
const TOKEN_ENTRIES = Object.entries(TOKEN_ATTRIBUTES) as [keyof typeof TOKEN_ATTRIBUTES, string[]][];
const PROVIDER_ATTRIBUTES = ['gen_ai.provider.name', 'gen_ai.system'];
const MODEL_ATTRIBUTES = ['gen_ai.response.model', 'gen_ai.request.model', 'llm.response.model', 'llm.request.model'];

type Value = string | number | boolean | bigint;
type Attributes = Map<string, Value>;

/** A protobufjs Long: two 32-bit halves. */
interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}
function isLong(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && typeof (v as LongLike).low === 'number' && typeof (v as LongLike).high === 'number';
}

/** A 64-bit integer as a number when exact, else a bigint (or the string, when not an integer at all). */
function integer(v: unknown): number | bigint | string {
  if (typeof v === 'number') return v;
  if (isLong(v)) {
    // Read from the halves: Long's own toString divides, and this runs for every token count and time.
    if (v.high === 0 || (v.high > 0 && v.high < 0x200000)) return v.high * 0x1_0000_0000 + (v.low >>> 0);
    const big = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    return v.unsigned ? big : BigInt.asIntN(64, big);
  }
  try {
    const big = BigInt(String(v));
    return big >= -BigInt(Number.MAX_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  } catch {
    return String(v);
  }
}

/** An AnyValue as a scalar (arrays, maps and bytes are of no use here and read as absent). */
function scalar(v: OtlpAnyValue | null | undefined): Value | undefined {
  if (!v) return undefined;
  if (v.stringValue != null) return v.stringValue;
  if (v.intValue != null) return integer(v.intValue);
  if (v.doubleValue != null) return typeof v.doubleValue === 'number' ? v.doubleValue : Number(v.doubleValue);
  if (v.boolValue != null) return v.boolValue;
  return undefined;
}

export function attributeMap(list: readonly OtlpKeyValue[] | null | undefined): Attributes {
  const map: Attributes = new Map();
  if (!Array.isArray(list)) return map;
  for (const kv of list) {
    if (typeof kv?.key !== 'string') continue;
    const v = scalar(kv.value);
    if (v !== undefined) map.set(kv.key, v);
  }
  return map;
}

const ZERO_RE = /^0+$/;
const HEX_RE = /^[0-9a-fA-F]+$/;

/** A trace or span id as lower-case hex; undefined unless `bytes` long and not all zero (an invalid id in OTLP). */
export function idHex(id: unknown, bytes: number): string | undefined {
  let hex: string;
  if (typeof id === 'string') {
    if (id.length !== bytes * 2 || !HEX_RE.test(id)) return undefined;
    hex = id.toLowerCase();
  } else if (id instanceof Uint8Array && id.length === bytes) {
    hex = Buffer.from(id.buffer, id.byteOffset, id.length).toString('hex');
  } else {
    return undefined;
  }
  return ZERO_RE.test(hex) ? undefined : hex;
}

/** Unix nanoseconds (number, decimal string or Long) as epoch milliseconds; undefined when absent or 0. */
function nanosToMs(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  let ms: number;
  if (isLong(v)) {
    // Exact without BigInt: 2^32 ns = 4294 ms + 967296 ns, and high * 967296 + low stays below 2^53.
    const high = v.high >>> 0;
    ms = high * 4294 + Math.floor((high * 967_296 + (v.low >>> 0)) / 1_000_000);
  } else if (typeof v === 'string' && /^\d{7,25}$/.test(v)) {
    ms = Number(v.slice(0, -6));
  } else if (typeof v === 'number' && Number.isFinite(v)) {
    ms = Math.floor(v / 1_000_000);
  } else {
    return undefined;
  }
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

/** What one span is. `sources` names the attribute each event field came from, for messages. */
export type SpanOutcome =
  | { kind: 'ignored' }
  | { kind: 'refused'; span: SpanRef; issues: FieldIssue[] }
  | { kind: 'event'; span: SpanRef; input: UsageEventInput & { requestId: string }; sources: Record<string, string> };

/** How a refusal names a span: its name and ids as sent. */
export interface SpanRef {
  name: string;
  traceId: string;
  spanId: string;
}

function first(names: readonly string[], span: Attributes, resource?: Attributes): { name: string; value: Value } | undefined {
  for (const name of names) {
    const value = span.get(name) ?? resource?.get(name);
    if (value !== undefined) return { name, value };
  }
  return undefined;
}

/** A token count as the event check expects it: a number (bigints within range become numbers). */
function tokenValue(v: Value): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return v;
}

function label(v: Value): unknown {
  return typeof v === 'string' ? v : typeof v === 'bigint' ? v.toString() : String(v);
}

/** Maps one span (with its resource's attributes) to a usage event, a refusal or nothing. */
export function mapSpan(span: OtlpSpan, resource: Attributes, mapping: OtelMapping): SpanOutcome {
  const attrs = attributeMap(span.attributes);
  const tokens: Partial<Record<keyof typeof TOKEN_ATTRIBUTES, { name: string; value: Value }>> = {};
  for (const [kind, names] of TOKEN_ENTRIES) {
    const found = first(names, attrs);
    if (found) tokens[kind] = found;
  }
  if (!tokens.inputTokens && !tokens.outputTokens) return { kind: 'ignored' };

  const traceId = idHex(span.traceId, 16);
  const spanId = idHex(span.spanId, 8);
  const ref: SpanRef = {
    name: typeof span.name === 'string' ? span.name.slice(0, 100) : '',
    traceId: traceId ?? (typeof span.traceId === 'string' ? span.traceId.slice(0, 40) : ''),
    spanId: spanId ?? (typeof span.spanId === 'string' ? span.spanId.slice(0, 40) : ''),
  };
  const issues: FieldIssue[] = [];
  if (!traceId) issues.push({ path: 'traceId', message: 'must be 16 bytes (32 hex digits), not all zero' });
  if (!spanId) issues.push({ path: 'spanId', message: 'must be 8 bytes (16 hex digits), not all zero' });
  const provider = first(PROVIDER_ATTRIBUTES, attrs, resource);
  const model = first(MODEL_ATTRIBUTES, attrs);
  const userId = first(mapping.attributes.userId, attrs, resource);
  if (!provider) issues.push({ path: 'gen_ai.provider.name', message: `is missing (nor ${PROVIDER_ATTRIBUTES.slice(1).join(', ')})` });
  if (!model) issues.push({ path: 'gen_ai.response.model', message: `is missing (nor ${MODEL_ATTRIBUTES.slice(1).join(', ')})` });
  if (!userId) issues.push({ path: mapping.attributes.userId[0] ?? 'user.id', message: `no user: none of ${mapping.attributes.userId.join(', ') || '(none configured)'} is set on the span or its resource` });
  const endMs = nanosToMs(span.endTimeUnixNano) ?? nanosToMs(span.startTimeUnixNano);
  if (endMs === undefined) issues.push({ path: 'endTimeUnixNano', message: 'must be a time in Unix nanoseconds' });
  if (issues.length > 0 || !traceId || !spanId || !provider || !model || !userId || endMs === undefined) return { kind: 'refused', span: ref, issues };

  const sources: Record<string, string> = { provider: provider.name, model: model.name, userId: userId.name };
  const providerName = String(label(provider.value)).trim().toLowerCase();
  const providerId = mapping.providerAliases[providerName] ?? providerName;
  const counting = mapping.providers[providerId] ?? { inputIncludesCache: true, outputIncludesReasoning: true };

  const usage: Record<string, unknown> = {};
  for (const [kind, found] of Object.entries(tokens)) {
    usage[kind] = tokenValue(found.value);
    sources[`usage.${kind}`] = found.name;
  }
  const n = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
  // Exclusive counts become inclusive (the one convention); non-numbers are left for the check to name.
  if (!counting.inputIncludesCache && n(usage.inputTokens ?? 0) !== undefined) {
    const extra = (n(usage.cacheReadTokens) ?? 0) + (n(usage.cacheWriteTokens) ?? 0);
    if (extra > 0) usage.inputTokens = (n(usage.inputTokens) ?? 0) + extra;
  }
  if (!counting.outputIncludesReasoning && n(usage.outputTokens ?? 0) !== undefined && (n(usage.reasoningTokens) ?? 0) > 0) {
    usage.outputTokens = (n(usage.outputTokens) ?? 0) + (n(usage.reasoningTokens) ?? 0);
  }

  const input: UsageEventInput & { requestId: string } = {
    requestId: `otel:${traceId}:${spanId}`,
    occurredAt: new Date(endMs),
    provider: providerId,
    model: label(model.value) as string,
    userId: label(userId.value) as string,
    usage: usage as Partial<TokenUsage>,
  };
  for (const field of ['team', 'project', 'taskType'] as const) {
    const found = first(mapping.attributes[field], attrs, resource);
    if (found) {
      input[field] = label(found.value) as string;
      sources[field] = found.name;
    }
  }
  const tags: Record<string, string> = {};
  for (const name of mapping.attributes.tags) {
    const found = first([name], attrs, resource);
    if (found) tags[name] = label(found.value) as string;
  }
  if (mapping.tagPrefix) {
    for (const m of [resource, attrs]) {
      for (const [k, v] of m) if (k.startsWith(mapping.tagPrefix) && k.length > mapping.tagPrefix.length) tags[k.slice(mapping.tagPrefix.length)] = label(v) as string;
    }
  }
  if (Object.keys(tags).length > 0) input.tags = tags;
  return { kind: 'event', span: ref, input, sources };
}

/** Every span of an export request, each with its resource's attributes, in order. */
export function spansOf(request: OtlpExportTraceRequest): { span: OtlpSpan; resource: Attributes }[] {
  const out: { span: OtlpSpan; resource: Attributes }[] = [];
  const resourceSpans = Array.isArray(request?.resourceSpans) ? request.resourceSpans : [];
  for (const rs of resourceSpans) {
    const resource = attributeMap(rs?.resource?.attributes);
    const scopes = Array.isArray(rs?.scopeSpans) ? rs.scopeSpans : [];
    for (const ss of scopes) {
      const spans = Array.isArray(ss?.spans) ? ss.spans : [];
      for (const span of spans) out.push({ span, resource });
    }
  }
  return out;
}

/** Issues of the event check (paths like `usage.inputTokens`) named by the attributes they came from. */
export function issuesByAttribute(issues: readonly FieldIssue[], sources: Record<string, string>): FieldIssue[] {
  return issues.map((i) => {
    const key = Object.keys(sources).find((k) => i.path === k || i.path.startsWith(`${k}.`));
    return key ? { path: sources[key]!, message: i.message } : i;
  });
}

/** One line naming a refused span and why: `span "chat gpt-4o" (trace ..., span ...): attr: message; ...`. */
export function describeRefusal(span: SpanRef, issues: readonly FieldIssue[]): string {
  const shown = issues.slice(0, 5).map((i) => `${i.path || '(span)'}: ${i.message}`);
  if (issues.length > 5) shown.push(`and ${issues.length - 5} more`);
  return `span ${JSON.stringify(span.name)} (trace ${span.traceId || '?'}, span ${span.spanId || '?'}): ${shown.join('; ')}`;
}
