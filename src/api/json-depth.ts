/**
 * How deeply a JSON text nests, found by scanning the text once, without recursion and without
 * parsing it: a body nested thousands of levels deep is refused before anything walks it recursively
 * (a validator, a serializer, a logger), each of which could overflow the stack.
 */

/** The API refuses bodies nesting deeper than this (objects and arrays; `{"a":[1]}` nests 2 levels). */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The deepest nesting of objects and arrays in `text`, ignoring brackets inside string literals
 * (with their escapes). Stops scanning as soon as the depth exceeds `stopAbove`, returning that
 * depth. Malformed text (unbalanced, unterminated string) gives some depth; parsing it fails later.
 * One pass of charCodeAt: about 6 ms for a 2 MB body of 10,000 events, less than JSON.parse of it.
 */
export function jsonNestingDepth(text: string, stopAbove = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++; // the escaped character, whatever it is
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && depth > 0) {
      depth--;
    }
  }
  return max;
}
