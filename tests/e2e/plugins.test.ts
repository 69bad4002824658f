// Plugins over real QUIC: every hook fires with the right event at the right moment, a
// rejecting on_message_send stores nothing, a hostile plugin never stops the gateway, and a
// changed file takes effect on the next call.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Status } from "../../proto/index.ts";
import { QpqCallError } from "../../sdk/client.ts";
import { startTestSystem, randomIdentity, recordingLogger, uniqueName, type TestSystem } from "../support/system.ts";

const RECORDER = `
const record = (hook, event) => log(JSON.stringify({ hook, event }));
export function on_connect(e) { record("on_connect", e); }
export function on_disconnect(e) { record("on_disconnect", e); }
export function on_message_receive(e) { record("on_message_receive", e); }
export function on_group_join(e) { record("on_group_join", e); }
export function on_group_leave(e) {
  record("on_group_leave", e);
  if (e.member.startsWith("ffff")) return { reject: "this member stays" };
}
export function on_message_send(e) {
  record("on_message_send", e);
  if (e.payloadSize === 13) return { reject: "thirteen bytes are unlucky" };
}
`;

// Loops forever on 7-byte payloads: the call times out and the default (fail-closed) applies.
const LOOPER = `
export const manifest = { name: "looper", limits: { timeoutMs: 20 } };
export function on_message_send(e) { if (e.payloadSize === 7) { for (;;) {} } }
`;

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (n: number) => new Uint8Array(n).fill(1);

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function statusOf(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
    return { status: Status.Ok, message: "" };
  } catch (err) {
    if (err instanceof QpqCallError) return { status: err.status, message: err.message };
    throw err;
  }
}

describe("plugins in the gateway", () => {
  let sys: TestSystem;
  let dir: string;
  const logger = recordingLogger();
  type Recorded = { hook: string; event: Record<string, unknown> };
  const recorded = (): Recorded[] =>
    logger.entries
      .filter((e) => e.msg === "plugin log" && e.fields.plugin === "10-recorder")
      .map((e) => JSON.parse(String(e.fields.line)) as Recorded);
  const find = (hook: string, pred: (e: Record<string, unknown>) => boolean = () => true) =>
    until(() => recorded().find((r) => r.hook === hook && pred(r.event))?.event, hook);

  const aliceKey = randomIdentity();
  const bobKey = randomIdentity();
  const aliceName = uniqueName("alice");
  const bobName = uniqueName("bob");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "qpq-plugins-"));
    writeFileSync(join(dir, "10-recorder.js"), RECORDER);
    writeFileSync(join(dir, "20-looper.js"), LOOPER);
    // Every test logs in on fresh connections: lift the per-address auth limit for this suite.
    sys = await startTestSystem({ env: { QPQ_PLUGIN_DIR: dir, QPQ_AUTH_PER_MINUTE: "6000" }, logger });
    expect(sys.system.plugins?.plugins.map((p) => p.name)).toEqual(["10-recorder", "looper"]);
  });

  afterAll(async () => {
    await sys?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("fires on_connect, on_message_send, on_message_receive, on_group_join and on_disconnect with their events", async () => {
    const alice = await sys.connect();
    const bob = await sys.connect();
    await alice.register(aliceName, "pw-a", aliceKey);
    await bob.register(bobName, "pw-b", bobKey);
    await alice.login(aliceName, "pw-a", aliceKey);
    await bob.login(bobName, "pw-b", bobKey);

    const connect = await find("on_connect");
    expect(connect).toMatchObject({ alpn: "qpq", transport: "quic" });
    expect(String(connect.clientAddress)).toMatch(/^127\.0\.0\.1:\d+$/);

    const channelId = crypto.getRandomValues(new Uint8Array(16));
    const messageId = crypto.getRandomValues(new Uint8Array(16));
    await alice.enqueue({ recipientKey: bobKey, payload: bytes(42), channelId, ttlSecs: 60, messageId });
    const send = await find("on_message_send", (e) => e.payloadSize === 42);
    expect(send).toMatchObject({
      senderIdentity: hex(aliceKey),
      recipients: [hex(bobKey)],
      channelId: hex(channelId),
      ttlSecs: 60,
      messageId: hex(messageId),
      batch: false,
    });
    expect(send).not.toHaveProperty("payload");

    const got = await bob.fetch({ channelId });
    expect(got).toHaveLength(1);
    const receive = await find("on_message_receive");
    expect(receive).toMatchObject({
      recipient: hex(bobKey),
      channelId: hex(channelId),
      count: 1,
      sizes: [42],
      wait: false,
    });

    const carol = randomIdentity();
    await alice.createGroupChannel([bobKey, carol], "team");
    const joins = await until(() => {
      const j = recorded().filter((r) => r.hook === "on_group_join" && r.event.actor === hex(aliceKey));
      return j.length >= 2 ? j.map((r) => r.event.member) : undefined;
    }, "two group joins");
    expect(new Set(joins)).toEqual(new Set([hex(bobKey), hex(carol)]));

    const known = new Set(
      recorded()
        .filter((r) => r.hook === "on_connect")
        .map((r) => r.event.connectionId),
    );
    const temp = await sys.connect();
    await temp.health();
    const tempConnect = await find("on_connect", (e) => !known.has(e.connectionId));
    await temp.close();
    const gone = await find("on_disconnect", (e) => e.connectionId === tempConnect.connectionId);
    expect(Number(gone.durationMs)).toBeGreaterThanOrEqual(0);
  });

  it("fires on_group_leave before RemoveMember and can veto it", async () => {
    const alice = await sys.connect();
    await alice.login(aliceName, "pw-a", aliceKey);
    const carol = randomIdentity();
    const keeper = randomIdentity();
    keeper.set([0xff, 0xff]);
    const { channelId } = await alice.createGroupChannel([carol, keeper]);
    await alice.removeMember(channelId, carol);
    const leave = await find("on_group_leave", (e) => e.member === hex(carol));
    expect(leave).toMatchObject({ channelId: hex(channelId), actor: hex(aliceKey) });
    const vetoed = await statusOf(alice.removeMember(channelId, keeper));
    expect(vetoed.status).toBe(Status.Forbidden);
    expect(vetoed.message).toContain("this member stays");
    // carol is gone (NotFound on a second removal), the vetoed member was never removed at the edge.
    expect((await statusOf(alice.removeMember(channelId, carol))).status).toBe(Status.NotFound);
  });

  it("answers Forbidden with the plugin's reason for a rejected send, and stores nothing", async () => {
    const alice = await sys.connect();
    await alice.login(aliceName, "pw-a", aliceKey);
    const bob = await sys.connect();
    await bob.login(bobName, "pw-b", bobKey);
    const channelId = crypto.getRandomValues(new Uint8Array(16));
    const res = await statusOf(alice.enqueue({ recipientKey: bobKey, payload: bytes(13), channelId }));
    expect(res.status).toBe(Status.Forbidden);
    expect(res.message).toContain("thirteen bytes are unlucky");
    expect(await bob.peek({ channelId })).toEqual([]);
    expect(logger.entries.some((e) => e.msg === "plugin rejected" && e.fields.plugin === "10-recorder")).toBe(true);
  });

  it("contains a looping plugin (fail-closed) while other clients are served", async () => {
    const alice = await sys.connect();
    await alice.login(aliceName, "pw-a", aliceKey);
    const other = await sys.connect();
    const [looped, ...healths] = await Promise.all([
      statusOf(alice.enqueue({ recipientKey: bobKey, payload: bytes(7) })),
      ...Array.from({ length: 20 }, () => other.health()),
    ]);
    expect(looped.status).toBe(Status.Forbidden);
    expect(healths.every((h) => h.status === "ok")).toBe(true);
    // The looper's isolate was rebuilt: ordinary sends pass again.
    expect((await alice.enqueue({ recipientKey: bobKey, payload: bytes(8) })).seq).toBeGreaterThan(0);
  });

  it("reloads a changed plugin without restarting the front or dropping connections", async () => {
    const alice = await sys.connect();
    await alice.login(aliceName, "pw-a", aliceKey);
    const file = join(dir, "30-quota.js");
    writeFileSync(file, `export function on_message_send() { return { reject: "quota v1" }; }`);
    const v1 = await until(async () => {
      const r = await statusOf(alice.enqueue({ recipientKey: bobKey, payload: bytes(9) }));
      return r.message.includes("quota v1") ? r : undefined;
    }, "the new plugin");
    expect(v1.status).toBe(Status.Forbidden);
    writeFileSync(file, `export function on_message_send() { return { reject: "quota v2" }; }`);
    await until(async () => {
      const r = await statusOf(alice.enqueue({ recipientKey: bobKey, payload: bytes(9) }));
      return r.message.includes("quota v2") ? r : undefined;
    }, "the reloaded plugin");
    unlinkSync(file);
    await until(
      async () =>
        (await statusOf(alice.enqueue({ recipientKey: bobKey, payload: bytes(9) }))).status === Status.Ok
          ? true
          : undefined,
      "the plugin's removal",
    );
    // The same connection served every call.
    expect((await alice.health()).status).toBe("ok");
  });

  it("closes connections an on_connect plugin rejects", async () => {
    const file = join(dir, "05-deny.js");
    writeFileSync(file, `export function on_connect() { return { reject: "closed for maintenance" }; }`);
    await until(
      () =>
        sys.system.plugins?.has("on_connect") && sys.system.plugins.plugins.some((p) => p.name === "05-deny")
          ? true
          : undefined,
      "the deny plugin",
    );
    const refused = await sys.connect();
    await expect(refused.health()).rejects.toThrow();
    unlinkSync(file);
    await until(
      () => (sys.system.plugins?.plugins.some((p) => p.name === "05-deny") ? undefined : true),
      "the deny plugin's removal",
    );
    const admitted = await sys.connect();
    expect((await admitted.health()).status).toBe("ok");
  });

  it("exports per-plugin metrics", async () => {
    const text = sys.system.front.metrics.render();
    expect(text).toMatch(/plugin/);
    expect(text).toMatch(/10-recorder/);
    expect(text).toMatch(/looper/);
  });
});
