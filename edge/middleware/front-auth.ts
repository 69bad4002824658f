// Only the QUIC fronts may call the edge: every route that serves them runs this first, so a
// caller without the front secret gets nothing read, not even a body byte.
import { createMiddleware } from "hono/factory";
import { RelayHeader } from "../../proto/index.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";
import type { EdgeDeps } from "../deps.ts";
import { sha256, timingSafeEqual } from "../lib/crypto.ts";

/** Compares digests, so the comparison takes the same time whatever the presented secret's length. */
async function frontIsAuthentic(
  deps: Pick<EdgeDeps, "frontSecretDigest">,
  presented: string | undefined,
): Promise<boolean> {
  if (!presented) return false;
  return timingSafeEqual(await sha256(encodeUtf8(presented)), await deps.frontSecretDigest);
}

/**
 * A refusal sent before the request body was read. `connection: close` because workerd drops a
 * keep-alive connection whose body was left unread anyway; saying so lets the client know.
 */
export function refuse(status: 401 | 413, text: string): Response {
  return new Response(text, { status, headers: { "content-type": "text/plain", connection: "close" } });
}

/** 401 unless the request carries the front secret. */
export function frontOnly(deps: Pick<EdgeDeps, "frontSecretDigest">) {
  return createMiddleware(async (c, next) => {
    if (!(await frontIsAuthentic(deps, c.req.header(RelayHeader.frontAuth))))
      return refuse(401, "front authentication failed");
    await next();
  });
}
