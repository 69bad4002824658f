// e2e helpers around pushes: a push sent before a connection's push subscription opened is lost
// (push is a hint), so tests that expect one first wait until the subscription is live.
import type { QpqClient } from "../../sdk/client.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Polls `probe` until it answers something other than undefined, or fails after `ms`. */
export async function until<T>(probe: () => T | undefined, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Waits until the front forwards pushes to `who`: `via` enqueues a probe message on a fresh
 * channel (again, until one arrives as PushNewMessage). The probes stay in that channel.
 */
export async function pushLive(who: { client: QpqClient; key: Uint8Array }, via: QpqClient): Promise<void> {
  const probe = crypto.getRandomValues(new Uint8Array(16));
  let seen = false;
  const off = who.client.onNewMessage((e) => {
    if (hex(e.channelId) === hex(probe)) seen = true;
  });
  try {
    const deadline = Date.now() + 20_000;
    while (!seen) {
      if (Date.now() > deadline) throw new Error("the push subscription never became live");
      await via.enqueue({ recipientKey: who.key, channelId: probe, payload: Uint8Array.of(0) });
      await until(() => (seen ? true : undefined), "the probe's push", 500).catch(() => undefined);
    }
  } finally {
    off();
  }
}
