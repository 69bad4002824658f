// UploadHybridKey (302) validates both parts of the hybrid key in the edge: the X25519 part is not a
// low-order point, the ML-KEM-768 part passes the FIPS 203 encapsulation-key (modulus) check.
import { describe, it, expect } from "vitest";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { Method, Status, pb } from "../../proto/index.ts";
import { X25519_LOW_ORDER_POINTS } from "../../edge/lib/hybrid-key.ts";
import { errorOf, hex, hybridPublicKey, ok, randomKey, rpc } from "./helpers.ts";

function upload(owner: Uint8Array, key: Uint8Array) {
  return rpc(
    Method.UploadHybridKey,
    pb.UploadHybridKeyRequest.encode({ identityKey: owner, hybridPublicKey: key }).finish(),
    { caller: owner },
  );
}

async function stored(owner: Uint8Array): Promise<string> {
  const res = await rpc(Method.FetchHybridKey, pb.FetchHybridKeyRequest.encode({ identityKey: owner }).finish(), {
    caller: randomKey(),
  });
  return hex(ok(res, pb.FetchHybridKeyResponse).hybridPublicKey);
}

function withX25519(x: Uint8Array): Uint8Array {
  const key = hybridPublicKey();
  key.set(x, 0);
  return key;
}

describe("hybrid key validation", () => {
  it("accepts a real ML-KEM-768 key with a random X25519 key, and a client can encapsulate to it", async () => {
    const owner = randomKey();
    const { publicKey, secretKey } = ml_kem768.keygen();
    const key = hybridPublicKey();
    key.set(publicKey, 32);
    ok(await upload(owner, key), pb.UploadHybridKeyResponse);
    const fetched = await stored(owner);
    expect(fetched).toBe(hex(key));
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(key.subarray(32));
    expect(hex(ml_kem768.decapsulate(cipherText, secretKey))).toBe(hex(sharedSecret));
  });

  it("refuses every low-order X25519 point, with the top bit clear or set, naming the X25519 part", async () => {
    const owner = randomKey();
    for (const point of X25519_LOW_ORDER_POINTS) {
      for (const top of [0, 0x80]) {
        const x = Uint8Array.from(point);
        x[31] |= top;
        const res = await upload(owner, withX25519(x));
        expect({ point: hex(x), status: res.status }).toEqual({ point: hex(x), status: Status.BadRequest });
        expect(errorOf(res).message).toContain("X25519");
      }
    }
    expect(await stored(owner)).toBe("");
  });

  it("refuses an ML-KEM-768 key with a coefficient of q or more, naming the ML-KEM part, and keeps the old key", async () => {
    const owner = randomKey();
    const good = hybridPublicKey();
    ok(await upload(owner, good), pb.UploadHybridKeyResponse);
    // Coefficient 0 of the first polynomial is bytes 0..1 (low 12 bits): set it to 3329 = q, then 4095.
    for (const coefficient of [3329, 4095]) {
      const bad = hybridPublicKey();
      const ek = bad.subarray(32);
      ek[0] = coefficient & 0xff;
      ek[1] = (ek[1] & 0xf0) | (coefficient >> 8);
      const res = await upload(owner, bad);
      expect(res.status).toBe(Status.BadRequest);
      expect(errorOf(res).message).toContain("ML-KEM-768");
      expect(errorOf(res).message).not.toContain("X25519 part");
    }
    // The last coefficient (index 767: high 12 bits of bytes 1150..1151) is checked too.
    const last = hybridPublicKey();
    last[32 + 1151] = 0xff;
    last[32 + 1150] |= 0xf0;
    expect((await upload(owner, last)).status).toBe(Status.BadRequest);
    // rho (the last 32 bytes) is any 32 bytes: not a coefficient.
    const rho = hybridPublicKey();
    rho.fill(0xff, 32 + 1152);
    ok(await upload(owner, rho), pb.UploadHybridKeyResponse);
    expect(await stored(owner)).toBe(hex(rho));
  });

  it("refuses random bytes of the right length (the ML-KEM modulus check fails)", async () => {
    const owner = randomKey();
    const noise = crypto.getRandomValues(new Uint8Array(1216));
    const res = await upload(owner, noise);
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toContain("ML-KEM-768");
  });
});
