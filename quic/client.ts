// A lean QUIC client over the same quiche binding as the server driver: one connection, one RPC
// per bidirectional stream with the request's FIN on its last bytes, pushes read from the
// server's unidirectional streams, one flush per event-loop turn. It has the SDK's Transport
// shape (request, onPush, close), so `new QpqClient(client)` speaks the whole protocol over it;
// the benchmark's load generator uses it so that the client does not dominate the machine.
// `openStream` gives the SDK's transport (sdk/transport.ts) streams it writes and reads itself.
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
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
import { quiche, streamErrorCode, type Host } from "./native.ts";

export interface LeanClientOptions {
  host: string;
  port: number;
  /** PEM of the CA to trust; nothing else is accepted. */
  ca: string;
  /** The name the certificate must carry: by default the host when it is a name, else "localhost". */
  serverName?: string;
  connectTimeoutMs?: number;
  /** Deadline of one RPC, queueing for a stream included (default 120 s). */
  requestTimeoutMs?: number;
  /** Sends an ack-eliciting packet this often so an idle connection stays open (default: never). */
  keepAliveMs?: number;
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

/** SNI carries names only (RFC 6066), so an address falls back to the development name. */
export function serverNameFor(opts: { host: string; serverName?: string }): string {
  return opts.serverName ?? (isIP(opts.host) === 0 ? opts.host : "localhost");
}

const EMPTY = new Uint8Array(0);
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** What a stream needs of its client. */
interface StreamHost {
  readonly conn: DriverConnection<undefined>;
  /** Why the connection can carry nothing more, or undefined while it can. */
  ended(): Error | undefined;
  touch(): void;
  forget(id: number): void;
}

/**
 * One client-initiated bidirectional stream from `openStream`. Writes go out in order (one at a
 * time); reads are pulled by the caller, so what it does not read stays in quiche and holds the
 * server back by flow control. `release` (or `cancel`) must be called once the exchange is over.
 */
export class LeanStream {
  readonly id: number;
  private readonly host: StreamHost;
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private finSent = false;
  private finRead = false;
  private released = false;

  constructor(id: number, host: StreamHost) {
    this.id = id;
    this.host = host;
  }

  /** Resolves once `data` (and FIN with it when `fin`) is in quiche's buffers. */
  write(data: Uint8Array, fin: boolean): Promise<void> {
    const ended = this.failure ?? this.host.ended();
    if (ended) return Promise.reject(ended);
    return new Promise<void>((resolve, reject) => {
      this.host.conn.write(this.id, data, fin, (err) => {
        if (!err) {
          if (fin) this.finSent = true;
          resolve();
          return;
        }
        const code = streamErrorCode(err, "StreamStopped");
        reject(
          this.failure ??
            this.host.ended() ??
            new LeanClientError(
              code !== undefined
                ? `the server stopped reading the stream (code ${code})`
                : `the request was not sent: ${err.message}`,
            ),
        );
      });
      this.host.touch();
    });
  }

  /**
   * The next bytes the server sent (a copy), or null once it finished the stream. Rejects when
   * the server reset the stream, the stream was cancelled, or the connection ended.
   */
  async read(buf: Uint8Array): Promise<Uint8Array | null> {
    for (;;) {
      const ended = this.failure ?? this.host.ended();
      if (ended) throw ended;
      if (this.finRead) return null;
      let got: [number, boolean] | null;
      try {
        got = this.host.conn.read(this.id, buf);
      } catch (err) {
        const code = streamErrorCode(err, "StreamReset");
        throw new LeanClientError(
          code !== undefined
            ? `the server reset the stream (code ${code})`
            : `reading the answer failed: ${message(err)}`,
        );
      }
      if (got === null) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      const [n, fin] = got;
      if (fin) this.finRead = true;
      // What was read returns flow-control credit to the server.
      this.host.touch();
      if (n > 0) return buf.slice(0, n);
    }
  }

  /** Abandons the stream in both directions; a pending read or write rejects with `reason`. */
  cancel(reason: Error): void {
    if (this.released) return;
    this.failure ??= reason;
    this.host.conn.reset(this.id, 0);
    this.notify();
    this.finish();
  }

  /** Ends the exchange: a direction not finished yet is shut down, and the stream is forgotten. */
  release(): void {
    if (this.released) return;
    if (!this.finSent) this.host.conn.reset(this.id, 0);
    else if (!this.finRead) this.host.conn.shutdown(this.id, "read", 0);
    this.finish();
  }

  /** Wakes a waiting read (data, FIN, reset, or the connection ended). */
  notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private finish(): void {
    this.released = true;
    this.host.forget(this.id);
    this.host.touch();
  }
}

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
  private readonly streams = new Map<number, LeanStream>();
  private readonly closeHandlers = new Set<(err: Error) => void>();
  private readonly streamHost: StreamHost;
  private endedWith: Error | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
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
  /** Datagrams handed to the socket and not sent yet; `drained` runs when that reaches 0. */
  private sending = 0;
  private drained: (() => void) | undefined;
  private readonly sent = () => {
    if (--this.sending > 0) return;
    const drained = this.drained;
    this.drained = undefined;
    drained?.();
  };

  private constructor(socket: dgram.Socket, conn: DriverConnection<undefined>, local: Host, opts: LeanClientOptions) {
    this.socket = socket;
    this.conn = conn;
    this.local = local;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.streamHost = {
      conn,
      ended: () => this.endedWith,
      touch: () => this.touch(),
      forget: (id) => this.streams.delete(id),
    };
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
    // quiche takes addresses, not names. IPv4 first: fronts listen on 0.0.0.0 by default, and
    // "localhost" often resolves to ::1 first.
    const { address, family } = await lookup(opts.host, { order: "ipv4first" });
    const v6 = family === 6;
    const socket = dgram.createSocket(v6 ? "udp6" : "udp4");
    await new Promise<void>((resolve) => socket.bind(0, v6 ? "::" : "0.0.0.0", resolve));
    const local = { host: v6 ? "::1" : "127.0.0.1", port: socket.address().port };
    const remote = { host: address, port: opts.port };
    const q = quiche.Connection.connect(serverNameFor(opts), randomBytes(20), local, remote, config);
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
    if (opts.keepAliveMs) {
      client.keepAlive = setInterval(() => {
        try {
          client.conn.quiche.sendAckEliciting();
        } catch {
          /* closing */
        }
        client.flush();
      }, opts.keepAliveMs);
      client.keepAlive.unref();
    }
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

  /** Bidirectional streams the server still lets this client open. */
  get streamCredit(): number {
    return this.endedWith ? 0 : this.conn.streamsLeft("bidi");
  }

  /**
   * Opens the next bidirectional stream (quiche counts it against the server's grant at once).
   * Throws a LeanClientError when the server grants no stream now or the connection ended.
   */
  openStream(): LeanStream {
    if (this.endedWith) throw this.endedWith;
    const id = this.nextBidi;
    try {
      this.conn.quiche.streamSend(id, EMPTY, false);
    } catch (err) {
      throw new LeanClientError(`cannot open a stream: ${message(err)}`);
    }
    this.nextBidi += 4;
    const stream = new LeanStream(id, this.streamHost);
    this.streams.set(id, stream);
    return stream;
  }

  /** Called once with the reason when the connection ends (closed by either side, or timed out). */
  onClose(handler: (err: Error) => void): () => void {
    if (this.endedWith) {
      const err = this.endedWith;
      queueMicrotask(() => handler(err));
    } else this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  onPush(handler: (frame: PushFrame) => void): () => void {
    this.pushHandlers.add(handler);
    return () => this.pushHandlers.delete(handler);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.endedWith ??= new LeanClientError("the connection is closed");
    this.conn.close(0, "");
    this.flush();
    clearTimeout(this.timer);
    clearInterval(this.keepAlive);
    this.socketClosed = true;
    this.conn.abandonWrites();
    for (const c of [...this.calls.values(), ...this.queued]) this.fail(c, this.endedWith);
    for (const s of [...this.streams.values()]) s.notify();
    for (const h of [...this.closeHandlers]) h(this.endedWith);
    this.closeHandlers.clear();
    // Closing the socket cancels sends still queued: the CONNECTION_CLOSE must leave first.
    if (this.sending > 0) await new Promise<void>((resolve) => (this.drained = resolve));
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
      // Ready once a 1-RTT (short header) packet arrives: the server has then finished its side
      // of the handshake too. Some servers (@matrixai/quic's) reset streams that arrive earlier.
      if (this.established && (data[0] & 0x80) === 0) {
        this.established();
        this.established = undefined;
      }
      for (const id of this.conn.quiche.readable()) {
        const stream = this.streams.get(id);
        if (stream) stream.notify();
        else this.readable(id);
      }
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
      this.sending++;
      this.socket.send(Buffer.from(this.out.subarray(0, out[0])), out[1].to.port, out[1].to.host, this.sent);
    }
    if (this.conn.quiche.isClosed() || this.conn.quiche.isDraining()) {
      this.failed?.(new LeanClientError("the connection closed during the handshake"));
      if (!this.closed) {
        const peer = this.conn.quiche.peerError();
        this.endedWith ??= new LeanClientError(
          peer
            ? `the server closed the connection (code ${peer.errorCode})`
            : this.conn.quiche.isTimedOut()
              ? "the connection timed out"
              : "the connection is closed",
        );
        void this.close();
      }
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
