// Last-resort KeyPackages (RFC 9750): one per identity, replaced by a newer one, served only
// when the single-use queue is empty, never consumed, and flagged in the response.
import { describe, it, expect } from "vitest";
import { Method, pb } from "../../proto/index.ts";
import { bytesOf, env, hex, ok, randomKey, rpc, textOf } from "./helpers.ts";

function upload(owner: Uint8Array, pkg: string, lastResort = false) {
  return rpc(
    Method.UploadKeyPackage,
    pb.UploadKeyPackageRequest.encode({ identityKey: owner, package: bytesOf(pkg), lastResort }).finish(),
    { caller: owner },
  );
}

async function fetchPackage(owner: Uint8Array) {
  const res = ok(
    await rpc(Method.FetchKeyPackage, pb.FetchKeyPackageRequest.encode({ identityKey: owner }).finish(), {
      caller: randomKey(),
    }),
    pb.FetchKeyPackageResponse,
  );
  return { pkg: textOf(res.package), lastResort: res.lastResort };
}

describe("last-resort KeyPackages", () => {
  it("is served after the single-use packages run dry, served again, and replaced by a newer one", async () => {
    const owner = randomKey();
    ok(await upload(owner, "one"), pb.UploadKeyPackageResponse);
    const fp = ok(await upload(owner, "last-1", true), pb.UploadKeyPackageResponse).fingerprint;
    expect(hex(fp)).toBe(hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytesOf("last-1")))));
    ok(await upload(owner, "two"), pb.UploadKeyPackageResponse);

    // Single-use packages first, in order, even the one uploaded after the last-resort one.
    expect(await fetchPackage(owner)).toEqual({ pkg: "one", lastResort: false });
    expect(await fetchPackage(owner)).toEqual({ pkg: "two", lastResort: false });
    // Then the last-resort package, as often as asked: it is never consumed.
    expect(await fetchPackage(owner)).toEqual({ pkg: "last-1", lastResort: true });
    expect(await fetchPackage(owner)).toEqual({ pkg: "last-1", lastResort: true });

    // A newer one replaces it; a fresh single-use package is preferred again.
    ok(await upload(owner, "last-2", true), pb.UploadKeyPackageResponse);
    const stored = await env.DB.prepare("SELECT COUNT(*) AS n FROM last_resort_key_packages WHERE identity_key = ?")
      .bind(owner)
      .first<{ n: number }>();
    expect(stored?.n).toBe(1);
    expect(await fetchPackage(owner)).toEqual({ pkg: "last-2", lastResort: true });
    ok(await upload(owner, "three"), pb.UploadKeyPackageResponse);
    expect(await fetchPackage(owner)).toEqual({ pkg: "three", lastResort: false });
    expect(await fetchPackage(owner)).toEqual({ pkg: "last-2", lastResort: true });
  });

  it("answers empty and not last-resort when an identity has none", async () => {
    expect(await fetchPackage(randomKey())).toEqual({ pkg: "", lastResort: false });
  });

  it("only the owner uploads one", async () => {
    const owner = randomKey();
    const res = await rpc(
      Method.UploadKeyPackage,
      pb.UploadKeyPackageRequest.encode({ identityKey: owner, package: bytesOf("x"), lastResort: true }).finish(),
      { caller: randomKey() },
    );
    expect(res.status).toBe(3);
    expect(await fetchPackage(owner)).toEqual({ pkg: "", lastResort: false });
  });
});
