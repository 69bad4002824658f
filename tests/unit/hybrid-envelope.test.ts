// Hybrid envelopes (sdk/hybrid-envelope.ts): round trips, the documented layout, and refusals:
// any altered byte, the wrong key, another version or suite, truncation, unusable keys.
import { describe, it, expect, beforeAll } from "vitest";
import fc from "fast-check";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import {
  ENVELOPE_OVERHEAD,
  EnvelopeError,
  HEADER_BYTES,
  HYBRID_PUBLIC_KEY_BYTES,
  HYBRID_SECRET_KEY_BYTES,
  envelopeLength,
  generateHybridKeyPair,
  isEnvelope,
  openEnvelope,
  sealEnvelope,
  type HybridKeyPair,
} from "../../sdk/hybrid-envelope.ts";
import { paddedLength } from "../../sdk/padding.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

describe("hybrid envelope", () => {
  let bob: HybridKeyPair;
  let eve: HybridKeyPair;
  beforeAll(async () => {
    bob = await generateHybridKeyPair();
    eve = await generateHybridKeyPair();
  });

  it("generates keys of the documented sizes, the ML-KEM part a real key", async () => {
    expect(bob.publicKey.length).toBe(HYBRID_PUBLIC_KEY_BYTES);
    expect(bob.secretKey.length).toBe(HYBRID_SECRET_KEY_BYTES);
    expect(Buffer.from(ml_kem768.getPublicKey(bob.secretKey.subarray(32))).equals(bob.publicKey.subarray(32))).toBe(
      true,
    );
  });

  it("opens with the recipient's key; the layout is magic, version, suite, X25519, ML-KEM, AEAD", async () => {
    const env = await sealEnvelope(bob.publicKey, text("hello bob"));
    expect(str(await openEnvelope(bob, env))).toBe("hello bob");
    expect(Buffer.from(env.subarray(0, 6)).toString("hex")).toBe("515051450101");
    expect(isEnvelope(env)).toBe(true);
    expect(env.length).toBe(envelopeLength(9));
    expect(env.length).toBe(HEADER_BYTES + paddedLength(9) + 16);
    expect(ENVELOPE_OVERHEAD).toBe(1126 + 16);
    // Fresh ephemeral keys: the same plaintext seals differently each time.
    const again = await sealEnvelope(bob.publicKey, text("hello bob"));
    expect(Buffer.from(again).equals(Buffer.from(env))).toBe(false);
  });

  it("round-trips any payload, sizes in Padmé buckets (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 5000 }), async (m) => {
        const env = await sealEnvelope(bob.publicKey, m);
        expect(env.length).toBe(ENVELOPE_OVERHEAD + paddedLength(m.length));
        expect(Buffer.from(await openEnvelope(bob, env)).equals(Buffer.from(m))).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it("refuses an envelope with any byte altered (property over positions)", async () => {
    const env = await sealEnvelope(bob.publicKey, text("tamper with me"));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 6, max: env.length - 1 }), fc.integer({ min: 1, max: 255 }), async (i, x) => {
        const bad = Uint8Array.from(env);
        bad[i] ^= x;
        await expect(openEnvelope(bob, bad)).rejects.toThrow(EnvelopeError);
      }),
      { numRuns: 60 },
    );
    // Each part on its own: X25519 ephemeral key, ML-KEM ciphertext, AEAD body and tag.
    for (const i of [6, 6 + 31, 38, 38 + 1087, HEADER_BYTES, env.length - 1]) {
      const bad = Uint8Array.from(env);
      bad[i] ^= 1;
      await expect(openEnvelope(bob, bad)).rejects.toThrow(EnvelopeError);
    }
  });

  it("refuses the wrong key, and a key pair whose X25519 or ML-KEM half is someone else's", async () => {
    const env = await sealEnvelope(bob.publicKey, text("for bob only"));
    await expect(openEnvelope(eve, env)).rejects.toThrow(/does not open/);
    const mixedX = {
      publicKey: bob.publicKey,
      secretKey: Uint8Array.from([...eve.secretKey.subarray(0, 32), ...bob.secretKey.subarray(32)]),
    };
    await expect(openEnvelope(mixedX, env)).rejects.toThrow(EnvelopeError);
    const mixedK = {
      publicKey: bob.publicKey,
      secretKey: Uint8Array.from([...bob.secretKey.subarray(0, 32), ...eve.secretKey.subarray(32)]),
    };
    await expect(openEnvelope(mixedK, env)).rejects.toThrow(EnvelopeError);
  });

  it("refuses other versions and suites, other magic, and truncation", async () => {
    const env = await sealEnvelope(bob.publicKey, text("v1"));
    const version = Uint8Array.from(env);
    version[4] = 2;
    await expect(openEnvelope(bob, version)).rejects.toThrow(/version 2/);
    const suite = Uint8Array.from(env);
    suite[5] = 9;
    await expect(openEnvelope(bob, suite)).rejects.toThrow(/suite 9/);
    const magic = Uint8Array.from(env);
    magic[0] = 0x00;
    expect(isEnvelope(magic)).toBe(false);
    await expect(openEnvelope(bob, magic)).rejects.toThrow(/magic/);
    await expect(openEnvelope(bob, env.subarray(0, HEADER_BYTES + 10))).rejects.toThrow(EnvelopeError);
    await expect(openEnvelope(bob, env.subarray(0, 5))).rejects.toThrow(EnvelopeError);
  });

  it("refuses to seal to a malformed or low-order key, and beyond a message's size", async () => {
    await expect(sealEnvelope(new Uint8Array(1215), text("x"))).rejects.toThrow(/1216/);
    const lowOrder = Uint8Array.from(bob.publicKey);
    lowOrder.fill(0, 0, 32);
    await expect(sealEnvelope(lowOrder, text("x"))).rejects.toThrow(/low-order/);
    await expect(sealEnvelope(bob.publicKey, new Uint8Array(4_150_000))).rejects.toThrow(/more than a message/);
  });
});
