/**
 * The one text rule, applied wherever a string enters Cost Guard (the API, CostTracker, the CLI,
 * workflow signals and updates, the Temporal UI's `ack` signal):
 *
 *   a string is well-formed Unicode (no lone UTF-16 surrogate), holds no control character
 *   (C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F; free text such as an acknowledgement note may
 *   keep tab and newline), and is within its stated length.
 *
 * Anything else is refused with a message naming the problem; a string is never silently rewritten
 * (PostgreSQL refuses NUL in text and jsonb, and would store a lone surrogate as U+FFFD).
 *
 * Structured values (event metadata) are checked the same way, key by key and value by value, with
 * a bounded depth, iteratively (no recursion: a hostile nesting cannot overflow the stack).
 * Pure, and free of zod: the workflows use it.
 */

/** Control characters (C0, DEL, C1). */
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
/** The same, but tab, newline and carriage return are allowed (free text). */
// eslint-disable-next-line no-control-regex
const CONTROL_EXCEPT_LINES_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export interface TextRule {
  /** Longest allowed, in UTF-16 code units (what JavaScript's `length` counts). */
  max: number;
  /** At least this many characters (default 1: empty strings are refused). */
  min?: number;
  /** Free text: tab and line breaks are allowed. */
  multiline?: boolean;
}

function codePoint(s: string, re: RegExp): string {
  const m = re.exec(s);
  const c = m ? m[0].codePointAt(0)! : 0;
  return `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Why `s` breaks the text rule, or null when it is fine. Never trims or rewrites. */
export function textProblem(s: string, rule: TextRule): string | null {
  const min = rule.min ?? 1;
  if (s.length < min) return min === 1 ? 'must not be empty' : `must be at least ${min} characters`;
  if (s.length > rule.max) return `must be at most ${rule.max} characters, got ${s.length}`;
  if (LONE_SURROGATE_RE.test(s)) return 'must be well-formed Unicode (it holds a lone UTF-16 surrogate)';
  const control = rule.multiline ? CONTROL_EXCEPT_LINES_RE : CONTROL_RE;
  if (control.test(s)) return `must not contain control characters (found ${codePoint(s, control)} at index ${control.exec(s)!.index})`;
  return null;
}

/** True when `s` is a string that satisfies `rule`. */
export function isCleanText(s: unknown, rule: TextRule): s is string {
  return typeof s === 'string' && textProblem(s, rule) === null;
}

/** Limits of a JSON value (event metadata). */
export interface JsonRule {
  /** Deepest nesting of objects and arrays (the value itself is depth 1 when it is an object). */
  maxDepth: number;
  /** Longest key and longest string value. */
  maxKey: number;
  maxString: number;
  /** Serialised size limit, in characters of JSON. */
  maxJson: number;
}

export const METADATA_RULE: JsonRule = { maxDepth: 8, maxKey: 200, maxString: 16_384, maxJson: 16_384 };

function describeValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'bigint') return 'a bigint';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return 'a symbol';
  if (v instanceof Date) return 'a Date (send an ISO-8601 string)';
  if (typeof v === 'object' && v !== null) return `an object of class ${Object.getPrototypeOf(v)?.constructor?.name ?? 'null-prototype'}`;
  return typeof v;
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * The first problem of a JSON object (metadata), as `{ path, message }` relative to it, or null.
 * Only JSON values are allowed: plain objects, arrays, finite numbers, booleans, null and strings
 * under the text rule (keys too). Walks iteratively with an explicit stack.
 */
export function jsonProblem(value: unknown, rule: JsonRule = METADATA_RULE): { path: string; message: string } | null {
  if (!isPlainRecord(value)) return { path: '', message: `must be a JSON object, got ${Array.isArray(value) ? 'an array' : describeValue(value)}` };
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: '', depth: 1 }];
  const join = (path: string, key: string | number) => (path === '' ? String(key) : `${path}.${key}`);
  let visited = 0;
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (++visited > 10_000) return { path: '', message: 'must hold at most 10,000 values' };
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { path, message: `must be a finite number, got ${v}` };
      continue;
    }
    if (typeof v === 'string') {
      const p = textProblem(v, { max: rule.maxString, min: 0, multiline: true });
      if (p) return { path, message: p };
      continue;
    }
    const isArray = Array.isArray(v);
    if (!isArray && !isPlainRecord(v)) return { path, message: `must be a JSON value, got ${describeValue(v)}` };
    if (depth > rule.maxDepth) return { path, message: `nests deeper than ${rule.maxDepth} levels` };
    if (isArray) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: join(path, i), depth: depth + 1 });
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i]!;
      const kp = textProblem(k, { max: rule.maxKey, min: 0 });
      if (kp) return { path: join(path, JSON.stringify(k.slice(0, 40))), message: `key ${kp}` };
      stack.push({ v: (v as Record<string, unknown>)[k], path: join(path, k), depth: depth + 1 });
    }
  }
  const size = JSON.stringify(value).length;
  if (size > rule.maxJson) return { path: '', message: `must serialise to at most ${rule.maxJson / 1024} KiB of JSON, got ${size} characters` };
  return null;
}
