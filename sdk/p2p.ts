// P2P endpoints (800/801) for the SDK: publish this device's direct address for a while, look up
// a peer's. Addresses are opaque bytes to the server; docs/protocol.md, "P2P endpoints".
import { Method, pb } from "../proto/index.ts";
import type { QpqClient } from "./client.ts";

const NONE = new Uint8Array(0);

export interface PeerEndpoint {
  deviceId: Uint8Array;
  address: Uint8Array;
  expiresAtMs: number;
}

export class P2P {
  readonly #client: QpqClient;

  constructor(client: QpqClient) {
    this.#client = client;
  }

  /** Publishes this device's endpoint for `ttlSecs` (0 = the server default, 300 s; at most a day). */
  async publish(address: Uint8Array, ttlSecs = 0): Promise<{ expiresAtMs: number }> {
    const res = await this.#client.call(
      Method.PublishEndpoint,
      pb.PublishEndpointRequest,
      { address, ttlSecs },
      pb.PublishEndpointResponse,
    );
    return { expiresAtMs: res.expiresAtMs };
  }

  /** Withdraws this device's endpoint. */
  async withdraw(): Promise<void> {
    await this.publish(new Uint8Array(0));
  }

  /** A peer's newest unexpired endpoint (`address` empty when none) and all of its live ones. */
  async resolve(
    identityKey: Uint8Array,
  ): Promise<{ address: Uint8Array; expiresAtMs: number; endpoints: PeerEndpoint[] }> {
    const res = await this.#client.call(
      Method.ResolveEndpoint,
      pb.ResolveEndpointRequest,
      { identityKey },
      pb.ResolveEndpointResponse,
    );
    return {
      address: res.address,
      expiresAtMs: res.expiresAtMs,
      endpoints: res.endpoints.map((e) => ({
        deviceId: e.deviceId ?? NONE,
        address: e.address ?? NONE,
        expiresAtMs: e.expiresAtMs ?? 0,
      })),
    };
  }
}
