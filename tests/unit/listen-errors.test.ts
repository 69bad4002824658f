// A port already in use: start-up fails naming the listener and its address, and what did start
// is closed again.
import { describe, it, expect, afterEach } from "vitest";
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFromEnv } from "../../quic-front/config.ts";
import { createLogger } from "../../proto/util/log.ts";
import { startFront } from "../../quic-front/run.ts";

const held: (Socket | Server)[] = [];
const dirs: string[] = [];

async function holdUdp(): Promise<number> {
  const socket = createSocket("udp4");
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  held.push(socket);
  return socket.address().port;
}

async function holdTcp(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  held.push(server);
  return (server.address() as { port: number }).port;
}

async function freeTcp(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

function start(env: Record<string, string>) {
  const dataDir = mkdtempSync(join(tmpdir(), "qpq-listen-"));
  dirs.push(dataDir);
  const config = configFromEnv(
    { QPQ_LISTEN: "127.0.0.1:0", ...env },
    {
      edgeUrl: "http://127.0.0.1:1",
      frontSecret: "x".repeat(32),
      dataDir,
    },
  );
  return startFront(config, createLogger("error"));
}

afterEach(() => {
  for (const h of held.splice(0)) h.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("listeners that cannot bind", () => {
  it("the QUIC listener names itself and its UDP address", async () => {
    const port = await holdUdp();
    await expect(start({ QPQ_LISTEN: `127.0.0.1:${port}` })).rejects.toThrow(
      new RegExp(`^QUIC listener could not listen on udp://127\\.0\\.0\\.1:${port}: `),
    );
  });

  it("the WebSocket bridge names itself and its TCP address, and the QUIC listener is closed again", async () => {
    const port = await holdTcp();
    const quicPort = await holdUdp();
    held.pop()!.close(); // a UDP port known to be free a moment ago
    await new Promise((r) => setTimeout(r, 10));
    await expect(start({ QPQ_LISTEN: `127.0.0.1:${quicPort}`, QPQ_WS_LISTEN: `127.0.0.1:${port}` })).rejects.toThrow(
      new RegExp(`^WebSocket bridge could not listen on tcp://127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
    );
    // The QUIC port was released: binding it again works.
    const again = createSocket("udp4");
    again.bind(quicPort, "127.0.0.1");
    await once(again, "listening");
    held.push(again);
  });

  it("the metrics endpoint names itself and its TCP address", async () => {
    const port = await holdTcp();
    await expect(
      start({ QPQ_METRICS_LISTEN: `127.0.0.1:${port}`, QPQ_WS_LISTEN: `127.0.0.1:${await freeTcp()}` }),
    ).rejects.toThrow(new RegExp(`^metrics endpoint could not listen on tcp://127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  });
});
