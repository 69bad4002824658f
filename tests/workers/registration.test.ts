// Enqueue to an identity that is not registered here is NotFound and stores nothing; the queue
// knows its registration itself (no D1 on the hot path), set when the account registers.
import { describe, it, expect } from "vitest";
import { evictDurableObject } from "cloudflare:test";
import { Status } from "../../proto/index.ts";
import { bytesOf, env, errorOf, queueStub, randomKey, registeredKey } from "./helpers.ts";
import { batchAs, enqueueAs, inbox, queueSql, sent } from "./delivery-client.ts";
import { register } from "./opaque-client.ts";

/** Many RPCs per test: a backstop for a busy machine, not a performance bound. */
const BUSY = 30_000;

/** Tables the queue object created: none means it stored nothing at all. */
const tablesOf = async (key: Uint8Array) =>
  (
    await queueSql<{ name: string }>(
      key,
      "SELECT name FROM sqlite_master WHERE name IN ('messages', 'schema_version', 'meta')",
    )
  ).map((r) => r.name);

async function insertUser(identityKey: Uint8Array): Promise<string> {
  const username = `legacy-${crypto.randomUUID()}`;
  await env.DB.prepare("INSERT INTO users (username, identity_key, opaque_record, created_at) VALUES (?, ?, ?, ?)")
    .bind(username, identityKey, new Uint8Array(192), Date.now())
    .run();
  return username;
}

describe("registered recipients only", () => {
  it(
    "answers Enqueue to a never-registered identity with NotFound, and the queue stores nothing",
    async () => {
      const stranger = randomKey();
      for (let i = 0; i < 3; i++) {
        const res = await enqueueAs(randomKey(), stranger, bytesOf("into the void"));
        expect(res.status).toBe(Status.NotFound);
        expect(errorOf(res).message).toContain("not registered");
      }
      expect(await tablesOf(stranger)).toEqual([]);
      expect(await queueStub(stranger).stats()).toMatchObject({ messages: 0, bytes: 0 });
    },
    BUSY,
  );

  it(
    "refuses a BatchEnqueue naming the unregistered recipient, storing nothing for the others",
    async () => {
      const [a, b] = await Promise.all([registeredKey(), registeredKey()]);
      const stranger = randomKey();
      const res = await batchAs(randomKey(), [a, stranger, b], bytesOf("to all"));
      expect(res.status).toBe(Status.NotFound);
      expect(errorOf(res).message).toContain("recipient_keys[1]");
      for (const k of [a, b]) expect(await queueStub(k).stats()).toMatchObject({ messages: 0, reserved: 0 });
      expect(await tablesOf(stranger)).toEqual([]);
    },
    BUSY,
  );

  it(
    "accepts messages as soon as the account registers (OPAQUE registration marks its queue)",
    async () => {
      const key = randomKey();
      expect((await enqueueAs(randomKey(), key, bytesOf("too early"))).status).toBe(Status.NotFound);
      expect(await register(`reg-${crypto.randomUUID()}`, "correct horse", key)).toBe(true);
      const { seq } = await sent(enqueueAs(randomKey(), key, bytesOf("welcome")));
      expect((await inbox(key)).map((e) => e.seq)).toEqual([seq]);
    },
    BUSY,
  );

  it(
    "finds an account registered before queues knew it in D1 once, and then keeps the answer",
    async () => {
      const key = randomKey();
      const username = await insertUser(key); // as before this version: no mark on the queue
      await sent(enqueueAs(randomKey(), key, bytesOf("first")));
      // The queue remembers (across restarts): it no longer needs the users table at all.
      await env.DB.prepare("DELETE FROM users WHERE username = ?").bind(username).run();
      await evictDurableObject(queueStub(key));
      await sent(enqueueAs(randomKey(), key, bytesOf("second")));
      expect(await queueStub(key).stats()).toMatchObject({ messages: 2 });
    },
    BUSY,
  );
});
