// The gateway takes its relay as an interface: these tests run it against an in-memory relay,
// with no HTTP server and no clock but a manual one.
import { afterEach, describe, expect, it } from "vitest";
import { Gateway } from "../../quic-front/gateway.ts";
import { configFromEnv } from "../../quic-front/config.ts";
import { errorResponse, type Relay, type RelayRequest, type RelayResponse } from "../../quic-front/relay.ts";
import { silentLogger } from "../../proto/util/log.ts";
import { Method, Status, formatSessionGrant, parseSessionGrant, pb } from "../../proto/index.ts";
import { ManualClock } from "./support/manual-clock.ts";
import { fakeLink, open, rpc } from "./support/gateway-harness.ts";

class MemoryRelay implements Relay {
  readonly calls: RelayRequest[] = [];
  closed = false;
  answer: (req: RelayRequest) => RelayResponse = () => ({ status: Status.Ok, payload: Uint8Array.of(1, 2, 3) });
  async call(req: RelayRequest): Promise<RelayResponse> {
    this.calls.push(req);
    return this.answer(req);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const gateways: Gateway[] = [];
afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.stop();
});

function gateway(relay: Relay, clock = new ManualClock()): Gateway {
  const config = configFromEnv({ QPQ_EDGE_URL: "http://127.0.0.1:9", QPQ_FRONT_SECRET: "s" }, { frontId: "front-m" });
  const gw = new Gateway({ config, logger: silentLogger, relay, clock });
  gateways.push(gw);
  return gw;
}

describe("gateway over an in-memory relay", () => {
  it("relays a request with the connection's id and address, and answers with the relay's response", async () => {
    const relay = new MemoryRelay();
    const gw = gateway(relay);
    const conn = await open(gw, fakeLink("198.51.100.7:4000"));
    const payload = pb.OpaqueLoginStartRequest.encode({ username: "alice", request: Uint8Array.of(9) }).finish();
    const res = await rpc(gw, conn, Method.OpaqueLoginStart, payload);
    expect(res.status).toBe(Status.Ok);
    expect([...res.payload]).toEqual([1, 2, 3]);
    expect(relay.calls).toMatchObject([
      {
        methodId: Method.OpaqueLoginStart,
        connectionId: conn.id,
        clientAddr: "198.51.100.7:4000",
        assertion: undefined,
      },
    ]);
    expect([...relay.calls[0].payload]).toEqual([...payload]);
  });

  it("attaches the session's assertion once a login bound one, and passes the relay's errors through", async () => {
    const relay = new MemoryRelay();
    const clock = new ManualClock();
    const now = clock.now();
    const grant = {
      assertion: "A1",
      identityKeyHex: "c0".repeat(32),
      sessionExpiresAt: now + 3_600_000,
      assertionExpiresAt: now + 600_000,
    };
    relay.answer = (req) =>
      req.methodId === Method.OpaqueLoginFinish
        ? {
            status: Status.Ok,
            payload: pb.OpaqueLoginFinishResponse.encode({ sessionToken: new Uint8Array(32) }).finish(),
            session: parseSessionGrant(formatSessionGrant(grant)),
          }
        : errorResponse(Status.NotFound, "nothing here");
    const gw = gateway(relay, clock);
    const conn = await open(gw);
    expect((await rpc(gw, conn, Method.Fetch)).status).toBe(Status.Unauthorized); // no session: not relayed
    expect(relay.calls).toHaveLength(0);
    await rpc(
      gw,
      conn,
      Method.OpaqueLoginFinish,
      pb.OpaqueLoginFinishRequest.encode({ username: "alice", finalization: Uint8Array.of(1) }).finish(),
    );
    const res = await rpc(gw, conn, Method.Fetch);
    expect(res.status).toBe(Status.NotFound);
    expect(relay.calls.at(-1)).toMatchObject({ methodId: Method.Fetch, assertion: "A1" });
  });

  it("closes the relay when it stops", async () => {
    const relay = new MemoryRelay();
    await gateway(relay).stop();
    expect(relay.closed).toBe(true);
  });
});
