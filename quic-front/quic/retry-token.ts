// Stateless retry tokens (RFC 9000 §8.1.2): a client proves it receives at its address before
// the server keeps any state for it. The token binds the client's address and port, the
// original destination connection id and the time it was minted, under an HMAC key that lives
// only in this process.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

const VERSION = 1;
const MAC_LEN = 16;
/** version (1) + minted at, ms (8) + odcid length (1) */
const FIXED = 10;

export class RetryTokens {
  private readonly key: Buffer;
  private readonly lifetimeMs: number;
  private readonly now: () => number;

  constructor(opts: { lifetimeMs?: number; now?: () => number; key?: Buffer } = {}) {
    this.key = opts.key ?? randomBytes(32);
    this.lifetimeMs = opts.lifetimeMs ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** A token for a client at `address:port` whose first Initial named `odcid`. */
  mint(odcid: Uint8Array, address: string, port: number): Buffer {
    const body = Buffer.allocUnsafe(FIXED + odcid.length);
    body[0] = VERSION;
    body.writeDoubleBE(this.now(), 1);
    body[9] = odcid.length;
    body.set(odcid, FIXED);
    return Buffer.concat([body, this.mac(body, address, port)]);
  }

  /**
   * The original destination connection id when `token` was minted here for this address and
   * port and has not expired; undefined otherwise.
   */
  validate(token: Uint8Array, address: string, port: number): Buffer | undefined {
    if (token.length < FIXED + MAC_LEN || token[0] !== VERSION) return undefined;
    const t = Buffer.from(token.buffer, token.byteOffset, token.length);
    const odcidLen = t[9];
    if (t.length !== FIXED + odcidLen + MAC_LEN || odcidLen > 20) return undefined;
    const body = t.subarray(0, FIXED + odcidLen);
    if (!timingSafeEqual(this.mac(body, address, port), t.subarray(FIXED + odcidLen))) return undefined;
    const age = this.now() - t.readDoubleBE(1);
    if (!(age >= -1000 && age <= this.lifetimeMs)) return undefined;
    return Buffer.from(body.subarray(FIXED));
  }

  private mac(body: Buffer, address: string, port: number): Buffer {
    return createHmac("sha256", this.key).update(body).update(`${address}|${port}`).digest().subarray(0, MAC_LEN);
  }
}
