// A listener that cannot bind says which one and where, so an operator starting a second
// instance (or a port already in use) knows what to change.

/** The listeners the front opens, as named in start-up errors. */
export type ListenerName = "QUIC listener" | "WebSocket bridge" | "metrics endpoint";

export class ListenError extends Error {
  readonly listener: ListenerName;
  readonly address: string;
  constructor(listener: ListenerName, address: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`${listener} could not listen on ${address}: ${reason}`, { cause });
    this.name = "ListenError";
    this.listener = listener;
    this.address = address;
  }
}

/** `udp://127.0.0.1:5001`, `tcp://[::1]:9464`. */
export function listenAddress(protocol: "udp" | "tcp", host: string, port: number): string {
  return `${protocol}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Runs a listener's bind and rethrows a failure as a ListenError naming it. */
export async function binding<T>(listener: ListenerName, address: string, bind: () => Promise<T>): Promise<T> {
  try {
    return await bind();
  } catch (err) {
    throw new ListenError(listener, address, err);
  }
}
