/**
 * Flushing the live CostTrackers when the process is asked to stop, so the last calls a script made
 * are not lost to Ctrl-C: a tracker holds each event for `lingerMs` before sending its batch, and a
 * process killed in that window loses it. Runners kill quickly: `tsx` sends SIGKILL about 60 ms
 * after relaying a signal the child did not act on, so the send must start at the signal, not after
 * the linger.
 *
 *   - SIGINT / SIGTERM: every live tracker sends what it holds at once. When no other listener of
 *     the signal is installed (the process relied on the default action), the signal is raised
 *     again once the sends are accepted (or after `SHUTDOWN_WAIT_MS`), so the process still ends
 *     as it would have; a second signal meanwhile ends it at once. With a listener of the
 *     application's own, the application decides when to exit (it should `await tracker.close()`).
 *   - beforeExit (the event loop ran dry with events still held): they are sent.
 *
 * One listener per event for all trackers (not one per tracker), installed while a tracker is live.
 */

/** What this module needs of a tracker. */
export interface Flushable {
  /** Sends everything held now; settles when it is accepted (or failed). */
  flush(): Promise<void>;
  /** Events queued or in flight. */
  pendingEvents(): number;
}

/** How long a signal waits for the sends before the process is let go. */
export const SHUTDOWN_WAIT_MS = 5_000;

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type Signal = (typeof SIGNALS)[number];

const live = new Set<Flushable>();
let stopping = false;

function flushAll(): Promise<unknown> {
  return Promise.allSettled([...live].map((t) => t.flush()));
}

function onSignal(signal: Signal): void {
  const onlyOurs = process.listenerCount(signal) === 1;
  if (stopping) {
    // A second signal while flushing: the caller wants out now.
    if (onlyOurs) reraise(signal);
    return;
  }
  stopping = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waited = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
    timer.unref();
  });
  void Promise.race([flushAll(), waited]).then(() => {
    clearTimeout(timer);
    stopping = false;
    // The default action, now that nothing is held, unless the application handled the signal
    // (counted when it arrived: a `process.once` handler has removed itself by now).
    if (onlyOurs) reraise(signal);
  });
}

function onBeforeExit(): void {
  if ([...live].some((t) => t.pendingEvents() > 0)) void flushAll();
}

function reraise(signal: Signal): void {
  uninstall();
  process.kill(process.pid, signal);
}

function install(): void {
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('beforeExit', onBeforeExit);
}

function uninstall(): void {
  for (const s of SIGNALS) process.off(s, onSignal);
  process.off('beforeExit', onBeforeExit);
}

/** Flushes `tracker` on SIGINT, SIGTERM and beforeExit until `forgetOnExit` is called. */
export function flushOnExit(tracker: Flushable): void {
  if (live.size === 0) install();
  live.add(tracker);
}

export function forgetOnExit(tracker: Flushable): void {
  if (!live.delete(tracker)) return;
  if (live.size === 0) uninstall();
}
