// What one client can hold and how long: connections per address, the deadline to
// authenticate, push only while the session lasts, and no request or hook failure that can
// escape Gateway.serve/open (they would end the process).
import { afterEach, describe, expect, it } from "vitest";
import { MAX_PAYLOAD, Method, PushEvent, Status, decodeError, decodePush, pb } from "../../proto/index.ts";
import type { Logger } from "../../proto/util/log.ts";
import { ManualClock } from "./support/manual-clock.ts";
import {
  IDENTITY,
  MINUTE,
  fakeHooks,
  fakeLink,
  fetchPayload,
  grant,
  login,
  open,
  rpc,
  runCleanups,
  scriptedEdge,
  start,
} from "./support/gateway-harness.ts";

afterEach(runCleanups);

function recordingLogger() {
  const entries: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      void entries.push({ level, msg, fields });
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { logger, entries };
}

describe("connections per client address", () => {
  it("refuses a connection beyond the per-address cap with a clear reason; other addresses and freed slots are admitted", async () => {
    const { gw } = await start({ config: { maxConnectionsPerAddress: 2 } });
    const first = await open(gw, fakeLink("198.51.100.7:1001"));
    await open(gw, fakeLink("198.51.100.7:1002"));

    const third = fakeLink("198.51.100.7:1003");
    expect(await gw.open(third)).toBeUndefined();
    expect(third.close).toHaveBeenCalledWith("too many connections from this address (limit 2)");
    expect(gw.metrics.connectionsRefused.get({ reason: "address_limit" })).toBe(1);

    expect(await gw.open(fakeLink("198.51.100.8:1003"))).toBeDefined();
    gw.close(first, "client closed");
    expect(await gw.open(fakeLink("198.51.100.7:1004"))).toBeDefined();
    expect(gw.openConnections).toBe(3);
  });

  it("counts an IPv6 client by its /64 and an IPv4-mapped address as the IPv4 address", async () => {
    const { gw } = await start({ config: { maxConnectionsPerAddress: 2 } });
    await open(gw, fakeLink("[2001:db8:1:2::1]:1"));
    await open(gw, fakeLink("[2001:db8:1:2:ffff:ffff:ffff:ffff]:2"));
    expect(await gw.open(fakeLink("[2001:db8:1:2:abcd::9]:3"))).toBeUndefined();
    expect(await gw.open(fakeLink("[2001:db8:1:3::1]:4"))).toBeDefined();

    await open(gw, fakeLink("192.0.2.1:5"));
    await open(gw, fakeLink("[::ffff:192.0.2.1]:6"));
    expect(await gw.open(fakeLink("192.0.2.1:7"))).toBeUndefined();
  });
});

describe("the deadline to authenticate", () => {
  it("closes a connection that has not logged in by the deadline, even while it keeps calling Health", async () => {
    const clock = new ManualClock();
    const { gw } = await start({ clock, config: { authTimeoutMs: 30_000 } });
    const link = fakeLink();
    const conn = await open(gw, link);

    for (let i = 0; i < 2; i++) {
      clock.advance(10_000);
      expect((await rpc(gw, conn, Method.Health)).status).toBe(Status.Ok);
    }
    expect(link.close).not.toHaveBeenCalled();
    clock.advance(10_000);

    expect(link.close).toHaveBeenCalledWith("not authenticated within 30 s");
    expect(gw.openConnections).toBe(0);
    expect(gw.metrics.authTimeouts.get()).toBe(1);
  });

  it("keeps a connection that logged in before the deadline", async () => {
    const clock = new ManualClock();
    const { gw } = await start({ clock, config: { authTimeoutMs: 30_000 } });
    const link = fakeLink();
    const conn = await open(gw, link);
    clock.advance(20_000);
    await login(gw, conn);
    clock.advance(5 * MINUTE);
    expect(link.close).not.toHaveBeenCalled();
    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Ok);
  });

  it("gives a connection whose session ended a new deadline", async () => {
    const clock = new ManualClock();
    const { gw } = await start({
      clock,
      config: { authTimeoutMs: 30_000 },
      edge: scriptedEdge({ login: () => grant("A-login", 10 * MINUTE, 10 * MINUTE, clock.now()) }),
    });
    const link = fakeLink();
    const conn = await open(gw, link);
    await login(gw, conn);
    clock.advance(11 * MINUTE);
    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Unauthorized);
    expect(link.close).not.toHaveBeenCalled();
    clock.advance(30_000);
    expect(link.close).toHaveBeenCalledWith("not authenticated within 30 s");
  });
});

describe("push and session expiry", () => {
  it("stops pushing to a connection once its session expired, without waiting for its next RPC", async () => {
    const clock = new ManualClock();
    const { gw, push } = await start({
      clock,
      push: true,
      edge: scriptedEdge({ login: () => grant("A-login", 10 * MINUTE, 10 * MINUTE, clock.now()) }),
    });
    const link = fakeLink();
    const conn = await open(gw, link);
    await login(gw, conn);
    await push.opened();
    const recipientKey = Buffer.from(IDENTITY, "hex");

    push.send({ recipientKey, seq: 1, payload: new Uint8Array([1]) });
    await until(() => link.pushes.length === 1);
    expect(decodePush(link.pushes[0]!)).toMatchObject({ eventType: PushEvent.NewMessage });

    clock.advance(10 * MINUTE);
    const socket = push.accepted[0]!.ws;
    const closed = new Promise((resolve) => socket.once("close", resolve));
    push.send({ recipientKey, seq: 2, payload: new Uint8Array([2]) });
    // The expired session's subscription is dropped; it was the identity's only one, so the
    // front closes its push socket.
    await closed;
    expect(link.pushes).toHaveLength(1);
    expect(conn.session).toBeUndefined();
  });
});

describe("no request or hook failure escapes the gateway", () => {
  it("answers Internal (and logs) when the edge's reply does not fit in one frame, and serves the next request", async () => {
    const { logger, entries } = recordingLogger();
    const { gw } = await start({
      logger,
      edge: scriptedEdge({
        other: (call) => (call.methodId === Method.Fetch ? { payload: new Uint8Array(MAX_PAYLOAD + 1) } : {}),
      }),
    });
    const conn = await open(gw);
    await login(gw, conn);

    const res = await rpc(gw, conn, Method.Fetch, fetchPayload());
    expect(res.status).toBe(Status.Internal);
    expect(decodeError(res.payload).message).toBe("internal error");
    expect(entries.some((e) => e.level === "error")).toBe(true);
    expect((await rpc(gw, conn, Method.Health)).status).toBe(Status.Ok);
    expect(gw.metrics.rpc.get({ method: "Fetch", status: "Internal" })).toBe(1);
  });

  it("answers Internal when a plugin hook throws", async () => {
    const hooks = fakeHooks({
      on_message_send: () => {
        throw new Error("plugin host broke");
      },
    });
    const { gw, edge } = await start({ hooks: hooks.runner });
    const conn = await open(gw);
    await login(gw, conn);
    const enqueue = pb.EnqueueRequest.encode({
      recipientKey: new Uint8Array(32).fill(1),
      payload: new Uint8Array(1),
    }).finish();
    expect((await rpc(gw, conn, Method.Enqueue, enqueue)).status).toBe(Status.Internal);
    expect(edge.callsTo(Method.Enqueue)).toHaveLength(0);
  });

  it("refuses, rather than admits unchecked, a connection whose on_connect hook throws", async () => {
    const hooks = fakeHooks({
      on_connect: () => {
        throw new Error("plugin host broke");
      },
    });
    const { gw } = await start({ hooks: hooks.runner });
    const link = fakeLink();
    expect(await gw.open(link)).toBeUndefined();
    expect(link.close).toHaveBeenCalledTimes(1);
    expect(gw.openConnections).toBe(0);
  });
});

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}
