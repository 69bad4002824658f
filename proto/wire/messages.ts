// Typed access to the generated protobuf code, with decoding failures mapped to BadRequest.
import "./protobuf-runtime.ts"; // must run before the generated code loads
import { qpq } from "../gen/qpq.js";
import { badRequest, type ErrorReply } from "./errors.ts";

export const pb = qpq.v1;

interface Decoder<T> {
  decode(reader: Uint8Array): T;
}
interface Encoder<T> {
  encode(message: T): { finish(): Uint8Array };
}

/** Decodes a request payload; malformed protobuf is the client's fault (BadRequest). */
export function decode<T>(codec: Decoder<T>, bytes: Uint8Array, what: string): T {
  try {
    return codec.decode(bytes);
  } catch {
    throw badRequest(`payload is not a valid ${what}`);
  }
}

export function encode<T>(codec: Encoder<T>, message: T): Uint8Array {
  return codec.encode(message).finish();
}

export function encodeError(reply: Pick<ErrorReply, "message" | "retryAfterMs">): Uint8Array {
  return pb.ErrorResponse.encode({ message: reply.message, retryAfterMs: reply.retryAfterMs }).finish();
}

export function decodeError(bytes: Uint8Array): { message: string; retryAfterMs: number } {
  try {
    const e = pb.ErrorResponse.decode(bytes);
    return { message: e.message, retryAfterMs: e.retryAfterMs };
  } catch {
    return { message: "(undecodable error payload)", retryAfterMs: 0 };
  }
}
