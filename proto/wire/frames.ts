// qpq frame codec (wire-protocol.md §3). Pure: no I/O, no node:* imports, so it runs in Node,
// workerd and browsers and is tested with byte vectors.

/** Largest payload a frame may announce: 4 MiB. */
export const MAX_PAYLOAD = 4 * 1024 * 1024;
export const REQUEST_HEADER = 10;
export const RESPONSE_HEADER = 9;
export const PUSH_HEADER = 6;

export interface RequestFrame {
  methodId: number;
  requestId: number;
  payload: Uint8Array;
}
export interface ResponseFrame {
  status: number;
  requestId: number;
  payload: Uint8Array;
}
export interface PushFrame {
  eventType: number;
  payload: Uint8Array;
}

export type FrameErrorCode =
  | "oversized"
  | "truncated-header"
  | "truncated-payload"
  | "trailing-bytes"
  /** The request did not arrive completely within the receiver's deadline. */
  | "timeout"
  /** The request announces more bytes than the receiver buffers for one connection. */
  | "over-budget";

/** A malformed frame. Every code maps to BadRequest on the wire. */
export class FrameError extends Error {
  readonly code: FrameErrorCode;
  /** Request fields known when the error was detected, so the answer can echo the id. */
  readonly requestId: number | undefined;
  constructor(code: FrameErrorCode, message: string, requestId?: number) {
    super(message);
    this.name = "FrameError";
    this.code = code;
    this.requestId = requestId;
  }
}

function checkLength(len: number): void {
  if (len > MAX_PAYLOAD) throw new RangeError(`payload of ${len} bytes exceeds ${MAX_PAYLOAD}`);
}

export function encodeRequest(methodId: number, requestId: number, payload: Uint8Array): Uint8Array {
  checkLength(payload.length);
  const out = new Uint8Array(REQUEST_HEADER + payload.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, methodId);
  view.setUint32(2, requestId >>> 0);
  view.setUint32(6, payload.length);
  out.set(payload, REQUEST_HEADER);
  return out;
}

export function encodeResponseHeader(status: number, requestId: number, payloadLength: number): Uint8Array {
  checkLength(payloadLength);
  const out = new Uint8Array(RESPONSE_HEADER);
  const view = new DataView(out.buffer);
  view.setUint8(0, status);
  view.setUint32(1, requestId >>> 0);
  view.setUint32(5, payloadLength);
  return out;
}

export function encodeResponse(status: number, requestId: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RESPONSE_HEADER + payload.length);
  out.set(encodeResponseHeader(status, requestId, payload.length), 0);
  out.set(payload, RESPONSE_HEADER);
  return out;
}

export function encodePush(eventType: number, payload: Uint8Array): Uint8Array {
  checkLength(payload.length);
  const out = new Uint8Array(PUSH_HEADER + payload.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, eventType);
  view.setUint32(2, payload.length);
  out.set(payload, PUSH_HEADER);
  return out;
}

/**
 * First buffer for a payload that arrives in pieces. The buffer then doubles as bytes arrive,
 * capped at the announced length, so a header alone never costs more than this.
 */
export const INITIAL_PAYLOAD_CAPACITY = 16 * 1024;

const EMPTY = new Uint8Array(0);

/**
 * Incremental decoder for one frame that arrives in pieces on a stream which ends with FIN.
 * `push` returns a FrameError as soon as the header announces an oversized payload, before any
 * of it is buffered; `finish` (at FIN) returns the frame or the error that ended it.
 *
 * Memory follows the bytes actually received, not the announced length: a chunk that carries
 * the whole payload is copied once into an exact-size buffer; otherwise the buffer starts at
 * INITIAL_PAYLOAD_CAPACITY and doubles (at most to the announced length), so it never exceeds
 * max(INITIAL_PAYLOAD_CAPACITY, 2 × received).
 */
abstract class FrameAssembler<F> {
  protected readonly headerSize: number;
  private readonly header: Uint8Array;
  private headerFill = 0;
  /** Announced payload length, once the header is complete. */
  private announced: number | undefined;
  private buffer: Uint8Array | undefined;
  private payloadFill = 0;
  private error: FrameError | undefined;

  constructor(headerSize: number) {
    this.headerSize = headerSize;
    this.header = new Uint8Array(headerSize);
  }

  protected abstract lengthOffset: number;
  protected abstract build(header: DataView, payload: Uint8Array): F;
  protected requestIdOf(_header: DataView): number | undefined {
    return undefined;
  }

  /** Feeds bytes; returns an error once the frame can no longer be valid. */
  push(chunk: Uint8Array): FrameError | undefined {
    if (this.error) return this.error;
    let at = 0;
    if (this.announced === undefined) {
      const take = Math.min(this.headerSize - this.headerFill, chunk.length);
      this.header.set(chunk.subarray(0, take), this.headerFill);
      this.headerFill += take;
      at = take;
      if (this.headerFill < this.headerSize) return undefined;
      const len = this.view().getUint32(this.lengthOffset);
      if (len > MAX_PAYLOAD) return this.fail("oversized", `payload of ${len} bytes exceeds the 4 MiB limit`);
      this.announced = len;
      if (len === 0) this.buffer = EMPTY;
    }
    const rest = chunk.length - at;
    if (rest === 0) return undefined;
    if (this.payloadFill + rest > this.announced)
      return this.fail("trailing-bytes", "bytes after the announced payload");
    if (this.payloadFill === 0 && rest === this.announced) {
      // The whole payload in one chunk: one exact-size copy (chunks may be reused by the reader).
      this.buffer = new Uint8Array(rest);
      this.buffer.set(at === 0 ? chunk : chunk.subarray(at));
    } else {
      const buffer = this.grow(this.payloadFill + rest, this.announced);
      buffer.set(at === 0 ? chunk : chunk.subarray(at), this.payloadFill);
    }
    this.payloadFill += rest;
    return undefined;
  }

  /** Call at end of stream. */
  finish(): F | FrameError {
    if (this.error) return this.error;
    if (this.announced === undefined) {
      return new FrameError(
        "truncated-header",
        `stream ended after ${this.headerFill} of ${this.headerSize} header bytes`,
      );
    }
    if (this.payloadFill < this.announced) {
      return new FrameError(
        "truncated-payload",
        `stream ended after ${this.payloadFill} of ${this.announced} payload bytes`,
        this.requestIdOf(this.view()),
      );
    }
    const buffer = this.buffer as Uint8Array;
    return this.build(this.view(), buffer.length === this.payloadFill ? buffer : buffer.subarray(0, this.payloadFill));
  }

  /**
   * Ends the frame with an error (for a receiver's own limits, such as a deadline) and drops the
   * buffered payload. The error echoes the request id when the header is in. Idempotent: the
   * first error wins.
   */
  fail(code: FrameErrorCode, message: string): FrameError {
    if (this.error) return this.error;
    this.buffer = undefined;
    const requestId = this.headerFill === this.headerSize ? this.requestIdOf(this.view()) : undefined;
    return (this.error = new FrameError(code, message, requestId));
  }

  /** True once header and payload are complete (more bytes would be an error). */
  get complete(): boolean {
    return this.error === undefined && this.announced !== undefined && this.payloadFill === this.announced;
  }

  /** Header bytes still missing (0 once the header is complete). */
  get headerRemaining(): number {
    return this.headerSize - this.headerFill;
  }

  /** The payload length the header announces; undefined until the header is complete. */
  get payloadLength(): number | undefined {
    return this.announced;
  }

  /** Bytes of payload buffer currently allocated. */
  get allocated(): number {
    return this.buffer?.length ?? 0;
  }

  /** Makes room for `needed` payload bytes: doubling, at least INITIAL_PAYLOAD_CAPACITY, at most `cap`. */
  private grow(needed: number, cap: number): Uint8Array {
    const current = this.buffer;
    if (current && current.length >= needed) return current;
    let size = Math.max(INITIAL_PAYLOAD_CAPACITY, (current?.length ?? 0) * 2);
    while (size < needed) size *= 2;
    const next = new Uint8Array(Math.min(size, cap));
    if (current) next.set(current.subarray(0, this.payloadFill));
    this.buffer = next;
    return next;
  }

  private view(): DataView {
    return new DataView(this.header.buffer, this.header.byteOffset, this.headerSize);
  }
}

export class RequestAssembler extends FrameAssembler<RequestFrame> {
  protected lengthOffset = 6;
  constructor() {
    super(REQUEST_HEADER);
  }
  protected build(h: DataView, payload: Uint8Array): RequestFrame {
    return { methodId: h.getUint16(0), requestId: h.getUint32(2), payload };
  }
  protected override requestIdOf(h: DataView): number {
    return h.getUint32(2);
  }
}

export class ResponseAssembler extends FrameAssembler<ResponseFrame> {
  protected lengthOffset = 5;
  constructor() {
    super(RESPONSE_HEADER);
  }
  protected build(h: DataView, payload: Uint8Array): ResponseFrame {
    return { status: h.getUint8(0), requestId: h.getUint32(1), payload };
  }
}

export class PushAssembler extends FrameAssembler<PushFrame> {
  protected lengthOffset = 2;
  constructor() {
    super(PUSH_HEADER);
  }
  protected build(h: DataView, payload: Uint8Array): PushFrame {
    return { eventType: h.getUint16(0), payload };
  }
}

/** Decodes one complete request frame held in a single buffer. */
export function decodeRequest(bytes: Uint8Array): RequestFrame | FrameError {
  const a = new RequestAssembler();
  return a.push(bytes) ?? a.finish();
}
export function decodeResponse(bytes: Uint8Array): ResponseFrame | FrameError {
  const a = new ResponseAssembler();
  return a.push(bytes) ?? a.finish();
}
export function decodePush(bytes: Uint8Array): PushFrame | FrameError {
  const a = new PushAssembler();
  return a.push(bytes) ?? a.finish();
}
