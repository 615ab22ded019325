/**
 * The opt-in prompt guard (the original `optimize_token_usage`): applied by the wrappers to a
 * request before it is sent, off unless configured, and never silent: what it changed goes into the
 * recorded event's metadata (`promptGuard: { maxTokensCappedFrom, maxTokensCappedTo, truncatedChars }`).
 *
 * `promptGuard: true` is the original exactly (ORIGINAL_PROMPT_GUARD): a prompt over 8,000
 * characters is cut to 8,000 and `...` is appended; then the output limit is capped at 1,000 when
 * the (cut) prompt, lower-cased, contains "summarization", else at 2,000 when it contains
 * "analysis". The object form configures each part, and adds caps by task type:
 *
 *   - **Output caps per task type** (`maxTokensByTaskType`, e.g. ORIGINAL_MAX_TOKENS: summarization
 *     1,000, analysis 2,000; `defaultMaxTokens` for the others): the call's output limit
 *     (`max_completion_tokens`, or `max_tokens` when the caller used that, for Chat Completions;
 *     `max_output_tokens` for Responses; `max_tokens` for Messages) is lowered to the cap, or set to it
 *     when the caller gave none (`maxTokensCappedFrom: null`). A lower limit of the caller's is kept.
 *   - **Prompt truncation** (`maxPromptChars`): when the prompt's text (every message's text, the
 *     system prompt and instructions included) is longer, the excess is cut from the END of the
 *     longest user text, then the next longest, and so on. System prompts, instructions, assistant
 *     and tool messages are never cut, and no text is cut to nothing (one character is kept).
 *
 * Pure: never mutates the caller's request; a changed request is a copy sharing every part it did
 * not change (so `tools`, `response_format` and the rest pass through as the same objects).
 */
import type { Api } from './protocols.js';

export interface PromptGuardOptions {
  /** Output-token caps by task type (e.g. `ORIGINAL_MAX_TOKENS`). */
  maxTokensByTaskType?: Readonly<Record<string, number>>;
  /** The cap for task types not in `maxTokensByTaskType`. Default: none. */
  defaultMaxTokens?: number;
  /** Longest prompt, in characters (UTF-16 code units), before user text is cut. Default: none. */
  maxPromptChars?: number;
  /** Appended to a text that was cut (the original: `...`). Default: nothing. */
  truncationMarker?: string;
  /**
   * Output caps by a word in the prompt: the first keyword the lower-cased prompt (after any cut)
   * contains gives the cap (the original: summarization 1,000, then analysis 2,000). The lower of
   * this and the task type's cap applies.
   */
  maxTokensByKeyword?: ReadonlyArray<readonly [keyword: string, cap: number]>;
}

/** The original `optimize_token_usage`, exactly: what `promptGuard: true` means. */
export const ORIGINAL_PROMPT_GUARD: Readonly<PromptGuardOptions> = Object.freeze({
  maxPromptChars: 8000,
  truncationMarker: '...',
  maxTokensByKeyword: Object.freeze([Object.freeze(['summarization', 1000] as const), Object.freeze(['analysis', 2000] as const)]),
});

/** The original specification's caps. */
export { ORIGINAL_MAX_TOKENS } from '../../domain/advice.js';

/** What the guard changed (recorded as the event's `metadata.promptGuard`). */
export interface PromptGuardChange {
  /** The caller's output limit before the cap (null: the caller set none). Present only when capped. */
  maxTokensCappedFrom?: number | null;
  maxTokensCappedTo?: number;
  /** Characters cut from the prompt. Present only when it was cut. */
  truncatedChars?: number;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function positiveInteger(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new TypeError(`promptGuard.${name} must be a whole number >= 1, got ${String(v)}`);
  return v;
}

/** Checks the options once (the wrappers call it when they are created); `true` is ORIGINAL_PROMPT_GUARD, `false` none. */
export function validatePromptGuard(opts: PromptGuardOptions | boolean | undefined): PromptGuardOptions | undefined {
  if (opts === undefined || opts === false) return undefined;
  if (opts === true) return ORIGINAL_PROMPT_GUARD;
  if (!isObj(opts)) throw new TypeError(`promptGuard must be true (the original's rules) or an object, got ${String(opts)}`);
  positiveInteger('defaultMaxTokens', opts.defaultMaxTokens);
  positiveInteger('maxPromptChars', opts.maxPromptChars);
  if (opts.truncationMarker !== undefined && (typeof opts.truncationMarker !== 'string' || opts.truncationMarker.length > 100)) {
    throw new TypeError(`promptGuard.truncationMarker must be a string of at most 100 characters, got ${String(opts.truncationMarker)}`);
  }
  if (opts.maxTokensByKeyword !== undefined) {
    const list: unknown = opts.maxTokensByKeyword;
    if (!Array.isArray(list)) throw new TypeError('promptGuard.maxTokensByKeyword must be a list of [keyword, cap] pairs');
    for (const [i, pair] of list.entries()) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || pair[0] === '') throw new TypeError(`promptGuard.maxTokensByKeyword[${i}] must be [keyword, cap] with a non-empty keyword`);
      positiveInteger(`maxTokensByKeyword[${i}] cap`, pair[1]);
    }
  }
  if (opts.maxTokensByTaskType !== undefined) {
    if (!isObj(opts.maxTokensByTaskType)) throw new TypeError('promptGuard.maxTokensByTaskType must be an object of task type -> cap');
    for (const [k, v] of Object.entries(opts.maxTokensByTaskType)) positiveInteger(`maxTokensByTaskType.${k}`, v);
  }
  return opts;
}

/** The output cap for a task type, if any. */
export function capFor(opts: PromptGuardOptions, taskType: string): number | undefined {
  const caps = opts.maxTokensByTaskType;
  if (caps && Object.hasOwn(caps, taskType)) return caps[taskType];
  return opts.defaultMaxTokens;
}

function maxTokensField(api: Api, body: Obj): string {
  if (api === 'responses') return 'max_output_tokens';
  if (api === 'messages') return 'max_tokens';
  if (body.max_completion_tokens != null) return 'max_completion_tokens';
  return body.max_tokens != null ? 'max_tokens' : 'max_completion_tokens';
}

/** Applies the guard to a request body. Returns the body to send (the same object when nothing changed) and the change. */
export function applyPromptGuard(api: Api, body: unknown, taskType: string, opts: PromptGuardOptions): { body: unknown; change: PromptGuardChange | undefined } {
  if (!isObj(body)) return { body, change: undefined };
  let out: Obj = body;
  const change: PromptGuardChange = {};
  // Cut first: the original looks for its keywords in the prompt it sends.
  if (opts.maxPromptChars !== undefined) {
    const cut = truncatePrompt(api, out, opts.maxPromptChars, opts.truncationMarker ?? '');
    if (cut) {
      out = cut.body;
      change.truncatedChars = cut.truncatedChars;
    }
  }
  const caps = [capFor(opts, taskType), keywordCap(api, out, opts.maxTokensByKeyword)].filter((c): c is number => c !== undefined);
  if (caps.length > 0) {
    const cap = Math.min(...caps);
    const field = maxTokensField(api, body);
    const current = body[field];
    if (typeof current !== 'number' || current > cap) {
      out = { ...out, [field]: cap };
      change.maxTokensCappedFrom = typeof current === 'number' ? current : null;
      change.maxTokensCappedTo = cap;
    }
  }
  return out === body ? { body, change: undefined } : { body: out, change };
}

/** The cap of the first keyword the lower-cased prompt contains, if any. */
function keywordCap(api: Api, body: Obj, pairs: PromptGuardOptions['maxTokensByKeyword']): number | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const prompt = promptSlots(api, body)
    .map((s) => s.text)
    .join('\n')
    .toLowerCase();
  return pairs.find(([keyword]) => prompt.includes(keyword.toLowerCase()))?.[1];
}

interface Slot {
  path: Array<string | number>;
  text: string;
  cuttable: boolean;
}

/** Every prompt text of a request, with where it sits and whether the guard may cut it. */
export function promptSlots(api: Api, body: Obj): Slot[] {
  const slots: Slot[] = [];
  const addContent = (content: unknown, path: Array<string | number>, cuttable: boolean, textTypes: readonly string[]) => {
    if (typeof content === 'string') {
      slots.push({ path, text: content, cuttable });
    } else if (Array.isArray(content)) {
      content.forEach((part, j) => {
        if (isObj(part) && typeof part.text === 'string' && (part.type === undefined || textTypes.includes(part.type as string))) {
          slots.push({ path: [...path, j, 'text'], text: part.text, cuttable });
        }
      });
    }
  };
  if (api === 'responses') {
    if (typeof body.instructions === 'string') slots.push({ path: ['instructions'], text: body.instructions, cuttable: false });
    if (typeof body.input === 'string') {
      slots.push({ path: ['input'], text: body.input, cuttable: true });
    } else if (Array.isArray(body.input)) {
      body.input.forEach((item, i) => {
        if (!isObj(item)) return;
        addContent(item.content, ['input', i, 'content'], item.role === 'user', ['input_text', 'output_text', 'text']);
      });
    }
    return slots;
  }
  if (api === 'messages') {
    addContent(body.system, ['system'], false, ['text']);
  }
  if (Array.isArray(body.messages)) {
    body.messages.forEach((m, i) => {
      if (!isObj(m)) return;
      addContent(m.content, ['messages', i, 'content'], m.role === 'user', ['text']);
    });
  }
  return slots;
}

/** Cuts the prompt to `max` characters as described above, appending `marker` to each text cut; undefined when it is not longer. */
export function truncatePrompt(api: Api, body: Obj, max: number, marker = ''): { body: Obj; truncatedChars: number } | undefined {
  const slots = promptSlots(api, body);
  let total = 0;
  for (const s of slots) total += s.text.length;
  let excess = total - max;
  if (excess <= 0) return undefined;
  const cuttable = slots.filter((s) => s.cuttable && s.text.length > 1).sort((a, b) => b.text.length - a.text.length);
  if (cuttable.length === 0) return undefined;
  const out: Obj = { ...body };
  const copied = new WeakSet<object>([out]);
  let truncated = 0;
  for (const s of cuttable) {
    if (excess <= 0) break;
    let keep = Math.max(1, s.text.length - excess);
    // Never split a surrogate pair.
    const c = s.text.charCodeAt(keep - 1);
    if (c >= 0xd800 && c <= 0xdbff && keep > 1) keep--;
    if (keep >= s.text.length) continue;
    const removed = s.text.length - keep;
    setPath(out, s.path, s.text.slice(0, keep) + marker, copied);
    truncated += removed;
    excess -= removed;
  }
  return truncated > 0 ? { body: out, truncatedChars: truncated } : undefined;
}

/** Sets a value deep in `root`, copying each container on the way the first time it is touched. */
function setPath(root: Obj, path: Array<string | number>, value: unknown, copied: WeakSet<object>): void {
  let parent = root as Record<string | number, unknown>;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    let child = parent[key] as object;
    if (!copied.has(child)) {
      child = Array.isArray(child) ? child.slice() : { ...child };
      copied.add(child);
      parent[key] = child;
    }
    parent = child as Record<string | number, unknown>;
  }
  parent[path[path.length - 1]!] = value;
}
