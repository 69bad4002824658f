// The lean QUIC driver (quic-front/quic/) under load and damage, over real QUIC on loopback:
// many streams on one connection, many connections, a lossy path, the idle timeout, address
// validation before any connection state, ALPN, the frame limit from the header.
import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_PAYLOAD, Method, Status } from "../../proto/index.ts";
import { quiche, PacketType } from "../../quic/native.ts";
import { LeanQuicListener } from "../../quic-front/quic/listener.ts";
import { TransportError, type QuicTransport } from "../../sdk/transport.ts";
import { requestHeader } from "../support/frames.ts";
import { startLossyRelay } from "../support/lossy-udp-relay.ts";
import { spawnSystem } from "../support/process-system.ts";
import { randomIdentity, uniqueName } from "../support/system.ts";
import { startTestFront, type TestFront, type TestFrontOptions } from "../support/quic-front.ts";
import { gate } from "../unit/support/test-edge.ts";

let front: TestFront | undefined;
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await front?.stop();
  front = undefined;
});

async function start(opts: TestFrontOptions = {}): Promise<TestFront & { listener: LeanQuicListener }> {
  const f = await startTestFront(opts);
  front = f;
  // These tests are about the lean driver: fail loudly if the front runs another one.
  expect(f.listener).toBeInstanceOf(LeanQuicListener);
  return f as TestFront & { listener: LeanQuicListener };
}

describe("lean QUIC driver", () => {
  it("serves 1,000 concurrent streams on one connection", { timeout: 240_000 }, async () => {
    const f = await start({ limits: { transferTimeoutMs: 180_000 }, env: { QPQ_RPC_BURST: "5000" } });
    const t = await f.connect({ maxConcurrentRequests: 1000, requestTimeoutMs: 200_000 });
    const rest = gate();
    // Each request sends its header, then waits: all 1,000 are open at the server at once,
    // each holding its 1-byte reservation, before any of them can complete.
    const exchanges = Array.from({ length: 1000 }, (_, i) =>
      t.rawExchange([requestHeader(Method.Health, i + 1, 1), rest.promise, Uint8Array.of(1)]),
    );
    await vi.waitFor(() => expect(f.listener.requestBuffers.reserved).toBe(1000), { timeout: 180_000, interval: 50 });
    rest.open();
    const answers = await Promise.all(exchanges);
    expect(answers.map((a) => a.requestId)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(answers.every((a) => a.status === Status.Ok)).toBe(true);
    expect(f.edge.callsTo(Method.Health)).toHaveLength(1000);
  });

  it("holds 200 connections at once", { timeout: 240_000 }, async () => {
    const f = await start({ env: { QPQ_MAX_CONNECTIONS_PER_ADDRESS: "1000" } });
    const clients: QuicTransport[] = [];
    cleanups.push(() => Promise.allSettled(clients.map((c) => c.close())));
    await Promise.all(
      Array.from({ length: 200 }, async () => {
        clients.push(await f.connect({ connectTimeoutMs: 120_000, requestTimeoutMs: 120_000 }));
      }),
    );
    // The server completes its side of a handshake just after the client does.
    await vi.waitFor(() => expect(f.gateway.openConnections).toBe(200), { timeout: 60_000, interval: 50 });
    const answers = await Promise.all(clients.map((c) => c.request(Method.Health, new Uint8Array(0))));
    expect(answers.every((a) => a.status === Status.Ok)).toBe(true);
    expect(f.edge.callsTo(Method.Health)).toHaveLength(200);
  });

  it(
    "completes every RPC exactly once, with its own answer, across a path that drops, duplicates and reorders",
    {
      timeout: 300_000,
    },
    async () => {
      // The edge answers each Health with the bytes it was sent.
      const f = await start({ edge: (call) => ({ payload: call.body }), env: { QPQ_RPC_BURST: "5000" } });
      const relay = await startLossyRelay({
        target: { host: "127.0.0.1", port: f.port },
        drop: 0.03,
        duplicate: 0.03,
        reorder: 0.03,
        seed: 7,
      });
      cleanups.push(() => relay.close());
      const t = await f.connect({ port: relay.port, connectTimeoutMs: 120_000, requestTimeoutMs: 240_000 });
      cleanups.push(() => t.close());
      // Small and multi-packet requests (up to 24 KiB), each unique.
      const payloads = Array.from({ length: 300 }, (_, i) => {
        const p = randomBytes(i % 10 === 0 ? 24 * 1024 : 16 + (i % 200));
        p.writeUInt32BE(i, 0);
        return new Uint8Array(p);
      });
      const answers = await Promise.all(payloads.map((p) => t.request(Method.Health, p)));
      answers.forEach((a, i) => {
        expect(a.status).toBe(Status.Ok);
        expect(Buffer.from(a.payload).equals(Buffer.from(payloads[i]))).toBe(true);
      });
      // Exactly once: every request reached the edge once, none twice.
      const seen = new Map<number, number>();
      for (const c of f.edge.callsTo(Method.Health)) {
        const i = Buffer.from(c.body).readUInt32BE(0);
        seen.set(i, (seen.get(i) ?? 0) + 1);
      }
      expect(seen.size).toBe(300);
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      // The path really was damaged.
      expect(relay.counts.dropped).toBeGreaterThan(0);
      expect(relay.counts.duplicated).toBeGreaterThan(0);
      expect(relay.counts.reordered).toBeGreaterThan(0);
    },
  );

  it("closes a connection that stays idle past the idle timeout", { timeout: 120_000 }, async () => {
    const f = await start({ limits: { idleTimeoutMs: 1000 } });
    const t = await f.connect();
    cleanups.push(() => t.close());
    expect((await t.request(Method.Health, new Uint8Array(0))).status).toBe(Status.Ok);
    expect(f.gateway.openConnections).toBe(1);
    // The client's keep-alive (10 s) is slower than the 1 s idle timeout.
    await vi.waitFor(() => expect(f.gateway.openConnections).toBe(0), { timeout: 60_000, interval: 50 });
    expect(f.listener.connectionCount).toBe(0);
    await expect(t.request(Method.Health, new Uint8Array(0))).rejects.toBeInstanceOf(TransportError);
  });

  it(
    "creates no connection before the client returns a retry token from its own address",
    {
      timeout: 60_000,
    },
    async () => {
      const f = await start();
      const stats = f.listener.stats;
      const a = await udpSocket(f.port);
      const b = await udpSocket(f.port);
      const client = rawClient(f.port, a.port);
      cleanups.push(
        () => a.close(),
        () => b.close(),
      );

      // 1. A first Initial gets a Retry, and the server keeps nothing.
      a.send(client.initial());
      const retry = await a.next();
      expect(quiche.Header.fromSlice(retry, quiche.MAX_CONN_ID_LEN).ty).toBe(PacketType.Retry);
      expect(stats.retriesSent).toBe(1);
      expect(stats.accepted).toBe(0);
      expect(f.listener.connectionCount).toBe(0);

      // 2. The Initial carrying the token, from another port: dropped, still no connection.
      client.recv(retry);
      const withToken = client.initial();
      b.send(withToken);
      await vi.waitFor(() => expect(stats.initialsDropped).toBe(1), { timeout: 30_000, interval: 20 });
      expect(stats.accepted).toBe(0);
      expect(f.listener.connectionCount).toBe(0);

      // 3. The same Initial from the address the token was minted for: the connection is created.
      a.send(withToken);
      await vi.waitFor(() => expect(stats.accepted).toBe(1), { timeout: 30_000, interval: 20 });
      expect(f.listener.connectionCount).toBe(1);
    },
  );

  it(
    "answers an Initial of an unknown QUIC version with version negotiation, keeping nothing",
    {
      timeout: 60_000,
    },
    async () => {
      const f = await start();
      const s = await udpSocket(f.port);
      cleanups.push(() => s.close());
      // A long-header Initial of version 0x1a2a3a4a, padded to the 1,200 bytes a client must send.
      const p = Buffer.alloc(1200);
      p[0] = 0xc0;
      p.writeUInt32BE(0x1a2a3a4a, 1);
      p[5] = 8;
      p.fill(1, 6, 14);
      p[14] = 8;
      p.fill(2, 15, 23);
      s.send(p);
      const reply = await s.next();
      const h = quiche.Header.fromSlice(reply, quiche.MAX_CONN_ID_LEN);
      expect(h.ty).toBe(PacketType.VersionNegotiation);
      expect(h.versions).toContain(quiche.PROTOCOL_VERSION);
      expect(Buffer.from(h.dcid).equals(Buffer.alloc(8, 2))).toBe(true); // echoes the client's ids
      expect(f.listener.stats).toMatchObject({ versionNegotiations: 1, retriesSent: 0, accepted: 0 });
      expect(f.listener.connectionCount).toBe(0);
    },
  );

  it(
    "refuses a client that offers another ALPN, before the gateway sees a connection",
    { timeout: 60_000 },
    async () => {
      const f = await start();
      const { QUICClient } = await import("@matrixai/quic");
      const { default: Logger, LogLevel } = await import("@matrixai/logger");
      await expect(
        QUICClient.createQUICClient(
          {
            host: "127.0.0.1",
            port: f.port,
            serverName: "localhost",
            crypto: { ops: { randomBytes: async (b: ArrayBuffer) => void crypto.getRandomValues(new Uint8Array(b)) } },
            config: { verifyPeer: true, ca: f.certPem, applicationProtos: ["h3"] },
            logger: new Logger("t", LogLevel.SILENT),
          },
          { timer: 10_000 },
        ),
      ).rejects.toThrow();
      // The handshake reached quiche (past the retry) and failed there; the gateway never saw it.
      expect(f.listener.stats.accepted).toBe(1);
      expect(f.gateway.openConnections).toBe(0);
    },
  );

  it("drops garbage datagrams without creating state, and keeps serving", { timeout: 120_000 }, async () => {
    const f = await start();
    const t = await f.connect();
    expect((await t.request(Method.Health, new Uint8Array(0))).status).toBe(Status.Ok);
    const s = await udpSocket(f.port);
    cleanups.push(() => s.close());
    const junk: Buffer[] = [Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(65_000, 0xff)];
    for (let i = 0; i < 2000; i++) junk.push(randomBytes(1 + (i % 1500)));
    // Long headers claiming Initials with impossible lengths and connection ids.
    for (const [dcidLen, scidLen] of [
      [0, 0],
      [20, 20],
      [21, 0],
      [255, 255],
    ]) {
      const p = Buffer.alloc(1200, 0xab);
      p[0] = 0xc0;
      p.writeUInt32BE(quiche.PROTOCOL_VERSION, 1);
      p[5] = dcidLen;
      if (6 + dcidLen < p.length) p[6 + dcidLen] = scidLen;
      junk.push(p);
    }
    for (const d of junk) s.send(d);
    // The front still answers on the real connection after all of it.
    await vi.waitFor(async () => expect((await t.request(Method.Health, new Uint8Array(0))).status).toBe(Status.Ok), {
      timeout: 60_000,
    });
    expect(f.listener.stats.accepted).toBe(1);
    expect(f.listener.connectionCount).toBe(1);
    // A new client still gets in.
    const other = await f.connect();
    expect((await other.request(Method.Health, new Uint8Array(0))).status).toBe(Status.Ok);
    await other.close();
    await t.close();
  });

  it("refuses an oversize frame from its header, buffering nothing of it", { timeout: 60_000 }, async () => {
    const f = await start();
    const t = await f.connect();
    // Only the header is sent; the stream stays open. The answer must not wait for the payload.
    const res = await t.rawExchange([requestHeader(Method.Health, 77, MAX_PAYLOAD + 1)], { fin: false });
    expect(res.status).toBe(Status.BadRequest);
    expect(res.requestId).toBe(77);
    expect(f.listener.requestBuffers).toEqual({ allocated: 0, reserved: 0, waiting: 0 });
    expect(f.edge.calls).toHaveLength(0);
    // The connection keeps serving.
    expect((await t.request(Method.Health, new Uint8Array(0))).status).toBe(Status.Ok);
  });
});

describe("lean QUIC driver in the started system", () => {
  it("on SIGTERM answers a waiting FetchWait, then closes the connection and exits", { timeout: 240_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "qpq-sigterm-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const metricsPort = await freePort();
    const sys = await spawnSystem(dataDir, { QPQ_METRICS_LISTEN: `127.0.0.1:${metricsPort}` });
    cleanups.push(async () => {
      sys.killNow();
      await sys.waitGone();
    });
    const client = await sys.connect();
    const name = uniqueName("sigterm");
    const key = randomIdentity();
    expect(await client.register(name, "pw-sigterm", key)).toBe(true);
    await client.login(name, "pw-sigterm", key);
    const waiting = client.fetchWait({ timeoutMs: 60_000 });
    const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    await vi.waitFor(async () => expect(await metrics()).toMatch(/^fetch_wait_waiting 1$/m), {
      timeout: 60_000,
      interval: 100,
    });

    process.kill(sys.pid, "SIGTERM");
    // Drained: the parked FetchWait is answered (empty) rather than cut.
    expect(await waiting).toEqual([]);
    await sys.waitGone();
    expect(sys.output()).toMatch(/"msg":"stopped"/);
    // Closed: the connection is gone, not left to time out.
    await expect(client.health()).rejects.toThrow();
    await client.close().catch(() => {});
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A bare quiche client: builds Initials so tests can send them from any socket. */
function rawClient(serverPort: number, localPort: number) {
  const config = quiche.Config.withBoringSslCtx(false, false, null, null, null, null);
  config.setApplicationProtos(["qpq"]);
  config.setMaxIdleTimeout(30_000);
  config.setInitialMaxData(1 << 20);
  config.setInitialMaxStreamDataBidiLocal(1 << 20);
  config.setInitialMaxStreamsBidi(10);
  const local = { host: "127.0.0.1", port: localPort };
  const server = { host: "127.0.0.1", port: serverPort };
  const conn = quiche.Connection.connect("localhost", randomBytes(16), local, server, config);
  return {
    initial(): Buffer {
      const buf = Buffer.alloc(quiche.MAX_DATAGRAM_SIZE);
      const out = conn.send(buf);
      if (!out) throw new Error("the client had nothing to send");
      return Buffer.from(buf.subarray(0, out[0]));
    },
    recv(data: Buffer): void {
      conn.recv(data, { from: server, to: local });
    },
  };
}

async function udpSocket(target: number) {
  const s = dgram.createSocket("udp4");
  const inbox: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  s.on("message", (m) => {
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  const port = s.address().port;
  return {
    port,
    send(d: Buffer) {
      s.send(d, target, "127.0.0.1");
    },
    next(): Promise<Buffer> {
      const m = inbox.shift();
      return m ? Promise.resolve(m) : new Promise((resolve) => waiters.push(resolve));
    },
    close() {
      s.close();
    },
  };
}
