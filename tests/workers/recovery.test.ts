// Recovery bundles (750-752) in workerd with real D1: store/fetch/delete by token hash, one
// bundle per identity, and the fetch limits per token hash and per client address, which hold
// whichever isolate answers because they live in D1.
import { describe, it, expect } from "vitest";
import { Method, Status, pb } from "../../proto/index.ts";
import { env, errorOf, hex, ok, randomBytes, randomKey, rpc } from "./helpers.ts";
import { sha256 } from "../../edge/lib/crypto.ts";

const NONE = new Uint8Array(0);
let addressSeq = 0;
/** A fresh client address, so one test's fetches do not spend another's address bucket. */
const freshAddress = () => `10.7.${Math.floor(++addressSeq / 250)}.${addressSeq % 250}:4433`;

async function token(): Promise<{ secret: Uint8Array; hash: Uint8Array }> {
  const secret = randomBytes(32);
  return { secret, hash: await sha256(secret) };
}

function store(caller: Uint8Array, tokenHash: Uint8Array, bundle: Uint8Array) {
  return rpc(Method.StoreRecoveryBundle, pb.StoreRecoveryBundleRequest.encode({ tokenHash, bundle }).finish(), {
    caller,
  });
}

function fetchBundle(tokenHash: Uint8Array, clientAddr = freshAddress()) {
  return rpc(Method.FetchRecoveryBundle, pb.FetchRecoveryBundleRequest.encode({ tokenHash }).finish(), { clientAddr });
}

function remove(caller: Uint8Array, tokenHash: Uint8Array = NONE) {
  return rpc(Method.DeleteRecoveryBundle, pb.DeleteRecoveryBundleRequest.encode({ tokenHash }).finish(), { caller });
}

describe("recovery bundles", () => {
  it("stores a bundle under the token hash, fetches it without a session, deletes it", async () => {
    const alice = randomKey();
    const t = await token();
    const bundle = randomBytes(4096);
    ok(await store(alice, t.hash, bundle), pb.StoreRecoveryBundleResponse);
    // Only the hash is stored, never the token.
    const row = await env.DB.prepare("SELECT token_hash FROM recovery_bundles WHERE identity_key = ?")
      .bind(alice)
      .first<{ token_hash: ArrayBuffer }>();
    expect(hex(new Uint8Array(row?.token_hash ?? new ArrayBuffer(0)))).toBe(hex(t.hash));
    expect(hex(ok(await fetchBundle(t.hash), pb.FetchRecoveryBundleResponse).bundle)).toBe(hex(bundle));

    ok(await remove(alice), pb.DeleteRecoveryBundleResponse);
    expect((await fetchBundle(t.hash)).status).toBe(Status.NotFound);
    // Deleting nothing is fine.
    expect((await remove(alice)).status).toBe(Status.Ok);
  });

  it("keeps one bundle per identity: storing under a new token replaces the old one", async () => {
    const alice = randomKey();
    const [t1, t2] = [await token(), await token()];
    ok(await store(alice, t1.hash, randomBytes(10)), pb.StoreRecoveryBundleResponse);
    const second = randomBytes(20);
    ok(await store(alice, t2.hash, second), pb.StoreRecoveryBundleResponse);
    expect((await fetchBundle(t1.hash)).status).toBe(Status.NotFound);
    expect(hex(ok(await fetchBundle(t2.hash), pb.FetchRecoveryBundleResponse).bundle)).toBe(hex(second));
    // A token hash that is not the caller's own deletes nothing.
    expect((await remove(alice, t1.hash)).status).toBe(Status.Ok);
    expect((await fetchBundle(t2.hash)).status).toBe(Status.Ok);
  });

  it("refuses another identity's token hash, bad hashes and bundle sizes; Store and Delete need a session", async () => {
    const [alice, mallory] = [randomKey(), randomKey()];
    const t = await token();
    ok(await store(alice, t.hash, randomBytes(10)), pb.StoreRecoveryBundleResponse);
    expect((await store(mallory, t.hash, randomBytes(10))).status).toBe(Status.Forbidden);
    await remove(mallory, t.hash);
    expect((await fetchBundle(t.hash)).status).toBe(Status.Ok);

    expect((await store(alice, t.hash.subarray(1), randomBytes(10))).status).toBe(Status.BadRequest);
    expect((await store(alice, t.hash, NONE)).status).toBe(Status.BadRequest);
    expect((await store(alice, t.hash, new Uint8Array(64 * 1024 + 1))).status).toBe(Status.BadRequest);
    expect((await store(alice, t.hash, new Uint8Array(64 * 1024))).status).toBe(Status.Ok);
    expect((await fetchBundle(randomBytes(31))).status).toBe(Status.BadRequest);
    const anonymous = pb.StoreRecoveryBundleRequest.encode({ tokenHash: t.hash, bundle: randomBytes(3) }).finish();
    expect((await rpc(Method.StoreRecoveryBundle, anonymous)).status).toBe(Status.Unauthorized);
    expect((await rpc(Method.DeleteRecoveryBundle, NONE)).status).toBe(Status.Unauthorized);
  });
});

describe("FetchRecoveryBundle limits", () => {
  it("allows 3 fetches per token hash, whatever the address, found or not; then RateLimited", async () => {
    const alice = randomKey();
    const t = await token();
    ok(await store(alice, t.hash, randomBytes(10)), pb.StoreRecoveryBundleResponse);
    for (let i = 0; i < 3; i++) expect((await fetchBundle(t.hash)).status).toBe(Status.Ok);
    const refused = await fetchBundle(t.hash);
    expect(refused.status).toBe(Status.RateLimited);
    expect(errorOf(refused).message).toMatch(/this token/);
    // One fetch an hour comes back: the wait says so.
    expect(errorOf(refused).retryAfterMs).toBeGreaterThan(50 * 60_000);

    // A token nobody stored spends its bucket the same way: misses are no free oracle.
    const unknown = await token();
    for (let i = 0; i < 3; i++) expect((await fetchBundle(unknown.hash)).status).toBe(Status.NotFound);
    expect((await fetchBundle(unknown.hash)).status).toBe(Status.RateLimited);
  });

  it("allows 10 fetches per client address (an IPv6 client: per /64), for any tokens; then RateLimited", async () => {
    const address = freshAddress();
    for (let i = 0; i < 10; i++)
      expect((await fetchBundle((await token()).hash, address)).status).toBe(Status.NotFound);
    const refused = await fetchBundle((await token()).hash, address.replace(/:4433$/, ":5555"));
    expect(refused.status).toBe(Status.RateLimited);
    expect(errorOf(refused).message).toMatch(/this address/);
    // Another address is not affected.
    expect((await fetchBundle((await token()).hash)).status).toBe(Status.NotFound);

    for (let i = 0; i < 10; i++) {
      expect((await fetchBundle((await token()).hash, `[2001:db8:77:1::${i + 1}]:4433`)).status).toBe(Status.NotFound);
    }
    expect((await fetchBundle((await token()).hash, "[2001:db8:77:1:ffff::9]:1")).status).toBe(Status.RateLimited);
    expect((await fetchBundle((await token()).hash, "[2001:db8:77:2::1]:1")).status).toBe(Status.NotFound);
  });
});
