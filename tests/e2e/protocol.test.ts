// Frame-level behaviour over real QUIC: limits and malformed input never hurt other streams.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { Method, Status, MAX_PAYLOAD, encodeRequest, pb, decodeError } from "../../proto/index.ts";
import type { QpqClient } from "../../sdk/client.ts";
import type { QuicTransport } from "../../sdk/transport.ts";
import { startTestSystem, type TestSystem } from "../support/system.ts";
import { requestHeader } from "../support/frames.ts";

describe("frames over QUIC", () => {
  let sys: TestSystem;
  let client: QpqClient<QuicTransport>;

  beforeAll(async () => {
    // These tests are about frames: the one client never logs in, and on a busy machine the
    // file outlives the front's 30 s authentication deadline, which would close it midway.
    sys = await startTestSystem({ env: { QPQ_AUTH_TIMEOUT: "3600s" } });
    client = await sys.connect();
  });
  afterAll(async () => {
    await sys?.stop();
  });

  it("answers Health without a session", async () => {
    const h = await client.health();
    expect(h.status).toBe("ok");
    expect(h.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(h.deliveryProofKey.length).toBe(32);
  });

  it("refuses a header announcing 4 MiB + 1 with BadRequest, without reading the payload", async () => {
    const res = await client.transport.rawExchange([requestHeader(Method.Health, 9, MAX_PAYLOAD + 1)]);
    expect(res.status).toBe(Status.BadRequest);
    expect(res.requestId).toBe(9);
    expect(decodeError(res.payload).message).toContain("4 MiB");
    // The connection stays usable.
    expect((await client.health()).status).toBe("ok");
  });

  it("accepts exactly 4 MiB of payload as a frame (then the method validates it)", async () => {
    const payload = pb.EnqueueRequest.encode({
      recipientKey: new Uint8Array(32),
      payload: new Uint8Array(MAX_PAYLOAD - 64),
    }).finish();
    const padded = new Uint8Array(MAX_PAYLOAD);
    padded.set(payload);
    // Trailing zero bytes are field 0, invalid protobuf: the frame is accepted, the payload is not.
    const res = await client.transport.rawExchange([encodeRequest(Method.Enqueue, 5, padded)]);
    expect(res.requestId).toBe(5);
    expect([Status.BadRequest, Status.Unauthorized]).toContain(res.status);
  });

  it("answers BadRequest for a truncated payload and for trailing bytes", async () => {
    const full = encodeRequest(Method.Health, 11, new Uint8Array([1, 2, 3, 4]));
    const truncated = await client.transport.rawExchange([full.subarray(0, full.length - 2)]);
    expect(truncated.status).toBe(Status.BadRequest);
    expect(truncated.requestId).toBe(11);
    const trailing = await client.transport.rawExchange([
      encodeRequest(Method.Health, 12, new Uint8Array(0)),
      new Uint8Array([0xff]),
    ]);
    expect(trailing.status).toBe(Status.BadRequest);
    expect(trailing.requestId).toBe(12);
  });

  it("answers BadRequest for a stream that ends inside the header", async () => {
    const res = await client.transport.rawExchange([new Uint8Array([0, 100, 0])]);
    expect(res.status).toBe(Status.BadRequest);
  });

  it("assembles a frame split into single bytes", async () => {
    const frame = encodeRequest(Method.Health, 21, pb.HealthRequest.encode({}).finish());
    const res = await client.transport.rawExchange([...frame].map((b) => Uint8Array.of(b)));
    expect(res.status).toBe(Status.Ok);
    expect(res.requestId).toBe(21);
  });

  it("serves a complete request whose FIN never arrives", async () => {
    const frame = encodeRequest(Method.Health, 31, pb.HealthRequest.encode({}).finish());
    const res = await client.transport.rawExchange([frame], { fin: false });
    expect(res.status).toBe(Status.Ok);
    expect(res.requestId).toBe(31);
  });

  it("answers Unauthorized for a user method on a connection without a session", async () => {
    const res = await client.raw(Method.Fetch, pb.FetchRequest.encode({ recipientKey: new Uint8Array(32) }).finish());
    expect(res.status).toBe(Status.Unauthorized);
  });

  it("serves many concurrent streams on one connection", async () => {
    const results = await Promise.all(Array.from({ length: 300 }, () => client.health()));
    expect(results.every((h) => h.status === "ok")).toBe(true);
  });

  it("rejects a client that offers another ALPN", async () => {
    const { QUICClient } = await import("@matrixai/quic");
    const { default: Logger, LogLevel } = await import("@matrixai/logger");
    await expect(
      QUICClient.createQUICClient(
        {
          host: "127.0.0.1",
          port: sys.system.quicPort,
          serverName: "localhost",
          crypto: { ops: { randomBytes: async (b: ArrayBuffer) => void crypto.getRandomValues(new Uint8Array(b)) } },
          config: { verifyPeer: true, ca: sys.system.certPem, applicationProtos: ["h3"] },
          logger: new Logger("t", LogLevel.ERROR),
        },
        { timer: 5000 },
      ),
    ).rejects.toThrow();
  });
});
