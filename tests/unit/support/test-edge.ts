// A small stand-in for the edge in unit tests: a real node:http server on 127.0.0.1:0 that speaks
// the front ⇄ edge relay contract (docs/protocol.md). Each test decides per call what the "edge"
// answers; every request that reached it is recorded so tests can assert what the front sent.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";
import type { AddressInfo } from "node:net";
import { RelayHeader } from "../../../proto/index.ts";

/** One HTTP request the front made to the test edge. */
export interface EdgeCall {
  httpMethod: string;
  path: string;
  /** The `<method id>` of `POST /rpc/<method id>`, or NaN for any other path. */
  methodId: number;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
  /** The front's port of the TCP connection the call came on (tells connections apart). */
  remotePort: number;
}

/** What the test edge answers; defaults: HTTP 200, `x-qpq-status: 0`, empty body. */
export interface EdgeReply {
  httpStatus?: number;
  /** Value of `x-qpq-status`; a string is sent verbatim, `null` omits the header. */
  status?: number | string | null;
  payload?: Uint8Array;
  headers?: Record<string, string>;
}

/**
 * Decides the answer to one call. `attempt` counts calls to the same method id, from 1.
 * "destroy" drops the connection before any response byte; a promise holds the answer.
 */
export type EdgeHandler = (call: EdgeCall, attempt: number) => EdgeReply | "destroy" | Promise<EdgeReply | "destroy">;

export interface TestEdge {
  readonly url: string;
  /** Every RPC the edge received, in arrival order (WebSocket /push attempts are not included). */
  readonly calls: EdgeCall[];
  /** Calls to one method id. */
  callsTo(methodId: number): EdgeCall[];
  /** Replaces the handler for later calls. */
  setHandler(handler: EdgeHandler): void;
  /** Replaces how WebSocket upgrades (the push hub's /push) are answered; default: 503. */
  onUpgrade(handler: UpgradeHandler): void;
  /** Resolves when the edge has received `count` calls to `methodId` in total. */
  received(methodId: number, count?: number): Promise<EdgeCall>;
  close(): Promise<void>;
}

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface TestEdgeOptions {
  /** How long the edge keeps an idle keep-alive connection (Node's default is 5 s). */
  keepAliveTimeoutMs?: number;
}

export async function startTestEdge(handler: EdgeHandler = () => ({}), opts: TestEdgeOptions = {}): Promise<TestEdge> {
  const calls: EdgeCall[] = [];
  const attempts = new Map<number, number>();
  const waiters: { methodId: number; count: number; resolve: (c: EdgeCall) => void }[] = [];
  let current = handler;

  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = req.url ?? "";
    const m = /^\/rpc\/(\d+)$/.exec(path);
    const call: EdgeCall = {
      httpMethod: req.method ?? "",
      path,
      methodId: m ? Number(m[1]) : Number.NaN,
      headers: req.headers,
      body: new Uint8Array(Buffer.concat(chunks)),
      remotePort: req.socket.remotePort ?? 0,
    };
    calls.push(call);
    const attempt = (attempts.get(call.methodId) ?? 0) + 1;
    attempts.set(call.methodId, attempt);
    for (const w of [...waiters]) {
      if (w.methodId === call.methodId && attempt >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(call);
      }
    }

    const reply = await current(call, attempt);
    if (reply === "destroy") {
      req.socket.destroy();
      return;
    }
    if (res.destroyed) return;
    const headers: Record<string, string> = { "content-type": "application/x-protobuf", ...reply.headers };
    const status = reply.status === undefined ? 0 : reply.status;
    if (status !== null) headers[RelayHeader.status] = String(status);
    res.writeHead(reply.httpStatus ?? 200, headers);
    res.end(reply.payload ?? new Uint8Array(0));
  });
  // The gateway's push hub opens a WebSocket to /push once a connection has a session; this
  // edge has no push, so it refuses the upgrade (the hub retries with backoff until stopped).
  let upgrade: UpgradeHandler = (_req, socket) => {
    socket.end("HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
  };
  server.on("upgrade", (req, socket, head) => upgrade(req, socket, head));

  if (opts.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    callsTo: (methodId) => calls.filter((c) => c.methodId === methodId),
    setHandler(h) {
      current = h;
    },
    onUpgrade(h) {
      upgrade = h;
    },
    received(methodId, count = 1) {
      const seen = calls.filter((c) => c.methodId === methodId);
      if (seen.length >= count) return Promise.resolve(seen[count - 1] as EdgeCall);
      return new Promise((resolve) => waiters.push({ methodId, count, resolve }));
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A URL on 127.0.0.1 where nothing listens (a port that was just released). */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A promise with its resolver, for holding an edge answer until the test releases it. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}
