// Keys (300-304): single-use FIFO KeyPackages and replaceable hybrid post-quantum keys.
import { describe, it, expect } from "vitest";
import { Method, Status, pb } from "../../proto/index.ts";
import { bytesOf, env, errorOf, hex, hybridPublicKey, ok, randomBytes, randomKey, rpc, textOf } from "./helpers.ts";

const HYBRID_LEN = 32 + 1184;

async function upload(owner: Uint8Array, pkg: Uint8Array) {
  return rpc(
    Method.UploadKeyPackage,
    pb.UploadKeyPackageRequest.encode({ identityKey: owner, package: pkg }).finish(),
    { caller: owner },
  );
}

async function fetchPackage(owner: Uint8Array, caller = randomKey()): Promise<Uint8Array> {
  const res = await rpc(Method.FetchKeyPackage, pb.FetchKeyPackageRequest.encode({ identityKey: owner }).finish(), {
    caller,
  });
  return ok(res, pb.FetchKeyPackageResponse).package;
}

async function uploadHybrid(owner: Uint8Array, key: Uint8Array) {
  return rpc(
    Method.UploadHybridKey,
    pb.UploadHybridKeyRequest.encode({ identityKey: owner, hybridPublicKey: key }).finish(),
    { caller: owner },
  );
}

async function fetchHybrid(owner: Uint8Array): Promise<Uint8Array> {
  const res = await rpc(Method.FetchHybridKey, pb.FetchHybridKeyRequest.encode({ identityKey: owner }).finish(), {
    caller: randomKey(),
  });
  return ok(res, pb.FetchHybridKeyResponse).hybridPublicKey;
}

describe("KeyPackages", () => {
  it("returns SHA-256 of the package as its fingerprint", async () => {
    const owner = randomKey();
    const pkg = randomBytes(300);
    const res = ok(await upload(owner, pkg), pb.UploadKeyPackageResponse);
    const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", pkg));
    expect(hex(res.fingerprint)).toBe(hex(expected));
  });

  it("hands packages out oldest first, each once, then empty", async () => {
    const owner = randomKey();
    for (const name of ["kp-1", "kp-2", "kp-3"]) ok(await upload(owner, bytesOf(name)), pb.UploadKeyPackageResponse);
    const got = [];
    for (let i = 0; i < 4; i++) got.push(textOf(await fetchPackage(owner)));
    expect(got).toEqual(["kp-1", "kp-2", "kp-3", ""]);
  });

  it("keeps each identity's packages separate", async () => {
    const alice = randomKey();
    const bob = randomKey();
    ok(await upload(alice, bytesOf("alice kp")), pb.UploadKeyPackageResponse);
    expect(await fetchPackage(bob)).toHaveLength(0);
    expect(textOf(await fetchPackage(alice))).toBe("alice kp");
  });

  it("stores duplicate uploads as separate entries", async () => {
    const owner = randomKey();
    const pkg = bytesOf("same bytes");
    const f1 = ok(await upload(owner, pkg), pb.UploadKeyPackageResponse).fingerprint;
    const f2 = ok(await upload(owner, pkg), pb.UploadKeyPackageResponse).fingerprint;
    expect(hex(f1)).toBe(hex(f2));
    expect(textOf(await fetchPackage(owner))).toBe("same bytes");
    expect(textOf(await fetchPackage(owner))).toBe("same bytes");
    expect(await fetchPackage(owner)).toHaveLength(0);
  });

  it("never gives the same package to two concurrent fetches", async () => {
    const owner = randomKey();
    const n = 8;
    const uploaded = new Set<string>();
    for (let i = 0; i < n; i++) {
      const pkg = randomBytes(64);
      uploaded.add(hex(pkg));
      ok(await upload(owner, pkg), pb.UploadKeyPackageResponse);
    }
    const results = await Promise.all(Array.from({ length: 2 * n }, () => fetchPackage(owner)));
    const handedOut = results.filter((p) => p.length > 0).map(hex);
    expect(handedOut).toHaveLength(n);
    expect(new Set(handedOut)).toEqual(uploaded);
    expect(results.filter((p) => p.length === 0)).toHaveLength(n);
  });

  it("rejects an empty or over-1-MiB package with BadRequest", async () => {
    const owner = randomKey();
    const empty = await upload(owner, new Uint8Array(0));
    expect(empty.status).toBe(Status.BadRequest);
    expect(errorOf(empty).message).toContain("package");
    const huge = await upload(owner, new Uint8Array(1024 * 1024 + 1));
    expect(huge.status).toBe(Status.BadRequest);
    ok(await upload(owner, new Uint8Array(1024 * 1024)), pb.UploadKeyPackageResponse);
    expect(await fetchPackage(owner)).toHaveLength(1024 * 1024);
  });

  it("caps the bytes stored per identity (8 MiB) with RateLimited, also against concurrent uploads; fetching makes room", async () => {
    const owner = randomKey();
    const MiB = 1024 * 1024;
    for (let i = 0; i < 6; i++) ok(await upload(owner, new Uint8Array(MiB).fill(i)), pb.UploadKeyPackageResponse);
    // Two more fit; of four racing uploads exactly two are stored.
    const raced = await Promise.all(
      Array.from({ length: 4 }, (_, i) => upload(owner, new Uint8Array(MiB).fill(10 + i))),
    );
    expect(raced.map((r) => r.status).sort()).toEqual([Status.Ok, Status.Ok, Status.RateLimited, Status.RateLimited]);
    const refused = await upload(owner, bytesOf("x"));
    expect(refused.status).toBe(Status.RateLimited);
    expect(errorOf(refused).message).toContain(`${8 * MiB} bytes`);
    expect(errorOf(refused).retryAfterMs).toBeGreaterThan(0);

    expect(await fetchPackage(owner)).toHaveLength(MiB);
    ok(await upload(owner, new Uint8Array(MiB)), pb.UploadKeyPackageResponse);
    expect((await upload(owner, bytesOf("x"))).status).toBe(Status.RateLimited);
  }, 30_000); // megabytes through D1: slow on a busy machine

  it("caps the number of packages per identity (1000), also against concurrent uploads", async () => {
    const owner = randomKey();
    // 990 packages stored directly, then the last ten places raced for through the RPC.
    await env.DB.prepare(
      `INSERT INTO key_packages (identity_key, package, fingerprint, created_at)
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 990)
      SELECT ?, randomblob(8), randomblob(32), 0 FROM n`,
    )
      .bind(owner)
      .run();
    const raced = await Promise.all(Array.from({ length: 15 }, () => upload(owner, randomBytes(8))));
    expect(raced.filter((r) => r.status === Status.Ok)).toHaveLength(10);
    expect(raced.filter((r) => r.status === Status.RateLimited)).toHaveLength(5);
    expect(errorOf(raced.find((r) => r.status === Status.RateLimited)!).message).toContain("1000 packages");
  });

  it("rejects a malformed identity key on fetch with BadRequest", async () => {
    const res = await rpc(
      Method.FetchKeyPackage,
      pb.FetchKeyPackageRequest.encode({ identityKey: randomBytes(31) }).finish(),
      { caller: randomKey() },
    );
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toMatch(/identity_key.*31/);
  });
});

describe("hybrid keys", () => {
  it("requires exactly 1216 bytes (X25519 32 + ML-KEM-768 1184)", async () => {
    const owner = randomKey();
    for (const len of [0, 32, 1184, HYBRID_LEN - 1, HYBRID_LEN + 1]) {
      const res = await uploadHybrid(owner, randomBytes(len));
      expect({ len, status: res.status }).toEqual({ len, status: Status.BadRequest });
      expect(errorOf(res).message).toContain("hybrid_public_key");
    }
    expect(await fetchHybrid(owner)).toHaveLength(0);
    ok(await uploadHybrid(owner, hybridPublicKey()), pb.UploadHybridKeyResponse);
    expect(await fetchHybrid(owner)).toHaveLength(HYBRID_LEN);
  });

  it("replaces the previous key and reads non-destructively", async () => {
    const owner = randomKey();
    const first = hybridPublicKey();
    const second = hybridPublicKey();
    ok(await uploadHybrid(owner, first), pb.UploadHybridKeyResponse);
    expect(hex(await fetchHybrid(owner))).toBe(hex(first));
    ok(await uploadHybrid(owner, second), pb.UploadHybridKeyResponse);
    expect(hex(await fetchHybrid(owner))).toBe(hex(second));
    expect(hex(await fetchHybrid(owner))).toBe(hex(second));
  });

  it("answers an empty key for an identity without one", async () => {
    expect(await fetchHybrid(randomKey())).toHaveLength(0);
  });

  it("answers FetchHybridKeys in input order with empty entries for missing keys", async () => {
    const [a, b, missing] = [randomKey(), randomKey(), randomKey()];
    const ka = hybridPublicKey();
    const kb = hybridPublicKey();
    ok(await uploadHybrid(a, ka), pb.UploadHybridKeyResponse);
    ok(await uploadHybrid(b, kb), pb.UploadHybridKeyResponse);
    const res = ok(
      await rpc(
        Method.FetchHybridKeys,
        pb.FetchHybridKeysRequest.encode({ identityKeys: [b, missing, a, b] }).finish(),
        { caller: randomKey() },
      ),
      pb.FetchHybridKeysResponse,
    );
    expect(res.keys.map(hex)).toEqual([hex(kb), "", hex(ka), hex(kb)]);

    const none = ok(
      await rpc(Method.FetchHybridKeys, pb.FetchHybridKeysRequest.encode({ identityKeys: [] }).finish(), {
        caller: randomKey(),
      }),
      pb.FetchHybridKeysResponse,
    );
    expect(none.keys).toEqual([]);
  });

  it("answers FetchHybridKeys correctly across more keys than one D1 statement binds", async () => {
    const owners = Array.from({ length: 120 }, () => randomKey());
    const withKey = [owners[0], owners[95], owners[119]];
    const keys = new Map<string, string>();
    for (const o of withKey) {
      const k = hybridPublicKey();
      keys.set(hex(o), hex(k));
      ok(await uploadHybrid(o, k), pb.UploadHybridKeyResponse);
    }
    const res = ok(
      await rpc(Method.FetchHybridKeys, pb.FetchHybridKeysRequest.encode({ identityKeys: owners }).finish(), {
        caller: randomKey(),
      }),
      pb.FetchHybridKeysResponse,
    );
    expect(res.keys.map(hex)).toEqual(owners.map((o) => keys.get(hex(o)) ?? ""));
  });

  it("rejects FetchHybridKeys with a malformed key, naming its index", async () => {
    const res = await rpc(
      Method.FetchHybridKeys,
      pb.FetchHybridKeysRequest.encode({ identityKeys: [randomKey(), randomBytes(5)] }).finish(),
      { caller: randomKey() },
    );
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toContain("identity_keys[1]");
  });
});
