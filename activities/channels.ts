/**
 * The notification channel activity: delivers ONE notification to ONE named channel, at most once.
 *
 * The delivery log (`notification_deliveries`, one row per notification and channel) is read under
 * a PostgreSQL advisory lock held for the whole send: a second attempt for the same key (a retry
 * whose first attempt's completion was lost, or a duplicate activity) waits, then finds the row
 * `sent` and returns `already_sent` without sending. The lock is a session lock on a dedicated
 * connection rather than a row lock in a transaction so the `sending` row and its attempt count are
 * committed before the send: a worker that dies mid-send still leaves its attempt in the log, and
 * PostgreSQL releases the lock with the dead connection.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Pool } from 'pg';
import { type ChannelConfig, channelSecrets } from '../src/channels/config.js';
import { ChannelDeliveryError, scrubSecrets } from '../src/channels/errors.js';
import { sendToChannel } from '../src/channels/index.js';
import type { Config } from '../src/config/index.js';
import { withDeliveryLock } from '../src/db/deliveries.js';
import type { Notification } from '../src/domain/notification.js';
import type { Logger } from '../src/lib/logger.js';

export type DeliveryOutcome = 'sent' | 'already_sent' | 'retryable_error' | 'config_error';

export interface DeliveryResult {
  channel: string;
  status: 'sent' | 'already_sent';
  /** When the notification reached the channel (the first time, for `already_sent`). */
  deliveredAt: string;
  /** Attempts the delivery log counted for this notification and channel. */
  attempts: number;
}

export interface DeliverNotificationInput {
  channel: string;
  notification: Notification;
}

export interface ChannelActivityDeps {
  pool: Pool;
  config: Config;
  logger: Logger;
  clock: () => number;
  /** Called once per outcome (metrics hook). */
  onDelivery?: (channel: string, channelType: string, outcome: DeliveryOutcome) => void;
}

/** The error type workflows list in `nonRetryableErrorTypes` (it is non-retryable anyway). */
export const CHANNEL_CONFIG_ERROR = 'ChannelConfigError';

export const createChannelActivities = (deps: ChannelActivityDeps) => {
  const { pool, config, logger, clock } = deps;
  const report = (channel: string, type: string, outcome: DeliveryOutcome) => deps.onDelivery?.(channel, type, outcome);

  return {
    async deliverNotification(input: DeliverNotificationInput): Promise<DeliveryResult> {
      const { channel, notification: n } = input;
      const log = logger.child({ channel, sourceId: n.sourceId, notificationId: n.notificationId });
      const channelConfig: ChannelConfig | undefined = Object.hasOwn(config.channels, channel) ? config.channels[channel] : undefined;
      if (!channelConfig) {
        log.error({ outcome: 'config_error' }, 'notification not delivered: unknown channel');
        report(channel, 'unknown', 'config_error');
        throw ApplicationFailure.nonRetryable(
          `Channel "${channel}" is not configured: expected it under \`channels:\` in the config file (configured: ${Object.keys(config.channels).join(', ') || 'none'})`,
          CHANNEL_CONFIG_ERROR,
        );
      }
      const type = channelConfig.type;

      return withDeliveryLock(pool, { sourceId: n.sourceId, notificationId: n.notificationId, channel }, async (delivery) => {
        const prior = await delivery.read();
        if (prior?.status === 'sent' && prior.sent_at) {
          log.info({ channelType: type, outcome: 'already_sent', attempts: prior.attempts }, 'notification already delivered: not sent again');
          report(channel, type, 'already_sent');
          return { channel, status: 'already_sent', deliveredAt: prior.sent_at.toISOString(), attempts: prior.attempts };
        }

        const startedAt = new Date(clock());
        const claimed = await delivery.claim({ channelType: type, level: n.level, kind: n.kind, startedAt });
        const attempts = claimed.attempts;
        const reached = new Set(claimed.sent_recipients);

        try {
          const sent = await sendToChannel(channelConfig, n, {
            timeoutMs: channelConfig.timeoutMs,
            now: clock,
            reached,
            recipientReached: (recipient) => delivery.recipientReached(recipient),
          });
          const sentAt = new Date(clock());
          await delivery.markSent(sentAt, sent.responseStatus);
          log.info({ channelType: type, outcome: 'sent', attempts, responseStatus: sent.responseStatus }, 'notification delivered');
          report(channel, type, 'sent');
          return { channel, status: 'sent', deliveredAt: sentAt.toISOString(), attempts };
        } catch (err) {
          const failure =
            err instanceof ChannelDeliveryError
              ? err
              : new ChannelDeliveryError(`unexpected ${(err as Error)?.name ?? 'error'}: ${(err as Error)?.message ?? String(err)}`, { retryable: true });
          const reason = scrubSecrets(failure.message, channelSecrets(channelConfig));
          await delivery.markFailed({ retryable: failure.retryable, reason, responseStatus: failure.status });
          const message = `Channel "${channel}" (${type}) failed on attempt ${attempts}: ${reason}`;
          if (failure.retryable) {
            log.warn({ channelType: type, outcome: 'retryable_error', attempts, responseStatus: failure.status, reason }, 'notification not delivered: will retry');
            report(channel, type, 'retryable_error');
            throw new Error(message);
          }
          log.error({ channelType: type, outcome: 'config_error', attempts, responseStatus: failure.status, reason }, 'notification not delivered: permanent failure, fix the channel configuration');
          report(channel, type, 'config_error');
          throw ApplicationFailure.nonRetryable(message, CHANNEL_CONFIG_ERROR);
        }
      });
    },
  };
};

export type ChannelActivities = ReturnType<typeof createChannelActivities>;
