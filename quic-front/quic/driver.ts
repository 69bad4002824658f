// The lean QUIC server driver: one UDP socket, connections found by destination connection id,
// version negotiation, stateless retry before any state is kept, quiche's timeouts on one timer
// heap, and every dirty connection flushed once per event-loop turn (recv, then the
// application's stream work, then `send` until quiche has nothing more).
import { createHmac, randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { DriverConnection } from "../../quic/connection.ts";
import { PacketType, quiche, type Config, type Header, type Host } from "../../quic/native.ts";
import { RetryTokens } from "./retry-token.ts";
import { TimerHeap } from "../../quic/timer-heap.ts";

/** What the application does with the driver's connections. */
export interface DriverHandler<App> {
  /** The handshake completed (ALPN agreed). */
  established(conn: DriverConnection<App>): void;
  /** A stream has data (or FIN, or a reset) to read. Called after each received datagram. */
  readable(conn: DriverConnection<App>, streamId: number): void;
  /** The connection is gone (closed by either side, idle timeout). Called once. */
  ended(conn: DriverConnection<App>): void;
}

export interface DriverOptions {
  /** Connections at once, handshaking or established; further Initials are dropped. */
  maxConnections: number;
  /** How long a retry token is accepted. */
  retryTokenLifetimeMs?: number;
}

/** Counters for tests and metrics. */
export interface DriverStats {
  retriesSent: number;
  versionNegotiations: number;
  /** Initial packets dropped: bad or expired token, too short, connection limit. */
  initialsDropped: number;
  accepted: number;
  datagramsIn: number;
  datagramsOut: number;
  /** Passes over a connection that sent at least one datagram. */
  sends: number;
}

const SLAB = 64 * 1024;

/** Map key of a connection id, without copying its bytes. */
const cidKey = (cid: Uint8Array) => Buffer.from(cid.buffer, cid.byteOffset, cid.length).toString("latin1");
const CONN_ID_LEN = quiche.MAX_CONN_ID_LEN;

export class QuicDriver<App> {
  private readonly config: Config;
  private readonly handler: DriverHandler<App>;
  private readonly opts: DriverOptions;
  private readonly conns = new Map<string, DriverConnection<App>>();
  private readonly dirty: DriverConnection<App>[] = [];
  private flushScheduled = false;
  private readonly timers: TimerHeap;
  private readonly tokens: RetryTokens;
  /** Derives server connection ids from the client's first DCID, so a retried Initial maps back. */
  private readonly cidKey = randomBytes(32);
  private socket: dgram.Socket | undefined;
  private local: Host = { host: "", port: 0 };
  private slab = Buffer.allocUnsafe(SLAB);
  private slabUsed = 0;
  private readonly scratch = Buffer.allocUnsafe(quiche.MAX_DATAGRAM_SIZE);
  private closing = false;
  private allEnded: (() => void) | undefined;
  readonly stats: DriverStats = {
    retriesSent: 0,
    versionNegotiations: 0,
    initialsDropped: 0,
    accepted: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    sends: 0,
  };

  constructor(config: Config, handler: DriverHandler<App>, opts: DriverOptions) {
    this.config = config;
    this.handler = handler;
    this.opts = opts;
    this.timers = new TimerHeap(() => this.flush());
    this.tokens = new RetryTokens({ lifetimeMs: opts.retryTokenLifetimeMs });
  }

  get port(): number {
    return this.local.port;
  }

  get host(): string {
    return this.local.host;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** The driver's timer heap, for the application's own deadlines. */
  get timerHeap(): TimerHeap {
    return this.timers;
  }

  async listen(host: string, port: number): Promise<void> {
    const socket = dgram.createSocket({ type: host.includes(":") ? "udp6" : "udp4" });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    // Send errors (an unreachable peer) are per datagram; QUIC recovers or times out.
    socket.on("error", () => {});
    socket.on("message", (data, rinfo) => this.receive(data, { host: rinfo.address, port: rinfo.port }));
    const addr = socket.address();
    this.local = { host: addr.address, port: addr.port };
    this.socket = socket;
  }

  /** Marks a connection for the flush at the end of this event-loop turn. */
  touch(conn: DriverConnection<App>): void {
    if (conn.dirty) return;
    conn.dirty = true;
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Closes every connection with `code` and waits (up to `graceMs`) for them to end, then closes
   * the socket. New connections are refused from the first call on.
   */
  async stop(code: number, reason: string, graceMs: number): Promise<void> {
    this.closing = true;
    for (const conn of this.conns.values()) this.close(conn, code, reason);
    this.flush();
    if (this.conns.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.allEnded = resolve;
        timer = setTimeout(resolve, graceMs);
      });
      clearTimeout(timer);
    }
    for (const conn of [...this.conns.values()]) this.end(conn);
    this.timers.close();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /**
   * Closes a connection with an application code. What its streams already hold is sent first:
   * quiche drops unsent stream data once closing, and an answer written just before the close
   * (a drained FetchWait) must still reach the client.
   */
  close(conn: DriverConnection<App>, code: number, reason: string): void {
    if (!conn.quiche.isClosed() && !conn.quiche.isDraining()) {
      conn.retryWrites();
      this.sendAll(conn);
      conn.close(code, reason);
    }
    this.touch(conn);
  }

  private receive(data: Buffer, from: Host): void {
    this.stats.datagramsIn++;
    let header: Header;
    try {
      header = quiche.Header.fromSlice(data, CONN_ID_LEN);
    } catch {
      return; // not QUIC
    }
    const conn = this.conns.get(cidKey(header.dcid));
    if (conn) {
      this.recv(conn, data, from);
      return;
    }
    this.accept(header, data, from);
  }

  private accept(header: Header, data: Buffer, from: Host): void {
    if (header.ty !== PacketType.Initial) return;
    // Anti-amplification: answer only full-size client Initials (RFC 9000 §14.1).
    if (data.length < quiche.MIN_CLIENT_INITIAL_LEN || this.closing || this.conns.size >= this.opts.maxConnections) {
      this.stats.initialsDropped++;
      return;
    }
    if (!quiche.versionIsSupported(header.version)) {
      const n = quiche.negotiateVersion(header.scid, header.dcid, this.scratch);
      this.stats.versionNegotiations++;
      this.sendRaw(this.scratch.subarray(0, n), from);
      return;
    }
    const token = header.token;
    if (!token || token.length === 0) {
      const scid = this.derivedCid(header.dcid);
      const n = quiche.retry(
        header.scid,
        header.dcid,
        scid,
        this.tokens.mint(header.dcid, from.host, from.port),
        header.version,
        this.scratch,
      );
      this.stats.retriesSent++;
      this.sendRaw(this.scratch.subarray(0, n), from);
      return;
    }
    const odcid = this.tokens.validate(token, from.host, from.port);
    // The retried Initial must name the id this server derived from the original one.
    if (!odcid || !this.derivedCid(odcid).equals(Buffer.from(header.dcid))) {
      this.stats.initialsDropped++;
      return;
    }
    const scid = Buffer.from(header.dcid);
    let q;
    try {
      q = quiche.Connection.accept(scid, odcid, this.local, from, this.config);
    } catch {
      this.stats.initialsDropped++;
      return;
    }
    const conn = new DriverConnection<App>(q, cidKey(scid), from);
    this.conns.set(conn.key, conn);
    this.stats.accepted++;
    this.recv(conn, data, from);
  }

  private recv(conn: DriverConnection<App>, data: Buffer, from: Host): void {
    try {
      conn.quiche.recv(data, { from, to: this.local });
      conn.remote = from;
    } catch {
      // A bad packet is dropped; a fatal error leaves quiche closing the connection, which the
      // flush sends.
    }
    if (!conn.established && conn.quiche.isEstablished()) {
      conn.established = true;
      this.handler.established(conn);
    }
    if (conn.established && conn.app !== undefined) {
      for (const id of conn.quiche.readable()) this.handler.readable(conn, id);
    }
    this.touch(conn);
  }

  /** Sends what every dirty connection has, re-arms its timer, and ends closed connections. */
  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    // Timer callbacks may have dirtied connections too; take the whole list.
    for (let i = 0; i < this.dirty.length; i++) {
      const conn = this.dirty[i];
      conn.dirty = false;
      if (!socket) continue;
      conn.retryWrites();
      this.sendAll(conn);
      if (conn.quiche.isClosed()) {
        this.end(conn);
        continue;
      }
      this.armTimer(conn);
    }
    this.dirty.length = 0;
  }

  /** `send` until quiche has nothing more for this connection. */
  private sendAll(conn: DriverConnection<App>): void {
    const socket = this.socket;
    if (!socket) return;
    let sent = 0;
    for (;;) {
      if (SLAB - this.slabUsed < quiche.MAX_DATAGRAM_SIZE) {
        // Datagrams handed to the socket keep their slab alive until sent; never reuse it.
        this.slab = Buffer.allocUnsafe(SLAB);
        this.slabUsed = 0;
      }
      let out: ReturnType<typeof conn.quiche.send>;
      try {
        out = conn.quiche.send(this.slab.subarray(this.slabUsed));
      } catch {
        break;
      }
      if (out === null) break;
      const [len, info] = out;
      socket.send(this.slab, this.slabUsed, len, info.to.port, info.to.host);
      sent++;
      this.slabUsed += len;
    }
    this.stats.datagramsOut += sent;
    if (sent > 0) this.stats.sends++;
  }

  private armTimer(conn: DriverConnection<App>): void {
    const ms = conn.quiche.timeout();
    if (ms === null) {
      this.timers.cancel(conn.timer);
      conn.timer = undefined;
      return;
    }
    // One extra millisecond: quiche's clock and the event loop's may disagree slightly.
    const at = performance.now() + ms + 1;
    // An earlier entry is kept: firing early is harmless (quiche checks the time itself), and
    // not replacing it on every flush keeps the heap small.
    if (conn.timer?.active && conn.timer.at <= at + 1) return;
    this.timers.cancel(conn.timer);
    conn.timer = this.timers.after(ms + 1, () => {
      conn.timer = undefined;
      conn.quiche.onTimeout();
      this.touch(conn);
    });
  }

  private end(conn: DriverConnection<App>): void {
    if (this.conns.get(conn.key) === conn) this.conns.delete(conn.key);
    this.timers.cancel(conn.timer);
    conn.timer = undefined;
    if (!conn.ended) {
      conn.ended = true;
      conn.abandonWrites();
      try {
        this.handler.ended(conn);
      } catch {
        /* the handler's own failure must not stop the driver */
      }
    }
    if (this.closing && this.conns.size === 0) this.allEnded?.();
  }

  private derivedCid(dcid: Uint8Array): Buffer {
    return createHmac("sha256", this.cidKey).update(dcid).digest().subarray(0, CONN_ID_LEN);
  }

  private sendRaw(datagram: Buffer, to: Host): void {
    this.socket?.send(Buffer.from(datagram), to.port, to.host);
  }
}
