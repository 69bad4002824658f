// KeyTransparency (the Durable Object) and 500/510/511/520 through the RPC layer: registration
// appends a binding, ResolveUser's proof verifies against a signed head, revocations, audit
// ranges and consistency proofs, bounds and bad input. The log is one object per test file, so
// every test works with sizes relative to what it found.
import { describe, it, expect, beforeAll } from "vitest";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { Method, Status, pb } from "../../proto/index.ts";
import { decodeEntry } from "../../proto/kt/entry.ts";
import { leafHash, rootOf, verifyConsistency, verifyInclusion } from "../../proto/kt/merkle.ts";
import { verifyTreeHead } from "../../proto/kt/tree-head.ts";
import { KtVerificationError, headOf, verifyResolution } from "../../proto/kt/verify.ts";
import { AUDIT_MAX_ENTRIES } from "../../edge/durable/key-transparency.ts";
import { appendRevocation } from "../../edge/durable/kt-log.ts";
import { assertionFor, env, errorOf, hex, ok, randomKey, rpc } from "./helpers.ts";
import { register } from "./opaque-client.ts";

const log = () => env.KEY_TRANSPARENCY.get(env.KEY_TRANSPARENCY.idFromName("log"));
type AuditPage = ReturnType<typeof pb.AuditKeyTransparencyResponse.decode>;
type Resolved = ReturnType<typeof pb.ResolveUserResponse.decode>;
function must<T>(value: T | null | undefined): T {
  if (value == null) throw new Error("expected a value");
  return value;
}
type Proof = { path: Uint8Array[]; leafIndex: number; entry: Uint8Array };
const name = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}`;

let ktKey: Uint8Array;
beforeAll(async () => {
  const health = ok(await rpc(Method.Health, pb.HealthRequest.encode({}).finish()), pb.HealthResponse);
  ktKey = health.ktPublicKey;
});

async function resolve(username: string, knownTreeSize = 0) {
  return ok(
    await rpc(Method.ResolveUser, pb.ResolveUserRequest.encode({ username, knownTreeSize }).finish(), {
      caller: randomKey(),
    }),
    pb.ResolveUserResponse,
  );
}

async function audit(
  req: { start?: number; end?: number; firstSize?: number },
  caller: Uint8Array | null = randomKey(),
) {
  return rpc(
    Method.AuditKeyTransparency,
    pb.AuditKeyTransparencyRequest.encode(req).finish(),
    caller ? { caller } : {},
  );
}

/** Every leaf hash of the log, read through AuditKeyTransparency pages. */
async function allLeaves(): Promise<{ hashes: Uint8Array[]; head: AuditPage }> {
  const hashes: Uint8Array[] = [];
  let head: AuditPage | undefined;
  for (;;) {
    const page = ok(await audit({ start: hashes.length }), pb.AuditKeyTransparencyResponse);
    head ??= page;
    for (const e of page.entries) {
      expect(e.index).toBe(hashes.length);
      hashes.push(must(e.leafHash));
    }
    if (hashes.length >= head.treeSize) return { hashes: hashes.slice(0, head.treeSize), head };
  }
}

async function bindDirect(username: string, identityKey = randomKey()) {
  const res = await log().bind({ username, identityKey });
  if (!res.ok) throw new Error(res.error.message);
  return { identityKey, ...res.value };
}

describe("key-transparency log", () => {
  it("publishes its key in Health and /.well-known/qpq", async () => {
    expect(ktKey).toHaveLength(32);
    const doc = (await (await exports.default.fetch("https://edge/.well-known/qpq")).json()) as {
      kt_public_key: string;
    };
    expect(doc.kt_public_key).toBe(hex(ktKey));
  });

  it("registration logs the binding and ResolveUser proves it against a signed head", async () => {
    const username = name("Kt-Alice");
    const key = randomKey();
    expect(await register(username, "pw", key)).toBe(true);
    const res = await resolve(username);
    expect(hex(res.identityKey)).toBe(hex(key));
    const verified = await verifyResolution(username, res, ktKey);
    expect(verified.entry).toMatchObject({ kind: "binding", username: username.toLowerCase() });
    // Registration appended it; resolving did not append it again.
    const again = await resolve(username);
    expect(again.proof?.leafIndex).toBe(res.proof?.leafIndex);
  });

  it("every stored binding's proof verifies against the root an auditor recomputes from all leaves", async () => {
    const bound = [];
    for (let i = 0; i < 21; i++) bound.push(await bindDirect(name(`bulk${i}`)));
    const { hashes, head } = await allLeaves();
    const root = rootOf(hashes);
    expect(hex(head.root)).toBe(hex(root));
    expect(await verifyTreeHead(ktKey, headOf(head.treeHead)!)).toBe(true);
    // Each leaf's own inclusion proof from the object, against the recomputed root.
    for (const b of bound.slice(-5)) {
      const entry = (await audit({ start: b.leafIndex, end: b.leafIndex + 1 })).body;
      const e = pb.AuditKeyTransparencyResponse.decode(entry).entries[0];
      expect(hex(e.leafHash)).toBe(hex(leafHash(must(e.entry))));
      expect(decodeEntry(must(e.entry))).toMatchObject({ kind: "binding", identityKey: b.identityKey });
    }
  });

  it("appends are O(log n) rows and the frontier survives an eviction", async () => {
    for (let i = 0; i < 5; i++) await bindDirect(name("evict"));
    const before = ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse);
    const stub = log();
    const nodes = await runInDurableObject(
      stub,
      (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM nodes").one().n,
    );
    expect(nodes).toBeLessThan(2 * before.treeSize);
    await evictDurableObject(stub);
    const after = ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse);
    expect(after.treeSize).toBe(before.treeSize);
    expect(hex(after.root)).toBe(hex(before.root));
    const next = await bindDirect(name("after-evict"));
    expect(next.leafIndex).toBe(before.treeSize);
    const { hashes, head } = await allLeaves();
    expect(hex(rootOf(hashes))).toBe(hex(head.root));
  });

  it("consistency across two resolutions: the second head extends the first", async () => {
    const username = name("kt-bob");
    expect(await register(username, "pw", randomKey())).toBe(true);
    const first = await verifyResolution(username, await resolve(username), ktKey);
    for (let i = 0; i < 3; i++) await bindDirect(name("grow"));
    const res = await resolve(username, first.head.treeSize);
    expect(res.consistencyPath.length).toBeGreaterThan(0);
    const second = await verifyResolution(username, res, ktKey, first.head);
    expect(second.head.treeSize).toBeGreaterThan(first.head.treeSize);
    // The same answer checked against a head the log never had fails.
    const forged = { ...first.head, root: leafHash(Uint8Array.of(1)) };
    await expect(verifyResolution(username, res, ktKey, forged)).rejects.toMatchObject({ failure: "inconsistent" });
  });

  it("a tampered proof, entry, key or head fails verification", async () => {
    const username = name("kt-carol");
    expect(await register(username, "pw", randomKey())).toBe(true);
    for (let i = 0; i < 2; i++) await bindDirect(name("pad"));
    const res = await resolve(username);
    await verifyResolution(username, res, ktKey);
    const fail = async (mutate: (r: Resolved) => void, failure: string) => {
      const copy = pb.ResolveUserResponse.decode(pb.ResolveUserResponse.encode(res).finish());
      mutate(copy);
      const err = await verifyResolution(username, copy, ktKey).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KtVerificationError);
      expect((err as KtVerificationError).failure).toBe(failure);
    };
    await fail((r) => {
      (r.proof as Proof).path[0][0] ^= 1;
    }, "inclusion");
    await fail((r) => {
      (r.proof as Proof).leafIndex += 1;
    }, "inclusion");
    await fail((r) => {
      r.identityKey = randomKey();
    }, "wrong-entry");
    await fail((r) => {
      const e = (r.proof as Proof).entry;
      e[e.length - 1] ^= 1;
    }, "wrong-entry");
    await fail((r) => {
      must(must(r.treeHead).root)[0] ^= 1;
    }, "unsigned-head");
    await fail((r) => {
      must(must(r.treeHead).signature)[0] ^= 1;
    }, "unsigned-head");
    await fail((r) => {
      r.treeHead = null;
    }, "unsigned-head");
    await expect(verifyResolution(name("someone-else"), res, ktKey)).rejects.toMatchObject({ failure: "wrong-entry" });
    await expect(verifyResolution(username, res, randomKey())).rejects.toMatchObject({ failure: "unsigned-head" });
  });

  it("audits bounded ranges with a consistency proof from an older size", async () => {
    const { head: start } = await allLeaves();
    const firstSize = start.treeSize;
    for (let i = 0; i < 4; i++) await bindDirect(name("audit"));
    const page = ok(await audit({ start: firstSize - 1, end: 0, firstSize }), pb.AuditKeyTransparencyResponse);
    expect(page.entries.map((e) => e.index)).toEqual([0, 1, 2, 3, 4].map((i) => firstSize - 1 + i));
    expect(verifyConsistency(firstSize, page.treeSize, start.root, page.root, page.consistencyPath)).toBe(true);
    // end beyond the log is clipped; start == size is an empty page.
    expect(
      ok(await audit({ start: page.treeSize - 1, end: page.treeSize + 50 }), pb.AuditKeyTransparencyResponse).entries,
    ).toHaveLength(1);
    expect(ok(await audit({ start: page.treeSize }), pb.AuditKeyTransparencyResponse).entries).toHaveLength(0);
  });

  it("answers at most AUDIT_MAX_ENTRIES entries per call", async () => {
    const current = ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize;
    const missing = Array.from({ length: Math.max(0, AUDIT_MAX_ENTRIES + 5 - current) }, (_, i) => `many-${i}`);
    for (let i = 0; i < missing.length; i += 50) await Promise.all(missing.slice(i, i + 50).map((n) => bindDirect(n)));
    const page = ok(await audit({ start: 0 }), pb.AuditKeyTransparencyResponse);
    expect(page.treeSize).toBeGreaterThan(AUDIT_MAX_ENTRIES);
    expect(page.entries).toHaveLength(AUDIT_MAX_ENTRIES);
    const size = pb.AuditKeyTransparencyResponse.encode(page).finish().length;
    expect(size).toBeLessThan(1024 * 1024);
  }, 120_000);

  it("refuses bad ranges and sizes with BadRequest, and callers without a session", async () => {
    const size = ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize;
    expect((await audit({ start: size + 1 })).status).toBe(Status.BadRequest);
    expect((await audit({ start: 3, end: 2 })).status).toBe(Status.BadRequest);
    expect(errorOf(await audit({ firstSize: size + 1 })).message).toContain("first_size");
    expect((await audit({}, null)).status).toBe(Status.Unauthorized);
    const username = name("kt-dan");
    expect(await register(username, "pw", randomKey())).toBe(true);
    const res = await rpc(
      Method.ResolveUser,
      pb.ResolveUserRequest.encode({ username, knownTreeSize: size + 100 }).finish(),
      { caller: randomKey() },
    );
    expect(errorOf(res).message).toContain("known_tree_size");
    const short = await rpc(
      Method.CheckRevocation,
      pb.CheckRevocationRequest.encode({ identityKey: new Uint8Array(31) }).finish(),
      { caller: randomKey() },
    );
    expect(short.status).toBe(Status.BadRequest);
    const garbage = await rpc(Method.AuditKeyTransparency, Uint8Array.of(0xff, 0xff, 0xff), { caller: randomKey() });
    expect(garbage.status).toBe(Status.BadRequest);
    // Nothing was appended by any of these.
    expect(ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize).toBe(size + 1);
  });
});

describe("revocation (510/511)", () => {
  const revoke = (caller: Uint8Array, identityKey: Uint8Array, reason = "") =>
    rpc(Method.RevokeKey, pb.RevokeKeyRequest.encode({ identityKey, reason }).finish(), { caller });
  const check = async (identityKey: Uint8Array) =>
    ok(
      await rpc(Method.CheckRevocation, pb.CheckRevocationRequest.encode({ identityKey }).finish(), {
        caller: randomKey(),
      }),
      pb.CheckRevocationResponse,
    );

  it("revokes the caller's own key once, logs it, and CheckRevocation reports it", async () => {
    const username = name("kt-erin");
    const key = randomKey();
    expect(await register(username, "pw", key)).toBe(true);
    expect((await check(key)).revoked).toBe(false);
    const before = Date.now();
    const first = ok(await revoke(key, key, "compromised"), pb.RevokeKeyResponse);
    expect(first.success).toBe(true);
    const status = await check(key);
    expect(status).toMatchObject({ revoked: true, reason: "compromised", leafIndex: first.leafIndex });
    expect(status.timestampMs).toBeGreaterThanOrEqual(before);
    // Repeating is answered with the first revocation, and nothing is appended.
    const size = ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize;
    expect(ok(await revoke(key, key, "superseded"), pb.RevokeKeyResponse).leafIndex).toBe(first.leafIndex);
    expect(ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize).toBe(size);
    // The logged entry says so, and its leaf is in the signed tree.
    const page = ok(await audit({ start: first.leafIndex, end: first.leafIndex + 1 }), pb.AuditKeyTransparencyResponse);
    expect(decodeEntry(must(page.entries[0].entry))).toMatchObject({
      kind: "revocation",
      reason: "compromised",
      username: username.toLowerCase(),
    });
    const { hashes, head } = await allLeaves();
    expect(hex(hashes[first.leafIndex])).toBe(hex(page.entries[0].leafHash));
    expect(hex(rootOf(hashes))).toBe(hex(head.root));
  });

  it("refuses another identity's key, unknown reasons and client-sent account_deleted", async () => {
    const key = randomKey();
    expect(await register(name("kt-frank"), "pw", key)).toBe(true);
    expect((await revoke(randomKey(), key)).status).toBe(Status.Forbidden);
    expect((await revoke(key, key, "bored")).status).toBe(Status.BadRequest);
    expect((await revoke(key, key, "account_deleted")).status).toBe(Status.BadRequest);
    expect((await revoke(key, new Uint8Array(5))).status).toBe(Status.BadRequest);
    expect((await check(key)).revoked).toBe(false);
    // An asserted identity without an account has nothing to revoke (and logs nothing).
    const stranger = randomKey();
    const size = ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize;
    expect(
      (
        await rpc(Method.RevokeKey, pb.RevokeKeyRequest.encode({ identityKey: stranger }).finish(), {
          caller: await assertionFor(stranger),
        })
      ).status,
    ).not.toBe(Status.Ok);
    expect(ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize).toBe(size);
  });

  it("appendRevocation is idempotent, and binding the key again clears the revocation", async () => {
    const username = name("kt-gina");
    const { identityKey } = await bindDirect(username);
    const a = await appendRevocation({ ktLog: env.KEY_TRANSPARENCY }, username, identityKey, "account_deleted");
    const b = await appendRevocation({ ktLog: env.KEY_TRANSPARENCY }, username, identityKey, "account_deleted");
    expect(a.appended).toBe(true);
    expect(b).toEqual({ leafIndex: a.leafIndex, appended: false });
    expect(await check(identityKey)).toMatchObject({ revoked: true, reason: "account_deleted" });
    const again = await bindDirect(username, identityKey);
    expect(again.appended).toBe(true);
    expect((await check(identityKey)).revoked).toBe(false);
  });

  it("the DO refuses malformed entries without appending", async () => {
    const size = ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize;
    const bad = await log().bind({ username: "x", identityKey: new Uint8Array(3) });
    expect(bad.ok).toBe(false);
    const empty = await log().bind({ username: "", identityKey: randomKey() });
    expect(empty.ok).toBe(false);
    expect(ok(await audit({ start: 0, end: 1 }), pb.AuditKeyTransparencyResponse).treeSize).toBe(size);
    const proof = await log().prove({ username: name("p"), identityKey: randomKey(), knownTreeSize: -1 });
    expect(proof.ok).toBe(false);
  });
});

describe("inclusion proofs from the object", () => {
  it("verify for every leaf of a small log against the current head", async () => {
    const bound = [];
    for (let i = 0; i < 9; i++) {
      const username = name(`inc${i}`);
      bound.push({ username, ...(await bindDirect(username)) });
    }
    for (const b of bound) {
      const res = await log().prove({ username: b.username, identityKey: b.identityKey, knownTreeSize: 0 });
      if (!res.ok) throw new Error(res.error.message);
      const p = res.value;
      expect(p.leafIndex).toBe(b.leafIndex);
      expect(verifyInclusion(p.leafIndex, p.head.treeSize, leafHash(p.entry), p.path, p.head.root)).toBe(true);
    }
  });
});
