// The quiche native binding that @matrixai/quic ships (napi-rs), used directly: no event objects,
// locks or per-packet allocations of the library's JavaScript layers.
import quiche from "@matrixai/quic/native/quiche.js";
import type {
  Config,
  Connection,
  ConnectionError,
  Header,
  Host,
  RecvInfo,
  SendInfo,
} from "@matrixai/quic/native/types.js";

export { quiche };
export type { Config, Connection, ConnectionError, Header, Host, RecvInfo, SendInfo };

/** quiche's packet types (the binding's const enum values; erasable syntax has no enums). */
export const PacketType = { Initial: 0, Retry: 1, Handshake: 2, ZeroRTT: 3, VersionNegotiation: 4, Short: 5 } as const;
/** Stream shutdown directions. */
export const Shutdown = { Read: 0, Write: 1 } as const;

/**
 * The application error code of a stream error thrown by the binding ("StreamReset(7)",
 * "StreamStopped(7)"), or undefined for any other error.
 */
export function streamErrorCode(err: unknown, kind: "StreamReset" | "StreamStopped"): number | undefined {
  const message = err instanceof Error ? err.message : "";
  if (!message.startsWith(kind)) return undefined;
  const m = /\((\d{1,16})\)/.exec(message);
  return m ? Number(m[1]) : 0;
}
