import { pino, type Logger } from 'pino';

/** Paths pino redacts wherever they appear in a log object: secrets never reach the logs. */
export const REDACT_PATHS = [
  'apiKey', '*.apiKey', 'apiKeys', '*.apiKeys', 'authorization', '*.authorization', 'headers.authorization',
  'headers["x-api-key"]', 'password', '*.password', 'secret', '*.secret', 'token', '*.token', 'authToken',
  '*.authToken', 'webhookUrl', '*.webhookUrl', 'databaseUrl', '*.databaseUrl', 'redisUrl', '*.redisUrl',
];

export function createLogger(level: string, name = 'costguard'): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

export type { Logger };
