// The SDK's WebSocket transport against a scripted server: a bounded number of requests await
// answers, the rest queue (bounded), and a closed socket or a deadline rejects every request.
import { afterEach, describe, expect, it } from "vitest";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import { Method, Status, decodeRequest, encodeResponse, FrameError } from "../../proto/index.ts";
import { TransportError } from "../../sdk/request-slots.ts";
import { WsTransport } from "../../sdk/ws-transport.ts";

const EMPTY = new Uint8Array(0);
const Silent = 4;
const Close = 5;

/** Answers Ok except: method 4 is never answered, method 5 closes the socket. */
async function startServer(): Promise<{ url: string; received: () => number; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => "qpq" });
  await once(wss, "listening");
  let received = 0;
  wss.on("connection", (ws: ServerSocket) => {
    ws.on("message", (data: Buffer) => {
      received++;
      const frame = decodeRequest(new Uint8Array(data));
      if (frame instanceof FrameError) return;
      if (frame.methodId === Silent) return;
      if (frame.methodId === Close) {
        ws.close(1011, "test closes");
        return;
      }
      ws.send(Buffer.concat([Buffer.of(0), encodeResponse(Status.Ok, frame.requestId, EMPTY)]));
    });
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/qpq`,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: Parameters<typeof WsTransport.connect>[1] = {}) {
  const server = await startServer();
  const t = await WsTransport.connect(server.url, opts);
  cleanups.push(
    () => server.close(),
    () => t.close(),
  );
  return { server, t };
}

describe("WebSocket transport", () => {
  it("keeps at most maxConcurrentRequests awaiting answers and queues the rest", async () => {
    const { t } = await setup({ maxConcurrentRequests: 3 });
    const results = Array.from({ length: 50 }, () => t.request(Method.Health, EMPTY));
    expect(t.requests).toEqual({ inFlight: 3, queued: 47 });
    expect((await Promise.all(results)).every((r) => r.status === Status.Ok)).toBe(true);
    expect(t.requests).toEqual({ inFlight: 0, queued: 0 });
  });

  it("refuses at once beyond the queue limit", async () => {
    const { t } = await setup({ maxConcurrentRequests: 1, maxQueuedRequests: 1, requestTimeoutMs: 300 });
    const first = t.request(Silent, EMPTY);
    const second = t.request(Silent, EMPTY);
    await expect(t.request(Method.Health, EMPTY)).rejects.toThrow(/too many requests waiting/);
    await expect(first).rejects.toBeInstanceOf(TransportError);
    await expect(second).rejects.toBeInstanceOf(TransportError);
  });

  it("rejects at the deadline and forgets the request", async () => {
    const { t } = await setup({ requestTimeoutMs: 200 });
    await expect(t.request(Silent, EMPTY)).rejects.toThrow(/no answer to method 4 within 200 ms/);
    expect(t.requests).toEqual({ inFlight: 0, queued: 0 });
    expect((await t.request(Method.Health, EMPTY)).status).toBe(Status.Ok);
  });

  it("rejects every awaiting and queued request when the socket closes, and later ones too", async () => {
    const { server, t } = await setup({ maxConcurrentRequests: 4 });
    const silent = Array.from({ length: 3 }, () => t.request(Silent, EMPTY));
    const closer = t.request(Close, EMPTY);
    const queued = Array.from({ length: 10 }, () => t.request(Method.Health, EMPTY));
    const settled = await Promise.allSettled([...silent, closer, ...queued]);
    for (const s of settled) {
      expect(s.status).toBe("rejected");
      expect((s as PromiseRejectedResult).reason).toBeInstanceOf(TransportError);
    }
    expect(server.received()).toBe(4);
    await expect(t.request(Method.Health, EMPTY)).rejects.toBeInstanceOf(TransportError);
  });

  it("refuses a raw request whose id is still awaiting an answer", async () => {
    const { t } = await setup({ requestTimeoutMs: 300 });
    const bytes = [new Uint8Array([0, Silent, 0, 0, 0, 9, 0, 0, 0, 0])];
    const first = t.rawExchange(bytes, 9);
    await expect(t.rawExchange(bytes, 9)).rejects.toThrow(/already awaiting/);
    await expect(first).rejects.toBeInstanceOf(TransportError);
  });
});
