// The one error taxonomy: every failure a handler can report is a QpqError carrying its wire
// status. Anything else that escapes a handler becomes Internal without details (toErrorReply).
import { Status, type StatusCode } from "./status.ts";

export class QpqError extends Error {
  readonly status: StatusCode;
  readonly retryAfterMs: number;
  constructor(status: StatusCode, message: string, retryAfterMs = 0) {
    super(message);
    this.name = "QpqError";
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

export const badRequest = (message: string) => new QpqError(Status.BadRequest, message);
export const unauthorized = (message = "missing, unknown or expired session") =>
  new QpqError(Status.Unauthorized, message);
export const forbidden = (message: string) => new QpqError(Status.Forbidden, message);
export const notFound = (message: string) => new QpqError(Status.NotFound, message);
export const rateLimited = (message: string, retryAfterMs: number) =>
  new QpqError(Status.RateLimited, message, Math.max(1, Math.ceil(retryAfterMs)));
export const unavailable = (message: string, retryAfterMs = 0) =>
  new QpqError(Status.Unavailable, message, retryAfterMs);
export const deadlineExceeded = (message = "the server could not finish in time") =>
  new QpqError(Status.DeadlineExceeded, message);
export const unknownMethod = (methodId: number) => new QpqError(Status.UnknownMethod, `unknown method ${methodId}`);

export interface ErrorReply {
  status: StatusCode;
  message: string;
  retryAfterMs: number;
}

/** Maps any thrown value to what the client sees. Unexpected errors never leak details. */
export function toErrorReply(err: unknown): ErrorReply {
  if (err instanceof QpqError) {
    return { status: err.status, message: err.message, retryAfterMs: err.retryAfterMs };
  }
  return { status: Status.Internal, message: "internal error", retryAfterMs: 0 };
}
