// The transport-neutral Gateway with a fake TransportLink and a real HTTP server playing the edge:
// admission, sessions (login, assertion refresh via SessionResume), limits, draining and hooks.
import { afterEach, describe, expect, it } from "vitest";
import {
  FrameError,
  Method,
  RelayHeader as H,
  Status,
  decodeError,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  formatSessionGrant,
  pb,
  type ResponseFrame,
} from "../../proto/index.ts";
import { gate } from "./support/test-edge.ts";
import { ManualClock } from "./support/manual-clock.ts";
import {
  IDENTITY,
  MINUTE,
  TOKEN,
  enqueuePayload,
  fakeHooks,
  fakeLink,
  fetchPayload,
  grant,
  login,
  open,
  rpc,
  runCleanups,
  onCleanup,
  scriptedEdge,
  start,
} from "./support/gateway-harness.ts";

afterEach(runCleanups);

// ---------------------------------------------------------------------------------------------

describe("Gateway dispatch", () => {
  it("answers an unknown method id with UnknownMethod without contacting the edge", async () => {
    const { gw, edge } = await start();
    const conn = await open(gw);
    expect((await rpc(gw, conn, 4242)).status).toBe(Status.UnknownMethod);
    expect(edge.calls).toHaveLength(0);
  });

  it("answers a user method on a connection without session with Unauthorized without contacting the edge", async () => {
    const { gw, edge } = await start();
    const conn = await open(gw);
    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Unauthorized);
    expect((await rpc(gw, conn, Method.Enqueue, enqueuePayload())).status).toBe(Status.Unauthorized);
    expect(edge.calls).toHaveLength(0);
  });

  it("answers a malformed frame with BadRequest echoing its request id", async () => {
    const { gw, edge } = await start();
    const conn = await open(gw);
    const truncated = encodeRequest(Method.Fetch, 77, fetchPayload()).slice(0, -1);
    const frame = decodeRequest(truncated);
    expect(frame).toBeInstanceOf(FrameError);

    const res = decodeResponse(await gw.serve(conn, frame));

    expect(res).toMatchObject({ status: Status.BadRequest, requestId: 77 });
    expect(edge.calls).toHaveLength(0);
  });
});

describe("Gateway sessions", () => {
  it("attaches the assertion from a successful login to later user RPCs", async () => {
    const { gw, edge } = await start();
    const conn = await open(gw);
    await login(gw, conn);

    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Ok);
    expect((await rpc(gw, conn, Method.Enqueue, enqueuePayload())).status).toBe(Status.Ok);

    expect(edge.callsTo(Method.OpaqueLoginFinish)[0]!.headers[H.caller]).toBeUndefined();
    expect(edge.callsTo(Method.Fetch)[0]!.headers[H.caller]).toBe("A-login");
    expect(edge.callsTo(Method.Enqueue)[0]!.headers[H.caller]).toBe("A-login");
    expect(conn.identityHex()).toBe(IDENTITY);
  });

  it("does not bind a session when the login fails, even if the edge sent a grant", async () => {
    const { gw, edge } = await start({
      edge: (call) =>
        call.methodId === Method.OpaqueLoginFinish
          ? { status: Status.Unauthorized, headers: { [H.session]: formatSessionGrant(grant("A-bogus")) } }
          : {},
    });
    const conn = await open(gw);
    const payload = pb.OpaqueLoginFinishRequest.encode({ username: "alice" }).finish();
    expect((await rpc(gw, conn, Method.OpaqueLoginFinish, payload)).status).toBe(Status.Unauthorized);

    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Unauthorized);
    expect(edge.callsTo(Method.Fetch)).toHaveLength(0);
  });

  it("re-validates a near-expiry assertion with SessionResume and uses the new one", async () => {
    // The login's assertion expires in 5 s, inside the front's refresh margin.
    const { gw, edge } = await start({ edge: scriptedEdge({ login: () => grant("A-login", 5_000) }) });
    const conn = await open(gw);
    await login(gw, conn);

    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Ok);

    const resumes = edge.callsTo(Method.SessionResume);
    expect(resumes).toHaveLength(1);
    const resume = pb.SessionResumeRequest.decode(resumes[0]!.body);
    expect(resume.accessToken).toEqual(TOKEN);
    expect(resumes[0]!.headers[H.connection]).toBe(conn.id);
    expect(edge.callsTo(Method.Fetch)[0]!.headers[H.caller]).toBe("A-resumed");
  });

  it("drops the connection's session when the edge refuses the resume", async () => {
    const { gw, edge } = await start({
      edge: scriptedEdge({
        login: () => grant("A-login", 5_000),
        resume: () => ({
          status: Status.Unauthorized,
          payload: pb.ErrorResponse.encode({ message: "session ended" }).finish(),
        }),
      }),
    });
    const conn = await open(gw);
    await login(gw, conn);

    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Unauthorized);
    expect(edge.callsTo(Method.SessionResume).length).toBeGreaterThan(0);
    const resumesSoFar = edge.callsTo(Method.SessionResume).length;

    // The session is gone: the next user RPC is refused by the front, with no further resume.
    expect((await rpc(gw, conn, Method.Enqueue, enqueuePayload())).status).toBe(Status.Unauthorized);
    expect(conn.session).toBeUndefined();
    expect(edge.callsTo(Method.SessionResume)).toHaveLength(resumesSoFar);
    expect(edge.callsTo(Method.Fetch)).toHaveLength(0);
    expect(edge.callsTo(Method.Enqueue)).toHaveLength(0);
  });
});

describe("Gateway sessions when the edge is briefly unavailable", () => {
  const unavailable = () => ({
    status: Status.Unavailable,
    payload: pb.ErrorResponse.encode({ message: "edge down" }).finish(),
  });

  it("keeps using a still-valid assertion when the re-validation fails transiently", async () => {
    const { gw, edge } = await start({
      edge: scriptedEdge({ login: () => grant("A-login", 5_000), resume: unavailable }),
    });
    const conn = await open(gw);
    await login(gw, conn);
    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Ok);
    expect(edge.callsTo(Method.Fetch)[0]!.headers[H.caller]).toBe("A-login");
    expect(conn.session).toBeDefined();
  });

  it("answers Unavailable, not Unauthorized, and keeps the session when an expired assertion cannot be re-validated", async () => {
    const { gw, edge } = await start({
      edge: scriptedEdge({ login: () => grant("A-login", -1), resume: unavailable }),
    });
    const conn = await open(gw);
    await login(gw, conn);
    const res = await rpc(gw, conn, Method.Fetch, fetchPayload());
    expect(res.status).toBe(Status.Unavailable);
    expect(decodeError(res.payload).retryAfterMs).toBeGreaterThan(0);
    expect(conn.session).toBeDefined();
    expect(edge.callsTo(Method.Fetch)).toHaveLength(0);
  });
});

describe("Gateway limits", () => {
  it("rate-limits a connection beyond its burst with RateLimited and a retry hint", async () => {
    const { gw, edge } = await start({ config: { rpcPerSecond: 1, rpcBurst: 2 } });
    const conn = await open(gw);

    const statuses = [];
    let last: ResponseFrame | undefined;
    for (let i = 0; i < 3; i++) {
      last = await rpc(gw, conn, Method.Health);
      statuses.push(last.status);
    }

    expect(statuses).toEqual([Status.Ok, Status.Ok, Status.RateLimited]);
    expect(decodeError(last!.payload).retryAfterMs).toBeGreaterThan(0);
    expect(edge.callsTo(Method.Health)).toHaveLength(2);
    // The limit is per connection: a fresh connection still has its burst.
    expect((await rpc(gw, await open(gw, fakeLink("203.0.113.6:1")), Method.Health)).status).toBe(Status.Ok);
  });

  it("limits typing and presence signals per connection (burst 20, 5/s) beyond its RPC rate", async () => {
    // A clock that does not move: no token comes back while the test runs, however slowly.
    const { gw, edge } = await start({ clock: new ManualClock() });
    const conn = await open(gw);
    await login(gw, conn);
    const typing = pb.PushTypingRequest.encode({ channelId: new Uint8Array(16), typing: true }).finish();
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await rpc(gw, conn, Method.PushTyping, typing)).status);
    expect(statuses.slice(0, 20).every((s) => s === Status.Ok)).toBe(true);
    expect(statuses[20]).toBe(Status.RateLimited);
    expect((await rpc(gw, conn, Method.PushPresence, typing)).status).toBe(Status.RateLimited);
    expect(edge.callsTo(Method.PushTyping)).toHaveLength(20);
    // Other calls are not held back by it.
    expect((await rpc(gw, conn, Method.Health)).status).toBe(Status.Ok);
  });

  it("limits auth attempts per client address across connections", async () => {
    // 4 per minute → a burst of 1, then one every 15 s.
    const { gw, edge } = await start({ config: { authPerMinute: 4 } });
    const start1 = pb.OpaqueLoginStartRequest.encode({ username: "alice", request: new Uint8Array(96) }).finish();
    const first = await rpc(gw, await open(gw, fakeLink("198.51.100.9:1000")), Method.OpaqueLoginStart, start1);
    expect(first.status).toBe(Status.Ok);
    const second = await rpc(gw, await open(gw, fakeLink("198.51.100.9:2000")), Method.OpaqueLoginStart, start1);
    expect(second.status).toBe(Status.RateLimited);
    expect(decodeError(second.payload).retryAfterMs).toBeGreaterThan(10_000);
    // Another address is not affected, and non-auth methods are not limited by it.
    expect(
      (await rpc(gw, await open(gw, fakeLink("198.51.100.10:1000")), Method.OpaqueLoginStart, start1)).status,
    ).toBe(Status.Ok);
    expect((await rpc(gw, await open(gw, fakeLink("198.51.100.9:3000")), Method.Health)).status).toBe(Status.Ok);
    expect(edge.callsTo(Method.OpaqueLoginStart)).toHaveLength(2);
  });

  it("counts unauthenticated recovery fetches against the same per-address auth limit", async () => {
    const { gw, edge } = await start({ config: { authPerMinute: 4 } });
    const fetch = pb.FetchRecoveryBundleRequest.encode({ tokenHash: new Uint8Array(32) }).finish();
    const conn = await open(gw, fakeLink("198.51.100.20:1000"));
    expect((await rpc(gw, conn, Method.FetchRecoveryBundle, fetch)).status).not.toBe(Status.RateLimited);
    const again = await rpc(gw, await open(gw, fakeLink("198.51.100.20:2000")), Method.FetchRecoveryBundle, fetch);
    expect(again.status).toBe(Status.RateLimited);
    expect(edge.callsTo(Method.FetchRecoveryBundle)).toHaveLength(1);
  });

  it("refuses connections beyond maxConnections and closes their link", async () => {
    const { gw } = await start({ config: { maxConnections: 1 } });
    const first = await open(gw);

    const link = fakeLink("203.0.113.7:2");
    expect(await gw.open(link)).toBeUndefined();
    expect(link.close).toHaveBeenCalledTimes(1);
    expect(gw.openConnections).toBe(1);

    // The limit counts live connections: once the first ends, a new one is admitted.
    gw.close(first, "client closed");
    expect(await gw.open(fakeLink("203.0.113.8:3"))).toBeDefined();
  });
});

describe("Gateway drain", () => {
  it("lets in-flight RPCs finish, refuses new ones, and resolves once idle", async () => {
    const release = gate<void>();
    onCleanup(async () => release.open());
    const answer = pb.HealthResponse.encode({ status: "ok", edgeVersion: "slow" }).finish();
    // drainTimeoutMs is far beyond the test timeout: drain() can only resolve by going idle.
    const { gw, edge } = await start({
      config: { drainTimeoutMs: 10 * MINUTE },
      edge: async (call, attempt) => {
        if (call.methodId === Method.Health && attempt === 1) await release.promise;
        return { payload: answer };
      },
    });
    const conn = await open(gw);

    const slow = rpc(gw, conn, Method.Health);
    await edge.received(Method.Health);
    let drained = false;
    const draining = gw.drain().then(() => (drained = true));

    const refused = await rpc(gw, conn, Method.Health);
    expect(refused.status).toBe(Status.Unavailable);
    expect(decodeError(refused.payload).retryAfterMs).toBeGreaterThan(0);
    expect(edge.callsTo(Method.Health)).toHaveLength(1);
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);

    release.open();
    const done = await slow;
    expect(done.status).toBe(Status.Ok);
    expect(pb.HealthResponse.decode(done.payload)).toMatchObject({ status: "ok", edgeVersion: "slow" }); // the edge's answer (plus the front's fields)
    await draining;
    expect(drained).toBe(true);
  });

  it("resolves at once when nothing is in flight and refuses new connections", async () => {
    const { gw } = await start({ config: { drainTimeoutMs: 10 * MINUTE } });
    await gw.drain();
    const link = fakeLink();
    expect(await gw.open(link)).toBeUndefined();
    expect(link.close).toHaveBeenCalledTimes(1);
  });
});

describe("Gateway hooks", () => {
  it("closes the link and refuses the connection when on_connect rejects", async () => {
    const hooks = fakeHooks({ on_connect: () => ({ allow: false, reason: "blocked address", plugin: "p" }) });
    const { gw } = await start({ hooks: hooks.runner });
    const link = fakeLink();

    expect(await gw.open(link)).toBeUndefined();

    expect(link.close).toHaveBeenCalledWith("blocked address");
    expect(gw.openConnections).toBe(0);
    expect(hooks.calls[0]).toMatchObject({
      hook: "on_connect",
      event: { clientAddress: link.remoteAddr, transport: "quic" },
    });
  });

  it("answers Forbidden with the reason when on_message_send rejects, and the edge never sees the Enqueue", async () => {
    const hooks = fakeHooks({ on_message_send: () => ({ allow: false, reason: "no spam here", plugin: "p" }) });
    const { gw, edge } = await start({ hooks: hooks.runner });
    const conn = await open(gw);
    await login(gw, conn);

    const res = await rpc(gw, conn, Method.Enqueue, enqueuePayload());

    expect(res.status).toBe(Status.Forbidden);
    expect(decodeError(res.payload).message).toBe("no spam here");
    expect(edge.callsTo(Method.Enqueue)).toHaveLength(0);
    expect(hooks.calls).toEqual([
      {
        hook: "on_message_send",
        event: expect.objectContaining({
          connectionId: conn.id,
          senderIdentity: IDENTITY,
          recipients: ["aa".repeat(32)],
          payloadSize: 100,
          batch: false,
        }),
      },
    ]);
  });

  it("asks on_group_join for each member UpdateGroupMetadata adds, and on_group_leave for a per-channel ban", async () => {
    const refuseCarol = () => ({ allow: false, reason: "not carol", plugin: "p" });
    const hooks = fakeHooks({ on_group_join: refuseCarol, on_group_leave: () => ({ allow: true }) });
    const { gw, edge } = await start({ hooks: hooks.runner });
    const conn = await open(gw);
    await login(gw, conn);
    const channelId = new Uint8Array(16).fill(9);
    const [bob, carol] = [new Uint8Array(32).fill(0xb0), new Uint8Array(32).fill(0xc0)];

    const add = pb.UpdateGroupMetadataRequest.encode({ channelId, addMemberKeys: [bob, carol] }).finish();
    const refused = await rpc(gw, conn, Method.UpdateGroupMetadata, add);
    expect(refused.status).toBe(Status.Forbidden);
    expect(decodeError(refused.payload).message).toBe("not carol");
    expect(edge.callsTo(Method.UpdateGroupMetadata)).toHaveLength(0);
    expect(hooks.calls.map((c) => [c.hook, (c.event as { member: string }).member])).toEqual([
      ["on_group_join", "b0".repeat(32)],
      ["on_group_join", "c0".repeat(32)],
    ]);
    // A rename adds nobody: no hook, relayed.
    const rename = pb.UpdateGroupMetadataRequest.encode({ channelId, setName: true, name: "x" }).finish();
    expect((await rpc(gw, conn, Method.UpdateGroupMetadata, rename)).status).toBe(Status.Ok);

    const channelBan = pb.BanUserRequest.encode({ identityKey: bob, channelId }).finish();
    expect((await rpc(gw, conn, Method.BanUser, channelBan)).status).toBe(Status.Ok);
    expect(hooks.calls.at(-1)).toEqual({
      hook: "on_group_leave",
      event: expect.objectContaining({ channelId: "09".repeat(16), member: "b0".repeat(32), actor: IDENTITY }),
    });
    // A server-wide ban changes no membership: no hook.
    const calls = hooks.calls.length;
    expect((await rpc(gw, conn, Method.BanUser, pb.BanUserRequest.encode({ identityKey: bob }).finish())).status).toBe(
      Status.Ok,
    );
    expect(hooks.calls).toHaveLength(calls);
  });

  it("relays an Enqueue that on_message_send allows", async () => {
    const hooks = fakeHooks({ on_message_send: () => ({ allow: true }) });
    const { gw, edge } = await start({ hooks: hooks.runner });
    const conn = await open(gw);
    await login(gw, conn);

    expect((await rpc(gw, conn, Method.Enqueue, enqueuePayload())).status).toBe(Status.Ok);
    expect(edge.callsTo(Method.Enqueue)).toHaveLength(1);
  });

  it("never calls a runner that exports no hook", async () => {
    const fetched = pb.FetchResponse.encode({ payloads: [{ seq: 1, data: new Uint8Array(4) }] }).finish();
    const hooks = fakeHooks({});
    const { gw } = await start({
      hooks: hooks.runner,
      edge: scriptedEdge({ other: (call) => (call.methodId === Method.Fetch ? { payload: fetched } : {}) }),
    });
    const conn = await open(gw);
    await login(gw, conn);
    await rpc(gw, conn, Method.Enqueue, enqueuePayload());
    await rpc(gw, conn, Method.Fetch, fetchPayload());
    await rpc(
      gw,
      conn,
      Method.CreateChannel,
      pb.CreateChannelRequest.encode({ memberKeys: [new Uint8Array(32).fill(9)] }).finish(),
    );
    gw.close(conn, "client closed");

    // The runner was consulted (so it is wired in) but never invoked.
    expect(hooks.asked).toEqual(
      expect.arrayContaining(["on_connect", "on_message_send", "on_message_receive", "on_group_join", "on_disconnect"]),
    );
    expect(hooks.calls).toEqual([]);
  });

  it("reports delivered messages to on_message_receive after a Fetch", async () => {
    const fetched = pb.FetchResponse.encode({
      payloads: [
        { seq: 1, data: new Uint8Array(3) },
        { seq: 2, data: new Uint8Array(5) },
      ],
    }).finish();
    const hooks = fakeHooks({ on_message_receive: () => ({ allow: true }) });
    const { gw } = await start({
      hooks: hooks.runner,
      edge: scriptedEdge({ other: (call) => (call.methodId === Method.Fetch ? { payload: fetched } : {}) }),
    });
    const conn = await open(gw);
    await login(gw, conn);

    expect((await rpc(gw, conn, Method.Fetch, fetchPayload())).status).toBe(Status.Ok);

    expect(hooks.calls).toEqual([
      {
        hook: "on_message_receive",
        event: expect.objectContaining({
          connectionId: conn.id,
          recipient: IDENTITY,
          count: 2,
          sizes: [3, 5],
          wait: false,
        }),
      },
    ]);
  });
});
