/**
 * An incremental Server-Sent Events parser for the wrappers' side channel: text goes in as the
 * bytes arrive (in whatever pieces the network gives), complete events come out with their raw text
 * (so a filtering pass can re-emit exactly what it keeps). Follows the SSE rules the SDKs follow:
 * events end at a blank line (`\n\n`, `\r\n\r\n` or `\r\r`), `event:` names the event, `data:` lines
 * are joined with `\n`, lines starting with `:` are comments, one space after the colon is dropped.
 */

export interface SseEvent {
  event: string | null;
  data: string;
  /** The event's text as received, its terminating blank line included. */
  raw: string;
}

const BOUNDARY = /\r\n\r\n|\n\n|\r\r/g;

export class SseParser {
  private buffer = '';

  /** Feeds text; calls `onEvent` for each event it completes. */
  push(text: string, onEvent: (event: SseEvent) => void): void {
    if (text.length === 0) return;
    this.buffer = this.buffer.length === 0 ? text : this.buffer + text;
    let start = 0;
    BOUNDARY.lastIndex = 0;
    for (let m = BOUNDARY.exec(this.buffer); m !== null; m = BOUNDARY.exec(this.buffer)) {
      const end = m.index + m[0].length;
      const event = parseEvent(this.buffer.slice(start, m.index), this.buffer.slice(start, end));
      start = end;
      if (event) onEvent(event);
    }
    this.buffer = start === 0 ? this.buffer : this.buffer.slice(start);
  }

  /** The stream ended: an event without its closing blank line still counts (as the SDKs' decoders do). */
  end(onEvent: (event: SseEvent) => void): void {
    const rest = this.buffer;
    this.buffer = '';
    if (rest.trim().length === 0) return;
    const event = parseEvent(rest.replace(/(\r\n|\r|\n)+$/, ''), rest);
    if (event) onEvent(event);
  }

  /** Text received but not yet part of a complete event. */
  get pending(): string {
    return this.buffer;
  }
}

function parseEvent(block: string, raw: string): SseEvent | null {
  let event: string | null = null;
  let data: string[] | null = null;
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line.length === 0 || line.charCodeAt(0) === 58 /* ':' */) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* ' ' */) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') (data ??= []).push(value);
  }
  if (event === null && data === null) return null;
  return { event, data: data === null ? '' : data.join('\n'), raw };
}
