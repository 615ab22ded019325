/**
 * The one error shape of the HTTP API, for every 4xx and 5xx, whoever detects the problem (a route,
 * fastify, Node's HTTP parser): `{ error: <code>, message: <text naming the problem>, issues? }`.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { type CostGuardError, type ErrorCode, type FieldIssue, ValidationError } from '../domain/errors.js';

/** Cost Guard's error codes (src/domain/errors.ts) and those only the HTTP layer produces. */
export type ApiErrorCode =
  | 'validation' // 400: bad input, a malformed URL or HTTP request
  | 'unauthorized' // 401: no valid API key
  | 'forbidden' // 403: the key's scope does not allow the route
  | 'not_found' // 404
  | 'timeout' // 408: the request did not arrive in time
  | 'conflict' // 409
  | 'payload_too_large' // 413
  | 'uri_too_long' // 414
  | 'unsupported_media_type' // 415
  | 'rate_limited' // 429
  | 'headers_too_large' // 431
  | 'internal' // 500
  | 'unavailable'; // 503

export const STATUS_OF_CODE: Record<ApiErrorCode, number> = {
  validation: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  timeout: 408,
  conflict: 409,
  payload_too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  rate_limited: 429,
  headers_too_large: 431,
  internal: 500,
  unavailable: 503,
};

/** The code for a status another layer chose (e.g. a fastify error's statusCode). */
export function codeOfStatus(status: number): ApiErrorCode {
  for (const [code, s] of Object.entries(STATUS_OF_CODE)) if (s === status) return code as ApiErrorCode;
  return status >= 500 ? 'internal' : 'validation';
}

export interface ApiErrorBody {
  error: ApiErrorCode;
  message: string;
  issues?: FieldIssue[];
}

/** An error the API answers as is: status from the code, headers added (Retry-After, WWW-Authenticate). */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly headers: Record<string, string>;
  constructor(code: ApiErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.headers = headers;
  }

  get status(): number {
    return STATUS_OF_CODE[this.code];
  }
}

/** At most `max` characters of something a client sent, for an error message. */
export function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}

/** What Node's HTTP parser (or its request timeout) refused, in our shape. */
export function clientErrorBody(err: NodeJS.ErrnoException, limits: { requestTimeoutMs: number; headersTimeoutMs: number; maxHeaderBytes: number }): { status: number; body: ApiErrorBody } {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        status: 408,
        body: {
          error: 'timeout',
          message: `the request did not arrive in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms); the connection is closed`,
        },
      };
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        body: { error: 'headers_too_large', message: `the request line and headers are larger than ${limits.maxHeaderBytes} bytes` },
      };
    case 'HPE_URI_TOO_LONG': // not raised by llhttp today; kept for safety
      return { status: 414, body: { error: 'uri_too_long', message: 'the request URI is too long' } };
    default:
      return {
        status: 400,
        body: { error: 'validation', message: `malformed HTTP request (${err.code ?? 'parse error'}${err.message ? `: ${clip(err.message, 120)}` : ''})` },
      };
  }
}

/**
 * Writes a JSON error straight to a socket (`Connection: close`) and closes it: for requests Node's
 * parser refused before fastify saw them. As Node's own handler, nothing is written when the socket
 * cannot take it or a response has already begun on it.
 */
export function writeClientError(socket: Socket, status: number, body: ApiErrorBody): void {
  const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(text)}\r\n` +
      'Connection: close\r\n\r\n' +
      text,
  );
  // A client that never reads would keep the socket half-open; end() flushes, then this frees it.
  socket.setTimeout(5_000, () => socket.destroy());
}

const STATUS_OF_DOMAIN_CODE: Record<ErrorCode, number> = { validation: 400, not_found: 404, conflict: 409, unavailable: 503 };

/** The body of a 400 naming each bad field. */
export function validationBody(issues: FieldIssue[], message: string): ApiErrorBody & { error: 'validation'; issues: FieldIssue[] } {
  return { error: 'validation', message, issues };
}

/** Answers a domain error (src/domain/errors.ts) in the one shape, `extra` fields added. */
export function sendError(reply: FastifyReply, err: CostGuardError, extra: Record<string, unknown> = {}): FastifyReply {
  if (err instanceof ValidationError) return reply.code(400).send({ ...validationBody(err.issues, err.message), ...extra });
  return reply.code(STATUS_OF_DOMAIN_CODE[err.code]).send({ error: err.code, message: err.message, ...extra });
}

/** Answers an error only the HTTP layer produces, with its headers (Retry-After, WWW-Authenticate). */
export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply.code(err.status).send({ error: err.code, message: err.message });
}
