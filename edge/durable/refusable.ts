// Refusals across a Durable Object boundary: RPC loses error classes, so an object returns the
// QpqErrors its methods throw as values (refusable) and the worker throws them again (accepted).
import { QpqError, toErrorReply, type ErrorReply } from "../../proto/index.ts";

export type Refusable<T> = { ok: true; value: T } | { ok: false; error: ErrorReply };

/** Runs a Durable Object method: a QpqError becomes a refusal; anything else still throws. */
export async function refusable<T>(fn: () => T | Promise<T>): Promise<Refusable<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (err instanceof QpqError) return { ok: false, error: toErrorReply(err) };
    throw err;
  }
}

/** The value of a Durable Object call, or its refusal thrown again as the QpqError it was. */
export function accepted<T>(result: Refusable<T>): T {
  if (result.ok) return result.value;
  throw new QpqError(result.error.status, result.error.message, result.error.retryAfterMs);
}
