import { pino, type Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';

/** Paths pino redacts wherever they appear in a log object: secrets never reach the logs. */
export const REDACT_PATHS = [
  'apiKey', '*.apiKey', 'apiKeys', '*.apiKeys', 'authorization', '*.authorization', 'headers.authorization',
  'headers["x-api-key"]', 'password', '*.password', 'secret', '*.secret', 'token', '*.token', 'authToken',
  '*.authToken', 'webhookUrl', '*.webhookUrl', 'databaseUrl', '*.databaseUrl', 'redisUrl', '*.redisUrl',
];

/**
 * `json`: one JSON object a line (for collectors); `pretty`: pino-pretty's coloured human-readable
 * lines; `auto` (the default, config LOG_FORMAT): pretty when stdout is a terminal, JSON otherwise.
 */
export type LogFormat = 'json' | 'pretty' | 'auto';

/** The format `auto` resolves to for a stream: pretty on a terminal, JSON when piped or redirected. */
export function resolveLogFormat(format: LogFormat, isTTY: boolean | undefined = process.stdout.isTTY): 'json' | 'pretty' {
  return format === 'auto' ? (isTTY === true ? 'pretty' : 'json') : format;
}

/**
 * The process logger. Redaction happens in pino before any formatting, so the pretty output hides
 * secrets exactly as the JSON does. Pretty lines are written synchronously in this thread (no
 * transport worker), to `destination` (default stdout).
 */
export function createLogger(level: string, name = 'costguard', format: LogFormat = 'auto', destination?: NodeJS.WritableStream): Logger {
  const options = { name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (level !== 'silent' && resolveLogFormat(format) === 'pretty') {
    const useColor = destination === undefined && process.stdout.isTTY === true;
    return pino(options, PinoPretty({ colorize: useColor, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true, ...(destination ? { destination } : {}) }));
  }
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
