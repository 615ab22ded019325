/** What every channel sender receives besides its config and the notification. */
export interface SendContext {
  /** Each request (or SMTP exchange) gives up after this long. */
  timeoutMs: number;
  /** Epoch milliseconds (signatures carry a timestamp). */
  now: () => number;
  /**
   * Recipients an earlier attempt already reached. A channel that sends one request per recipient
   * (Twilio SMS) skips them, so a retry after a partial failure does not text anyone twice.
   */
  reached: ReadonlySet<string>;
  /** Records durably that `recipient` was reached, before the next one is tried. */
  recipientReached(recipient: string): Promise<void>;
}

/** What a successful send reports for the delivery log. */
export interface SendReport {
  /** HTTP status (or SMTP reply code) of the last answer. */
  responseStatus: number | null;
}
