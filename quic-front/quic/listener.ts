// The gateway's QUIC listener on the lean driver: ALPN qpq, one RPC per client-initiated
// bidirectional stream, push frames on server-initiated unidirectional streams. Same limits as
// the @matrixai/quic listener: transfer deadlines for requests and answers, a byte budget per
// connection reserved from the header, the 4 MiB frame limit from the header, streams per
// connection (quiche's stream credit), idle timeout, graceful stop with an application code.
import { ALPN, REQUEST_HEADER, type FrameError, type RequestFrame } from "../../proto/index.ts";
import { ByteBudget } from "../byte-budget.ts";
import type { TlsMaterial } from "../cert.ts";
import type { ClientConnection, Gateway } from "../gateway.ts";
import { binding, listenAddress } from "../listen-error.ts";
import type { Logger } from "../../proto/util/log.ts";
import { requestLimits, type RequestLimits } from "../request-limits.ts";
import { serverConfig } from "../../quic/config.ts";
import type { DriverConnection } from "../../quic/connection.ts";
import { QuicDriver } from "./driver.ts";
import { streamErrorCode } from "../../quic/native.ts";
import { RequestStream } from "./request-stream.ts";

/** How long a complete request waits for its FIN before it is served anyway. */
const FIN_GRACE_MS = 1000;
/** Application codes: connection closed by the server (refused, deadline), server stopping. */
export const CLOSE_CODES = { closed: 1, stopping: 0 } as const;
/** Stream error code for streams the server resets or stops (deadline, refusal). */
const STREAM_REFUSED = 1;
/** How long stop() lets connections take their CONNECTION_CLOSE. */
const STOP_GRACE_MS = 1000;

export type LeanListenerOptions = RequestLimits;

/** Per-connection state of the listener. */
interface ConnState {
  client: ClientConnection | undefined;
  readonly budget: ByteBudget;
  readonly streams: Map<number, RequestStream>;
}

type Conn = DriverConnection<ConnState>;

export class LeanQuicListener {
  private readonly gateway: Gateway;
  private readonly logger: Logger;
  private readonly limits: LeanListenerOptions;
  private readonly driver: QuicDriver<ConnState>;
  private readonly states = new Set<ConnState>();
  /** Read buffer shared by every stream: the driver is single-threaded. */
  private readonly buf = new Uint8Array(64 * 1024);
  /** Streams ended by a transfer deadline: requests that did not arrive, answers not taken. */
  readonly timeouts = { requests: 0, answers: 0 };

  constructor(gateway: Gateway, tls: TlsMaterial, logger: Logger, limits: Partial<LeanListenerOptions> = {}) {
    this.gateway = gateway;
    this.logger = logger;
    this.limits = requestLimits(limits);
    const config = serverConfig({
      certPem: tls.certPem,
      keyPem: tls.keyPem,
      alpn: ALPN,
      maxStreamsBidi: gateway.config.maxStreamsPerConnection,
      idleTimeoutMs: this.limits.idleTimeoutMs,
    });
    this.driver = new QuicDriver<ConnState>(
      config,
      {
        established: (conn) => this.established(conn),
        readable: (conn, id) => this.readable(conn, id),
        ended: (conn) => this.ended(conn),
      },
      // Handshakes the gateway will refuse still cost a connection until refused: room for them.
      { maxConnections: gateway.config.maxConnections * 2 },
    );
  }

  /** Request bytes held right now across all connections: buffers allocated, and reserved. */
  get requestBuffers(): { allocated: number; reserved: number; waiting: number } {
    let allocated = 0;
    let reserved = 0;
    let waiting = 0;
    for (const s of this.states) {
      reserved += s.budget.used;
      waiting += s.budget.waiting;
      for (const r of s.streams.values()) allocated += r.assembler.allocated;
    }
    return { allocated, reserved, waiting };
  }

  /** The driver's counters (retries, version negotiations, dropped Initials). */
  get stats() {
    return this.driver.stats;
  }

  /** QUIC connections the driver holds (handshaking, open or closing). */
  get connectionCount(): number {
    return this.driver.connectionCount;
  }

  get port(): number {
    return this.driver.port;
  }

  get host(): string {
    return this.driver.host;
  }

  async start(host: string, port: number): Promise<void> {
    await binding("QUIC listener", listenAddress("udp", host, port), () => this.driver.listen(host, port));
  }

  /** Closes every connection with the application code for "server stopping", then the socket. */
  async stop(): Promise<void> {
    await this.driver.stop(CLOSE_CODES.stopping, "server stopping", STOP_GRACE_MS);
  }

  private established(conn: Conn): void {
    const state: ConnState = {
      client: undefined,
      budget: new ByteBudget(this.limits.connectionBufferBytes),
      streams: new Map(),
    };
    void this.gateway
      .open({
        transport: "quic",
        remoteAddr: conn.remoteAddr,
        sendPush: (frame) => this.sendPush(conn, frame),
        // The gateway closes every connection with "server stopping" when the front stops.
        close: (reason) =>
          this.driver.close(
            conn,
            reason === "server stopping" ? CLOSE_CODES.stopping : CLOSE_CODES.closed,
            reason.slice(0, 100),
          ),
      })
      .then((client) => {
        if (conn.ended) {
          if (client) this.gateway.close(client, "closed");
          return;
        }
        if (!client) return; // refused: the gateway closed the link
        state.client = client;
        this.states.add(state);
        // Streams that arrived while the gateway decided were left in quiche; read them now.
        conn.app = state;
        for (const id of conn.quiche.readable()) this.readable(conn, id);
        this.driver.touch(conn);
      });
  }

  private ended(conn: Conn): void {
    const state = conn.app;
    if (!state) return;
    this.states.delete(state);
    for (const s of state.streams.values()) this.forget(state, s);
    state.streams.clear();
    if (state.client) this.gateway.close(state.client, "closed");
  }

  private readable(conn: Conn, id: number): void {
    const state = conn.app;
    if (!state) return;
    if ((id & 3) !== 0) {
      // Only client-initiated bidirectional streams carry requests.
      conn.reset(id, STREAM_REFUSED);
      return;
    }
    let s = state.streams.get(id);
    if (!s) {
      s = new RequestStream(id);
      state.streams.set(id, s);
      const stream = s;
      s.timer = this.driver.timerHeap.after(this.limits.transferTimeoutMs, () => this.expired(conn, stream));
    }
    this.pump(conn, state, s);
  }

  /** Reads what the stream holds, as far as the request's state allows. */
  private pump(conn: Conn, state: ConnState, s: RequestStream): void {
    const a = s.assembler;
    while (s.phase !== "budget" && !s.readDone) {
      // While the header is incomplete read only the header, so no payload is taken from flow
      // control before its reservation.
      const want = a.headerRemaining > 0 ? a.headerRemaining : this.buf.length;
      let got: [number, boolean] | null;
      try {
        got = conn.read(s.id, this.buf.subarray(0, want));
      } catch (err) {
        if (streamErrorCode(err, "StreamReset") !== undefined || s.phase !== "served") {
          // The client abandoned the request: nothing to answer.
          this.drop(conn, state, s);
        }
        return;
      }
      if (got === null) return;
      const [n, fin] = got;
      if (fin) s.readDone = true;
      if (s.phase === "served") continue; // late bytes or FIN of a request already served
      if (n > 0) {
        const hadHeader = a.headerRemaining === 0;
        const err = a.push(this.buf.subarray(0, n));
        if (err) return this.refuseRest(conn, state, s, err);
        if (!hadHeader && a.headerRemaining === 0 && !this.reserve(conn, state, s)) return;
      }
      if (s.readDone) {
        this.serve(conn, state, s, a.finish());
        return;
      }
      if (a.complete && s.phase === "reading") {
        // Complete without FIN yet: wait briefly, since a client's bare FIN after its data can
        // be lost (MatrixAI/js-quic#20); bytes arriving meanwhile are trailing bytes.
        s.phase = "fin";
        this.driver.timerHeap.cancel(s.timer);
        s.timer = this.driver.timerHeap.after(FIN_GRACE_MS, () => this.serve(conn, state, s, a.finish()));
      }
    }
  }

  /**
   * Once the header is in: refuses a payload larger than the whole budget, re-arms the deadline
   * for the announced size, and reserves the payload. False when the stream stops reading here
   * (refused, or waiting for room).
   */
  private reserve(conn: Conn, state: ConnState, s: RequestStream): boolean {
    const announced = s.assembler.payloadLength ?? 0;
    if (announced > state.budget.limit) {
      this.refuseRest(
        conn,
        state,
        s,
        s.assembler.fail(
          "over-budget",
          `a request of ${announced} bytes exceeds this connection's buffer of ${state.budget.limit} bytes`,
        ),
      );
      return false;
    }
    this.driver.timerHeap.cancel(s.timer);
    const left = s.openedAt + this.deadlineMs(REQUEST_HEADER + announced) - performance.now();
    s.timer = this.driver.timerHeap.after(left, () => this.expired(conn, s));
    if (announced === 0) return true;
    if (state.budget.tryAcquire(announced)) {
      s.reserved = announced;
      return true;
    }
    s.phase = "budget";
    s.budgetWait = new AbortController();
    void state.budget.acquire(announced, s.budgetWait.signal).then((granted) => {
      s.budgetWait = undefined;
      if (!granted) return;
      if (s.phase !== "budget" || !state.streams.has(s.id)) {
        // Granted as the request ended (deadline, reset, connection gone): give the bytes back.
        state.budget.release(announced);
        return;
      }
      s.reserved = announced;
      s.phase = "reading";
      this.pump(conn, state, s);
      this.driver.touch(conn);
    });
    return false;
  }

  /** The transfer deadline passed before the request was complete. */
  private expired(conn: Conn, s: RequestStream): void {
    const state = conn.app;
    if (!state || state.streams.get(s.id) !== s || s.phase === "served") return;
    if (s.assembler.complete) return this.serve(conn, state, s, s.assembler.finish());
    this.timeouts.requests++;
    const err = s.assembler.fail(
      "timeout",
      `the request did not arrive completely within ${Math.round(performance.now() - s.openedAt)} ms`,
    );
    this.refuseRest(conn, state, s, err);
    this.driver.touch(conn);
  }

  /** Stops the client from sending the rest (STOP_SENDING) and answers the error. */
  private refuseRest(conn: Conn, state: ConnState, s: RequestStream, err: FrameError): void {
    if (!s.readDone) conn.shutdown(s.id, "read", STREAM_REFUSED);
    s.readDone = true;
    this.serve(conn, state, s, err);
  }

  private serve(conn: Conn, state: ConnState, s: RequestStream, frame: RequestFrame | FrameError): void {
    if (s.phase === "served" || !state.client) return;
    this.release(state, s);
    s.phase = "served";
    // Served inside gateway.serve(), so a drain also waits for the answer to go out.
    void this.gateway.serve(state.client, frame, (answer) => this.writeAnswer(conn, state, s, answer));
  }

  /**
   * Writes the answer with FIN on its last bytes. An answer the client does not take within its
   * deadline (counted from now: answers do not wait for each other here) gets the stream reset.
   */
  private writeAnswer(conn: Conn, state: ConnState, s: RequestStream, answer: Uint8Array): Promise<void> {
    if (conn.ended) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.driver.timerHeap.after(this.deadlineMs(answer.length), () => {
        this.timeouts.answers++;
        conn.reset(s.id, STREAM_REFUSED);
        this.driver.touch(conn);
      });
      conn.write(s.id, answer, true, () => {
        this.driver.timerHeap.cancel(timer);
        // The request's FIN did not come (grace passed): stop the client's side too.
        if (!s.readDone) conn.shutdown(s.id, "read", 0);
        state.streams.delete(s.id);
        resolve();
      });
      this.driver.touch(conn);
    });
  }

  /** Writes one push frame on a new unidirectional stream; rejects when it cannot be delivered. */
  private sendPush(conn: Conn, frame: Uint8Array): Promise<void> {
    if (conn.ended || conn.closed) return Promise.reject(new Error("the connection is closed"));
    // Pushes are hints (the client fetches anyway): one that finds no stream credit is dropped.
    const id = conn.openUni();
    if (id === undefined) return Promise.reject(new Error("the client grants no stream for a push now"));
    return new Promise<void>((resolve, reject) => {
      // A client that does not read its push streams must not keep them (and their bytes).
      const timer = this.driver.timerHeap.after(this.deadlineMs(frame.length), () => {
        conn.reset(id, STREAM_REFUSED);
        this.driver.touch(conn);
      });
      // Pushes written in one event-loop turn leave together at the connection's next flush.
      conn.write(id, frame, true, (err) => {
        this.driver.timerHeap.cancel(timer);
        if (err) reject(err);
        else resolve();
      });
      this.driver.touch(conn);
    });
  }

  /** The client reset a request before it was served: forget it, answer nothing. */
  private drop(conn: Conn, state: ConnState, s: RequestStream): void {
    this.forget(state, s);
    state.streams.delete(s.id);
    conn.shutdown(s.id, "write", 0);
    this.driver.touch(conn);
  }

  private forget(state: ConnState, s: RequestStream): void {
    this.release(state, s);
    if (s.phase !== "served") s.phase = "served";
  }

  private release(state: ConnState, s: RequestStream): void {
    this.driver.timerHeap.cancel(s.timer);
    s.timer = undefined;
    s.budgetWait?.abort();
    s.budgetWait = undefined;
    state.budget.release(s.reserved);
    s.reserved = 0;
  }

  /** Time a frame of `bytes` may take to cross the connection. */
  private deadlineMs(bytes: number): number {
    return this.limits.transferTimeoutMs + Math.ceil((bytes * 1000) / this.limits.minTransferBytesPerSecond);
  }
}
