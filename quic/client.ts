// A lean QUIC client over the same quiche binding as the server driver: one connection, one RPC
// per bidirectional stream with the request's FIN on its last bytes, pushes read from the
// server's unidirectional streams, one flush per event-loop turn. It has the SDK's Transport
// shape (request, onPush, close), so `new QpqClient(client)` speaks the whole protocol over it;
// the benchmark's load generator uses it so that the client does not dominate the machine.
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import {
  ALPN,
  FrameError,
  PushAssembler,
  ResponseAssembler,
  encodeRequest,
  type PushFrame,
  type ResponseFrame,
} from "../proto/index.ts";
import { SIGALGS } from "./config.ts";
import { DriverConnection } from "./connection.ts";
import { quiche, type Host } from "./native.ts";

export interface LeanClientOptions {
  host: string;
  port: number;
  /** PEM of the CA to trust; nothing else is accepted. */
  ca: string;
  serverName?: string;
  connectTimeoutMs?: number;
  /** Deadline of one RPC, queueing for a stream included (default 120 s). */
  requestTimeoutMs?: number;
}

interface Call {
  id: number;
  frame: Uint8Array;
  assembler: ResponseAssembler;
  resolve(res: ResponseFrame): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class LeanClientError extends Error {}

export class LeanQuicClient {
  private readonly socket: dgram.Socket;
  private readonly conn: DriverConnection<undefined>;
  private readonly local: Host;
  private readonly requestTimeoutMs: number;
  private readonly calls = new Map<number, Call>();
  /** Calls waiting for the server to grant a stream, in order. */
  private readonly queued: Call[] = [];
  private readonly pushes = new Map<number, PushAssembler>();
  private readonly pushHandlers = new Set<(frame: PushFrame) => void>();
  private readonly buf = new Uint8Array(64 * 1024);
  private readonly out = Buffer.allocUnsafe(quiche.MAX_DATAGRAM_SIZE);
  private nextBidi = 0;
  private nextRequestId = 1;
  private flushScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private established: (() => void) | undefined;
  private failed: ((err: Error) => void) | undefined;
  private closed = false;
  private socketClosed = false;

  private constructor(socket: dgram.Socket, conn: DriverConnection<undefined>, local: Host, opts: LeanClientOptions) {
    this.socket = socket;
    this.conn = conn;
    this.local = local;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 120_000;
  }

  static async connect(opts: LeanClientOptions): Promise<LeanQuicClient> {
    const enc = new TextEncoder();
    const config = quiche.Config.withBoringSslCtx(true, false, enc.encode(opts.ca), null, null, SIGALGS);
    config.setApplicationProtos([ALPN]);
    config.setMaxIdleTimeout(120_000);
    config.setMaxRecvUdpPayloadSize(quiche.MAX_DATAGRAM_SIZE);
    config.setMaxSendUdpPayloadSize(quiche.MAX_DATAGRAM_SIZE);
    config.setInitialMaxData(10 * 1024 * 1024);
    config.setInitialMaxStreamDataBidiLocal(1024 * 1024);
    config.setInitialMaxStreamDataBidiRemote(1024 * 1024);
    config.setInitialMaxStreamDataUni(1024 * 1024);
    config.setInitialMaxStreamsBidi(0);
    config.setInitialMaxStreamsUni(1000);
    config.setDisableActiveMigration(true);
    const socket = dgram.createSocket(opts.host.includes(":") ? "udp6" : "udp4");
    await new Promise<void>((resolve) => socket.bind(0, opts.host.includes(":") ? "::" : "0.0.0.0", resolve));
    const local = { host: opts.host.includes(":") ? "::1" : "127.0.0.1", port: socket.address().port };
    const remote = { host: opts.host, port: opts.port };
    const q = quiche.Connection.connect(opts.serverName ?? "localhost", randomBytes(20), local, remote, config);
    const client = new LeanQuicClient(socket, new DriverConnection<undefined>(q, "client", remote), local, opts);
    socket.on("message", (data, rinfo) => client.receive(data, { host: rinfo.address, port: rinfo.port }));
    socket.on("error", () => {});
    const ready = new Promise<void>((resolve, reject) => {
      client.established = resolve;
      client.failed = reject;
    });
    const deadline = setTimeout(
      () => client.failed?.(new LeanClientError("the QUIC handshake did not complete in time")),
      opts.connectTimeoutMs ?? 10_000,
    );
    client.flush();
    try {
      await ready;
    } catch (err) {
      await client.close();
      throw err;
    } finally {
      clearTimeout(deadline);
    }
    return client;
  }

  /** Sends one request frame on its own stream (with FIN) and resolves with the response frame. */
  request(methodId: number, payload: Uint8Array, requestId = this.nextRequestId++ >>> 0): Promise<ResponseFrame> {
    if (this.closed) return Promise.reject(new LeanClientError("the connection is closed"));
    return new Promise<ResponseFrame>((resolve, reject) => {
      const call: Call = {
        id: -1,
        frame: encodeRequest(methodId, requestId, payload),
        assembler: new ResponseAssembler(),
        resolve,
        reject,
        timer: setTimeout(
          () => this.fail(call, new LeanClientError(`no answer to method ${methodId} in time`)),
          this.requestTimeoutMs,
        ),
      };
      this.queued.push(call);
      this.startQueued();
      this.touch();
    });
  }

  onPush(handler: (frame: PushFrame) => void): () => void {
    this.pushHandlers.add(handler);
    return () => this.pushHandlers.delete(handler);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.conn.close(0, "");
    this.flush();
    clearTimeout(this.timer);
    this.socketClosed = true;
    for (const c of [...this.calls.values(), ...this.queued])
      this.fail(c, new LeanClientError("the connection is closed"));
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private startQueued(): void {
    while (this.queued.length > 0 && this.conn.streamsLeft("bidi") > 0) {
      const call = this.queued.shift()!;
      call.id = this.nextBidi;
      this.nextBidi += 4;
      this.calls.set(call.id, call);
      this.conn.write(call.id, call.frame, true, (err) => {
        if (err) this.fail(call, new LeanClientError(`request not sent: ${err.message}`));
      });
    }
  }

  private fail(call: Call, err: Error): void {
    clearTimeout(call.timer);
    const q = this.queued.indexOf(call);
    if (q >= 0) this.queued.splice(q, 1);
    if (call.id >= 0 && this.calls.get(call.id) === call) {
      this.calls.delete(call.id);
      if (!this.closed) this.conn.reset(call.id, 0);
    }
    call.reject(err);
  }

  private receive(data: Buffer, from: Host): void {
    try {
      this.conn.quiche.recv(data, { from, to: this.local });
    } catch {
      /* a bad packet is dropped; a fatal error shows as a closed connection below */
    }
    if (this.conn.quiche.isEstablished()) {
      this.established?.();
      this.established = undefined;
      for (const id of this.conn.quiche.readable()) this.readable(id);
      this.startQueued();
    }
    this.touch();
  }

  private readable(id: number): void {
    for (;;) {
      let got: [number, boolean] | null;
      try {
        got = this.conn.read(id, this.buf);
      } catch (err) {
        const call = this.calls.get(id);
        if (call) this.fail(call, new LeanClientError(`the server reset the stream: ${(err as Error).message}`));
        this.pushes.delete(id);
        return;
      }
      if (got === null) return;
      const [n, fin] = got;
      const chunk = this.buf.subarray(0, n);
      if ((id & 3) === 3) {
        let a = this.pushes.get(id);
        if (!a) this.pushes.set(id, (a = new PushAssembler()));
        if (n > 0) a.push(chunk);
        if (fin) {
          this.pushes.delete(id);
          const frame = a.finish();
          if (!(frame instanceof FrameError)) for (const h of this.pushHandlers) h(frame);
        }
        continue;
      }
      const call = this.calls.get(id);
      if (!call) continue;
      const err = n > 0 ? call.assembler.push(chunk) : undefined;
      // Frames are self-delimiting: complete once header and payload are in.
      if (err || call.assembler.complete || fin) {
        const res = call.assembler.finish();
        clearTimeout(call.timer);
        this.calls.delete(id);
        if (res instanceof FrameError) call.reject(new LeanClientError(`malformed response: ${res.message}`));
        else call.resolve(res);
        if (!fin) this.conn.shutdown(id, "read", 0);
      }
    }
  }

  private touch(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.socketClosed) return;
    this.conn.retryWrites();
    for (;;) {
      let out: ReturnType<typeof this.conn.quiche.send>;
      try {
        out = this.conn.quiche.send(this.out);
      } catch {
        break;
      }
      if (out === null) break;
      this.socket.send(Buffer.from(this.out.subarray(0, out[0])), out[1].to.port, out[1].to.host);
    }
    if (this.conn.quiche.isClosed()) {
      this.failed?.(new LeanClientError("the connection closed during the handshake"));
      if (!this.closed) void this.close();
      return;
    }
    clearTimeout(this.timer);
    const ms = this.conn.quiche.timeout();
    if (ms !== null) {
      this.timer = setTimeout(() => {
        this.conn.quiche.onTimeout();
        this.flush();
      }, ms + 1);
      this.timer.unref();
    }
  }
}
