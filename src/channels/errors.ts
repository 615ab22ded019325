/**
 * How a channel send fails. The activity turns a retryable failure into a plain Error (Temporal
 * retries it) and a permanent one into a non-retryable `ChannelConfigError`: retrying a bad
 * credential or a rejected recipient only repeats the failure, and hides it from the operator.
 */
export class ChannelDeliveryError extends Error {
  /** True for network errors, timeouts, HTTP 408/429/5xx and temporary SMTP replies (4xx). */
  readonly retryable: boolean;
  /** The HTTP status or SMTP reply code, when the far side answered. */
  readonly status: number | null;

  constructor(message: string, opts: { retryable: boolean; status?: number | null }) {
    super(message);
    this.name = 'ChannelDeliveryError';
    this.retryable = opts.retryable;
    this.status = opts.status ?? null;
  }
}

/** HTTP statuses worth retrying: the request may succeed later unchanged. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

const URL_RE = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;
/** Long opaque runs (tokens, signatures, webhook path secrets). */
const TOKEN_RE = /\b[A-Za-z0-9+/_=-]{32,}\b/g;

/**
 * Removes what could be a secret from text meant for logs, the delivery log and failure messages:
 * the given secrets verbatim, every URL (a Slack webhook URL IS its credential) and long tokens.
 */
export function scrubSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join('[redacted]');
  }
  return out.replace(URL_RE, '[url]').replace(TOKEN_RE, '[redacted]');
}
