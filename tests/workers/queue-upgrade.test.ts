// A queue stored by the previous version (schema 1: payloads inline, idempotency by message id
// alone, no registration flag) upgrades in place when its object starts.
import { describe, it, expect } from "vitest";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { bytesOf, env, queueStub, randomBytes, randomKey, textOf } from "./helpers.ts";
import { ackAs, enqueueAs, inbox, queueSql, sent } from "./delivery-client.ts";

/** Schema 1 as earlier versions created it. */
const SCHEMA_1 = `
  CREATE TABLE schema_version (version INTEGER NOT NULL);
  INSERT INTO schema_version (version) VALUES (1);
  CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, channel BLOB NOT NULL, payload BLOB NOT NULL,
    size INTEGER NOT NULL, expires_at INTEGER NOT NULL);
  CREATE INDEX messages_channel ON messages (channel, seq);
  CREATE INDEX messages_expiry ON messages (expires_at);
  CREATE TABLE idempotency (message_id BLOB PRIMARY KEY, seq INTEGER NOT NULL, expires_at INTEGER NOT NULL);
  CREATE INDEX idempotency_expiry ON idempotency (expires_at);
  CREATE TABLE devices (device BLOB PRIMARY KEY, added_at INTEGER NOT NULL);
  CREATE TABLE cursors (device BLOB NOT NULL, channel BLOB NOT NULL, acked INTEGER NOT NULL, PRIMARY KEY (device, channel));`;

/** Writes the schema-1 tables and default-channel messages; returns their expiry time. */
function seedSchema1(sql: SqlStorage, texts: string[]): number {
  sql.exec(SCHEMA_1);
  const later = Date.now() + 3_600_000;
  for (const text of texts) {
    sql.exec(
      "INSERT INTO messages (channel, payload, size, expires_at) VALUES (?, ?, ?, ?)",
      new Uint8Array(0),
      bytesOf(text),
      text.length,
      later,
    );
  }
  return later;
}

describe("queue schema upgrade", () => {
  it("keeps an old queue's messages, finds its account in D1, and takes new messages after them", async () => {
    const key = randomKey();
    const stub = queueStub(key);
    const oldId = randomBytes(16);
    await runInDurableObject(stub, (_instance, state) => {
      const later = seedSchema1(state.storage.sql, ["old one", "old two"]);
      state.storage.sql.exec("INSERT INTO idempotency (message_id, seq, expires_at) VALUES (?, 1, ?)", oldId, later);
    });
    await env.DB.prepare("INSERT INTO users (username, identity_key, opaque_record, created_at) VALUES (?, ?, ?, ?)")
      .bind(`old-${crypto.randomUUID()}`, key, new Uint8Array(192), Date.now())
      .run();
    await evictDurableObject(stub);

    expect(await stub.stats()).toMatchObject({ messages: 2, bytes: "old one".length + "old two".length });
    // An id the old index held is no longer a duplicate for someone else.
    const fresh = await sent(enqueueAs(randomKey(), key, bytesOf("new"), { messageId: oldId }));
    expect(fresh).toMatchObject({ seq: 3, duplicate: false });
    expect((await inbox(key)).map((e) => textOf(e.data))).toEqual(["old one", "old two", "new"]);
    const version = await queueSql<{ version: number }>(key, "SELECT version FROM schema_version");
    expect(version).toEqual([{ version: 4 }]);
  });

  it("keeps the default device's cursor and drops device ids that were never registered", async () => {
    const key = randomKey();
    const stub = queueStub(key);
    await runInDurableObject(stub, (_instance, state) => {
      seedSchema1(state.storage.sql, ["one", "two"]);
      // The default device acked "one"; a free-form id some client once sent never acked anything.
      for (const device of [new Uint8Array(0), bytesOf("phone")]) {
        state.storage.sql.exec("INSERT INTO devices (device, added_at) VALUES (?, 0)", device);
      }
      state.storage.sql.exec(
        "INSERT INTO cursors (device, channel, acked) VALUES (?, ?, 1)",
        new Uint8Array(0),
        new Uint8Array(0),
      );
    });
    await env.DB.prepare("INSERT INTO users (username, identity_key, opaque_record, created_at) VALUES (?, ?, ?, ?)")
      .bind(`old-${crypto.randomUUID()}`, key, new Uint8Array(192), Date.now())
      .run();
    await evictDurableObject(stub);

    expect((await inbox(key)).map((e) => textOf(e.data))).toEqual(["two"]);
    expect((await queueSql<{ n: number }>(key, "SELECT COUNT(*) AS n FROM devices"))[0].n).toBe(1);
    // Only the default device holds messages now: its ack deletes them.
    await ackAs(key, 2);
    expect((await stub.stats()).messages).toBe(0);
  });
});
