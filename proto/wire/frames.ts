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

export type FrameErrorCode = "oversized" | "truncated-header" | "truncated-payload" | "trailing-bytes";

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
 * Incremental decoder for one frame that arrives in pieces on a stream which ends with FIN.
 * `push` returns a FrameError as soon as the header announces an oversized payload, before any
 * of it is buffered; `finish` (at FIN) returns the frame or the error that ended it.
 */
abstract class FrameAssembler<F> {
  protected readonly headerSize: number;
  private readonly header: Uint8Array;
  private headerFill = 0;
  private payload: Uint8Array | undefined;
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
    if (this.headerFill < this.headerSize) {
      const take = Math.min(this.headerSize - this.headerFill, chunk.length);
      this.header.set(chunk.subarray(0, take), this.headerFill);
      this.headerFill += take;
      at = take;
      if (this.headerFill < this.headerSize) return undefined;
      const view = this.view();
      const len = view.getUint32(this.lengthOffset);
      if (len > MAX_PAYLOAD) {
        return (this.error = new FrameError(
          "oversized", `payload of ${len} bytes exceeds the 4 MiB limit`, this.requestIdOf(view)));
      }
      this.payload = new Uint8Array(len);
    }
    const payload = this.payload as Uint8Array;
    const rest = chunk.length - at;
    if (rest === 0) return undefined;
    if (this.payloadFill + rest > payload.length) {
      return (this.error = new FrameError(
        "trailing-bytes", "bytes after the announced payload", this.requestIdOf(this.view())));
    }
    payload.set(at === 0 ? chunk : chunk.subarray(at), this.payloadFill);
    this.payloadFill += rest;
    return undefined;
  }

  /** Call at end of stream. */
  finish(): F | FrameError {
    if (this.error) return this.error;
    if (this.headerFill < this.headerSize) {
      return new FrameError("truncated-header", `stream ended after ${this.headerFill} of ${this.headerSize} header bytes`);
    }
    const view = this.view();
    const payload = this.payload as Uint8Array;
    if (this.payloadFill < payload.length) {
      return new FrameError("truncated-payload",
        `stream ended after ${this.payloadFill} of ${payload.length} payload bytes`, this.requestIdOf(view));
    }
    return this.build(view, payload);
  }

  /** True once header and payload are complete (more bytes would be an error). */
  get complete(): boolean {
    return this.payload !== undefined && this.payloadFill === this.payload.length;
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
