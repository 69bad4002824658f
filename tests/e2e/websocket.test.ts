// The WebSocket bridge: the same frames and the same gateway as QUIC, for browsers.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { Method, Status, MAX_PAYLOAD, decodeError, encodeRequest } from "../../proto/index.ts";
import { QpqClient } from "../../sdk/client.ts";
import type { WsTransport } from "../../sdk/ws-transport.ts";
import { startTestSystem, randomIdentity, uniqueName, type TestSystem } from "../support/system.ts";
import { requestHeader } from "../support/frames.ts";

describe("WebSocket bridge", () => {
  let sys: TestSystem;
  let url: string;
  const clients: QpqClient<WsTransport>[] = [];
  const connect = async () => {
    const c = await QpqClient.connectWebSocket(url);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    sys = await startTestSystem({ env: { QPQ_WS_LISTEN: "127.0.0.1:0" } });
    url = sys.system.front.wsUrl as string;
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/qpq$/);
  });
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await sys?.stop();
  });

  it("serves health, registration, login and delivery with push", async () => {
    const ws = await connect();
    expect((await ws.health()).status).toBe("ok");
    const name = uniqueName("dana");
    const key = randomIdentity();
    expect(await ws.register(name, "pw-dana", key)).toBe(true);
    await ws.login(name, "pw-dana", key);

    // A QUIC user sends; the WebSocket user gets the push and fetches.
    const quic = await sys.connect();
    const quicKey = randomIdentity();
    const quicName = uniqueName("erin");
    await quic.register(quicName, "pw-erin", quicKey);
    await quic.login(quicName, "pw-erin", quicKey);
    const pushed = new Promise<number>((resolve) => ws.onNewMessage((e) => resolve(e.seq)));
    let sent = 0;
    for (let i = 0; i < 50; i++) {
      sent = (await quic.enqueue({ recipientKey: key, payload: new TextEncoder().encode("over ws") })).seq;
      const got = await Promise.race([pushed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
      if (got !== undefined) break;
    }
    expect(await pushed).toBeGreaterThan(0);
    const inbox = await ws.fetch();
    expect(inbox.map((e) => e.seq)).toContain(sent);
    await ws.ack(sent);
  });

  it("answers an oversized header with BadRequest and keeps the socket usable", async () => {
    const ws = await connect();
    const res = await ws.transport.rawExchange([requestHeader(Method.Health, 0, MAX_PAYLOAD + 1)], 0);
    expect(res.status).toBe(Status.BadRequest);
    expect(decodeError(res.payload).message).toContain("4 MiB");
    const truncated = await ws.transport.rawExchange(
      [encodeRequest(Method.Health, 9, new Uint8Array(4)).subarray(0, 12)],
      9,
    );
    expect(truncated.status).toBe(Status.BadRequest);
    expect((await ws.health()).status).toBe("ok");
  });

  it("serves concurrent requests on one socket", async () => {
    const ws = await connect();
    const all = await Promise.all(Array.from({ length: 200 }, () => ws.health()));
    expect(all.every((h) => h.status === "ok")).toBe(true);
  });

  it("survives a Fetch of two 2 MiB messages (more than one frame) and answers it with one envelope", async () => {
    // The reported crash: an answer larger than a frame made encodeResponse throw out of serve()
    // on the bridge, which ended the process. Now the edge pages by bytes, and the front answers
    // Internal rather than throw if a reply ever did not fit.
    const ws = await connect();
    const name = uniqueName("big");
    const key = randomIdentity();
    expect(await ws.register(name, "pw-big", key)).toBe(true);
    const token = await ws.login(name, "pw-big", key);
    const big = (fill: number) => new Uint8Array(2 * 1024 * 1024).fill(fill);
    const first = await ws.enqueue({ recipientKey: key, payload: big(1) });
    const second = await ws.enqueue({ recipientKey: key, payload: big(2) });

    const again = await connect();
    await again.resume(token);
    const page = await again.fetch();
    expect(page.map((e) => e.seq)).toEqual([first.seq]);
    // (Buffer.equals: a deep toEqual over 2 MiB takes vitest many seconds.)
    expect(Buffer.from(page[0]!.data).equals(big(1))).toBe(true);
    await again.ack(first.seq);
    expect((await again.fetch()).map((e) => e.seq)).toEqual([second.seq]);
    expect((await again.health()).status).toBe("ok");
    expect((await (await connect()).health()).status).toBe("ok");
  });

  it("refuses a client without the qpq subprotocol", async () => {
    const socket = new WebSocket(url);
    const code = await new Promise<number>((resolve) => {
      socket.addEventListener("close", (e) => resolve(e.code));
      socket.addEventListener("error", () => resolve(-1));
    });
    expect(code).not.toBe(1000);
  });
});
