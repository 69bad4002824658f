// Wire size of delivery replies. Fetch, FetchWait and Peek answer `repeated Envelope payloads = 1`
// with Envelope { uint64 seq = 1; bytes data = 2; }; the server bounds a reply by these sizes so
// it always fits in one frame, and refuses payloads that no reply could carry.
import { MAX_PAYLOAD } from "./frames.ts";

/** Bytes of the protobuf varint encoding of a non-negative safe integer. */
export function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v >= 128; v = Math.floor(v / 128)) size++;
  return size;
}

function envelopeBody(seqVarint: number, dataLength: number): number {
  return 1 + seqVarint + 1 + varintSize(dataLength) + dataLength;
}

/**
 * Bytes one envelope adds to an encoded FetchResponse, FetchWaitResponse or PeekResponse: field
 * tag, length prefix and the Envelope itself. Exact for seq > 0 and non-empty data (proto3 omits
 * zero values, so it is an upper bound otherwise).
 */
export function envelopeWireSize(seq: number, dataLength: number): number {
  const body = envelopeBody(varintSize(seq), dataLength);
  return 1 + varintSize(body) + body;
}

/** A uint64 varint takes at most 10 bytes. */
const MAX_SEQ_VARINT = 10;

function largestDeliveryPayload(): number {
  let len = MAX_PAYLOAD;
  const size = (l: number) => {
    const body = envelopeBody(MAX_SEQ_VARINT, l);
    return 1 + varintSize(body) + body;
  };
  while (size(len) > MAX_PAYLOAD) len--;
  return len;
}

/**
 * Largest delivery payload (Enqueue, BatchEnqueue): a reply carrying that one envelope still fits
 * in one frame whatever its seq. 4,194,283 bytes with the 4 MiB frame limit.
 */
export const MAX_DELIVERY_PAYLOAD = largestDeliveryPayload();
