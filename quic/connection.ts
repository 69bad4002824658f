// One QUIC connection of the driver: a quiche connection plus what the driver keeps for it —
// stream writes waiting for flow-control credit, the next server-initiated uni-stream id, and
// its one entry in the driver's timer heap. It never touches the socket: the driver flushes it.
import { Shutdown, streamErrorCode, type Connection, type Host } from "./native.ts";
import type { TimerEntry } from "./timer-heap.ts";

/** A stream write that did not fit quiche's buffers (peer flow control) yet. */
interface PendingWrite {
  data: Uint8Array;
  fin: boolean;
  done: (err?: Error) => void;
}

export class StreamWriteError extends Error {}

export class DriverConnection<App = unknown> {
  readonly quiche: Connection;
  /** Map key of the connection: its source connection id. */
  readonly key: string;
  remote: Host;
  /** What the application attaches (the listener's per-connection state). */
  app: App | undefined;
  /** True once the handshake completed and the application was told. */
  established = false;
  /** The driver's timer entry for quiche's timeout. */
  timer: TimerEntry | undefined;
  /** True while queued for the next flush. */
  dirty = false;
  /** True once the application was told the connection ended. */
  ended = false;
  private readonly pending = new Map<number, PendingWrite>();
  private nextUni = 3;

  constructor(quiche: Connection, key: string, remote: Host) {
    this.quiche = quiche;
    this.key = key;
    this.remote = remote;
  }

  get closed(): boolean {
    return this.quiche.isClosed();
  }

  /** `host:port`, IPv6 in brackets. */
  get remoteAddr(): string {
    const h = this.remote.host;
    return `${h.includes(":") ? `[${h}]` : h}:${this.remote.port}`;
  }

  /** Streams the peer still lets this side open, by type. */
  streamsLeft(type: "bidi" | "uni"): number {
    try {
      return type === "uni" ? this.quiche.peerStreamsLeftUni() : this.quiche.peerStreamsLeftBidi();
    } catch {
      return 0;
    }
  }

  /** Reads what the stream holds into `buf`: [bytes, fin], null when nothing is there. Throws on reset. */
  read(streamId: number, buf: Uint8Array): [number, boolean] | null {
    return this.quiche.streamRecv(streamId, buf);
  }

  /**
   * Writes `data` (and FIN with its last byte when `fin`) on a stream. What quiche cannot take
   * now waits for credit and is retried on every flush; `done` is called once everything is in
   * quiche's buffers, or with an error when the peer stopped the stream or the connection ended.
   * A stream has at most one write in progress.
   */
  write(streamId: number, data: Uint8Array, fin: boolean, done: (err?: Error) => void): void {
    if (this.pending.has(streamId)) {
      done(new StreamWriteError("a write is already in progress on this stream"));
      return;
    }
    this.pending.set(streamId, { data, fin, done });
    this.tryWrite(streamId);
  }

  /** Opens the next server-initiated unidirectional stream; undefined when the peer grants none now. */
  openUni(): number | undefined {
    if (this.streamsLeft("uni") < 1) return undefined;
    const id = this.nextUni;
    this.nextUni += 4;
    return id;
  }

  /** True while a write on the stream waits for credit. */
  writing(streamId: number): boolean {
    return this.pending.has(streamId);
  }

  /** Retries writes waiting for credit (before each flush). */
  retryWrites(): void {
    if (this.pending.size === 0) return;
    for (const id of [...this.pending.keys()]) this.tryWrite(id);
  }

  /** Abandons the stream in both directions with `code` (RESET_STREAM and STOP_SENDING). Never throws. */
  reset(streamId: number, code: number): void {
    this.failWrite(streamId, new StreamWriteError(`stream reset by the server (${code})`));
    this.shutdown(streamId, "read", code);
    this.shutdown(streamId, "write", code);
  }

  /** Shuts one direction of a stream down; never throws. */
  shutdown(streamId: number, direction: "read" | "write", code: number): void {
    try {
      this.quiche.streamShutdown(streamId, direction === "read" ? Shutdown.Read : Shutdown.Write, code);
    } catch {
      /* already finished or unknown */
    }
  }

  /** Closes the connection with an application error code; never throws. */
  close(code: number, reason: string): void {
    try {
      this.quiche.close(true, code, Buffer.from(reason));
    } catch {
      /* already closing */
    }
  }

  /** Fails every write still waiting (the connection ended). */
  abandonWrites(): void {
    for (const id of [...this.pending.keys()]) this.failWrite(id, new StreamWriteError("the connection ended"));
  }

  private failWrite(streamId: number, err: Error): void {
    const w = this.pending.get(streamId);
    if (!w) return;
    this.pending.delete(streamId);
    w.done(err);
  }

  private tryWrite(streamId: number): void {
    const w = this.pending.get(streamId);
    if (!w) return;
    let written: number | null;
    try {
      // FIN goes with the last bytes: quiche sets it only when the whole buffer was taken.
      written = this.quiche.streamSend(streamId, w.data, w.fin);
    } catch (err) {
      const code = streamErrorCode(err, "StreamStopped");
      if (code !== undefined) this.shutdown(streamId, "write", code);
      this.failWrite(streamId, new StreamWriteError(err instanceof Error ? err.message : String(err)));
      return;
    }
    if (written === null) return; // no credit now
    if (written < w.data.length) {
      w.data = w.data.subarray(written);
      return;
    }
    this.pending.delete(streamId);
    w.done();
  }
}
