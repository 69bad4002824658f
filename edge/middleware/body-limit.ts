// The relay body of one RPC, read within a cap: no legitimate front sends more than one frame's
// payload, so a larger announced body is refused unread, and one that turns out larger than
// announced (or is chunked) stops being read at the cap.
import { createMiddleware } from "hono/factory";
import { refuse } from "./front-auth.ts";

/** What bodyLimit adds to the context: the body, read. */
export type BodyVariables = { Variables: { body: Uint8Array } };

/**
 * Reads a body, counting the bytes actually received: Content-Length may be absent (chunked) or
 * lie. Null once more than `max` bytes arrived; the rest is cancelled, never buffered.
 */
async function readCapped(body: ReadableStream<Uint8Array> | null, max: number): Promise<Uint8Array | null> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** 413 for a body above `max` bytes; otherwise the body is read into `c.var.body`. */
export function bodyLimit(max: number) {
  return createMiddleware<BodyVariables>(async (c, next) => {
    if (Number(c.req.header("content-length") ?? 0) > max) return refuse(413, "payload too large");
    const body = await readCapped(c.req.raw.body, max);
    if (!body) return refuse(413, "payload too large");
    c.set("body", body);
    await next();
  });
}
