/**
 * One HTTP POST with a timeout, classified for retries: the channels' shared transport. Uses Node's
 * global fetch; the URL never appears in an error (for Slack it is the credential).
 */
import { ChannelDeliveryError, isRetryableStatus } from './errors.js';

export interface HttpResponse {
  status: number;
  body: string;
}

const MAX_DETAIL = 200;

/** The far side's explanation, shortened, for an error message (callers scrub it). */
function detailOf(body: string): string {
  const oneLine = body.replace(/\s+/g, ' ').trim();
  return oneLine.length > MAX_DETAIL ? `${oneLine.slice(0, MAX_DETAIL - 3)}...` : oneLine;
}

function networkCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? cause.code : (err as Error).name;
}

/**
 * POSTs and returns the response when it is a 2xx. Throws ChannelDeliveryError otherwise:
 * retryable on network errors, timeouts, 408, 429 and 5xx; permanent on other statuses.
 * `describeError` turns an error body into detail (Twilio's JSON error code, say).
 */
export async function post(
  what: string,
  url: string,
  init: { headers: Record<string, string>; body: string },
  timeoutMs: number,
  describeError: (body: string) => string = detailOf,
): Promise<HttpResponse> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: init.headers, body: init.body, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') throw new ChannelDeliveryError(`${what}: no answer within ${timeoutMs} ms`, { retryable: true });
    throw new ChannelDeliveryError(`${what}: network error (${networkCode(err)})`, { retryable: true });
  }
  let body: string;
  try {
    body = await res.text();
  } catch (err) {
    throw new ChannelDeliveryError(`${what}: connection lost reading the answer (${networkCode(err)})`, { retryable: true, status: res.status });
  }
  if (res.ok) return { status: res.status, body };
  const detail = describeError(body);
  throw new ChannelDeliveryError(`${what} answered HTTP ${res.status}${detail ? `: ${detail}` : ''}`, {
    retryable: isRetryableStatus(res.status),
    status: res.status,
  });
}
