/**
 * The error vocabulary of Cost Guard. Every error a caller can act on carries a stable `code`
 * (validation, not_found, conflict, unavailable) so the API, the CLI and the client library map it
 * the same way: 400, 404, 409 and 503; exit codes 2, 3, 4 and 5.
 */
export type ErrorCode = 'validation' | 'not_found' | 'conflict' | 'unavailable';

/** One problem with one field of an input, e.g. `{ path: 'usage.inputTokens', message: 'must be ...' }`. */
export interface FieldIssue {
  path: string;
  message: string;
}

export class CostGuardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad input. `issues` names each bad field; nothing was written. */
export class ValidationError extends CostGuardError {
  readonly issues: FieldIssue[];
  constructor(issues: FieldIssue[], prefix = 'invalid input') {
    super('validation', `${prefix}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    this.issues = issues;
  }
}

export class NotFoundError extends CostGuardError {
  constructor(message: string) {
    super('not_found', message);
  }
}

export class ConflictError extends CostGuardError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export class UnavailableError extends CostGuardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
  }
}
