// Blobs (600/601) in workerd with real D1 and R2: the hash gates visibility, uploads resume from
// the stored offset, abandoned uploads and expired blobs are swept with their R2 objects, ranged
// downloads, the access rule (uploader and shares only), the storage quota and open-upload cap.
import { describe, it, expect } from "vitest";
import { drizzle } from "drizzle-orm/d1";
import { Method, Status, pb } from "../../proto/index.ts";
import { BLOB_CHUNK_BYTES } from "../../proto/wire/limits.ts";
import { env, errorOf, hex, ok, randomBytes, randomKey, rpc } from "./helpers.ts";
import { sha256 } from "../../edge/lib/crypto.ts";
import { sweepStorage } from "../../edge/lib/storage-sweep.ts";
import { bucketKey } from "../../edge/lib/rate-bucket.ts";
import { createLogger } from "../../proto/util/log.ts";
import * as tables from "../../schema/tables.ts";
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../edge/worker.ts";
import type { AppEnv } from "../../edge/env.ts";
import { login, register } from "./opaque-client.ts";

const MiB = BLOB_CHUNK_BYTES;
const NONE = new Uint8Array(0);

interface UploadArgs {
  hash: Uint8Array;
  total: number;
  offset?: number;
  chunk?: Uint8Array;
  shareWith?: Uint8Array[];
}

function upload(caller: Uint8Array, a: UploadArgs) {
  return uploadAs(caller, a);
}

/** As `upload`, for an identity key (account made on first use) or a ready caller assertion. */
function uploadAs(caller: Uint8Array | string, a: UploadArgs) {
  return rpc(
    Method.UploadBlob,
    pb.UploadBlobRequest.encode({
      blobHash: a.hash,
      totalSize: a.total,
      offset: a.offset ?? 0,
      chunk: a.chunk ?? NONE,
      shareWith: a.shareWith ?? [],
    }).finish(),
    { caller },
  );
}

/** Uploads chunks [from, to) of `data` in order; returns the last answer. */
async function uploadChunks(caller: Uint8Array, data: Uint8Array, hash: Uint8Array, from = 0, to = Infinity) {
  let last: ReturnType<typeof pb.UploadBlobResponse.decode> | undefined;
  for (let off = from * MiB; off < data.length && off < to * MiB; off += MiB) {
    const chunk = data.subarray(off, Math.min(off + MiB, data.length));
    last = ok(await upload(caller, { hash, total: data.length, offset: off, chunk }), pb.UploadBlobResponse);
  }
  if (!last) throw new Error("nothing uploaded");
  return last;
}

function download(caller: Uint8Array, hash: Uint8Array, offset = 0, length = 0) {
  return rpc(Method.DownloadBlob, pb.DownloadBlobRequest.encode({ blobHash: hash, offset, length }).finish(), {
    caller,
  });
}

async function downloadAll(caller: Uint8Array, hash: Uint8Array): Promise<Uint8Array> {
  const first = ok(await download(caller, hash), pb.DownloadBlobResponse);
  const out = new Uint8Array(first.totalSize);
  out.set(first.chunk);
  for (let at = first.chunk.length; at < out.length;) {
    const part = ok(await download(caller, hash, at), pb.DownloadBlobResponse).chunk;
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Random bytes of any length (getRandomValues fills at most 64 KiB per call). */
function randomData(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) out.set(randomBytes(Math.min(65536, size - at)), at);
  return out;
}

async function blobOf(size: number) {
  const data = randomData(size);
  return { data, hash: await sha256(data) };
}

async function uploadRow(owner: Uint8Array, hash: Uint8Array) {
  return env.DB.prepare(
    "SELECT upload_id, received, expires_at FROM blob_uploads WHERE owner_key = ? AND blob_hash = ?",
  )
    .bind(owner, hash)
    .first<{ upload_id: string; received: number; expires_at: number }>();
}

async function r2Keys(prefix: string): Promise<string[]> {
  return (await env.BLOBS.list({ prefix })).objects.map((o) => o.key);
}

const sweepDeps = () => ({ db: drizzle(env.DB, { schema: tables }), blobs: env.BLOBS, logger: createLogger("error") });

describe("UploadBlob / DownloadBlob", () => {
  it("round-trips a multi-chunk blob and serves ranges, across chunk boundaries too", async () => {
    const alice = randomKey();
    const { data, hash } = await blobOf(2 * MiB + 12345);
    const done = await uploadChunks(alice, data, hash);
    expect(done.complete).toBe(true);
    expect(done.received).toBe(data.length);
    expect(done.expiresAtMs).toBeGreaterThan(Date.now());
    expect(hex(await downloadAll(alice, hash))).toBe(hex(data));

    const across = ok(await download(alice, hash, MiB - 10, 30), pb.DownloadBlobResponse);
    expect(hex(across.chunk)).toBe(hex(data.subarray(MiB - 10, MiB + 20)));
    expect(across.totalSize).toBe(data.length);
    // length 0 = one chunk's worth; capped at a chunk; the tail is short; offset = size is empty.
    expect(ok(await download(alice, hash, 5), pb.DownloadBlobResponse).chunk.length).toBe(MiB);
    expect(ok(await download(alice, hash, 5, 4 * MiB), pb.DownloadBlobResponse).chunk.length).toBe(MiB);
    expect(hex(ok(await download(alice, hash, 2 * MiB), pb.DownloadBlobResponse).chunk)).toBe(
      hex(data.subarray(2 * MiB)),
    );
    expect(ok(await download(alice, hash, data.length), pb.DownloadBlobResponse).chunk.length).toBe(0);
    expect((await download(alice, hash, data.length + 1)).status).toBe(Status.BadRequest);
  });

  it("never makes a blob visible when its bytes do not hash to blob_hash, and drops the upload", async () => {
    const alice = randomKey();
    const { data } = await blobOf(MiB + 100);
    const claimed = await sha256(randomBytes(32));
    const first = ok(
      await upload(alice, { hash: claimed, total: data.length, chunk: data.subarray(0, MiB) }),
      pb.UploadBlobResponse,
    );
    expect(first).toMatchObject({ received: MiB, complete: false });
    const row = await uploadRow(alice, claimed);
    expect(row?.received).toBe(MiB);
    expect(await r2Keys(`blob/${row?.upload_id}/`)).toHaveLength(1);

    const last = await upload(alice, { hash: claimed, total: data.length, offset: MiB, chunk: data.subarray(MiB) });
    expect(last.status).toBe(Status.BadRequest);
    expect(errorOf(last).message).toMatch(/do not hash to blob_hash/);
    expect((await download(alice, claimed)).status).toBe(Status.NotFound);
    expect(await uploadRow(alice, claimed)).toBeNull();
    expect(await r2Keys(`blob/${row?.upload_id}/`)).toEqual([]);
    const visible = await env.DB.prepare("SELECT COUNT(*) AS n FROM blobs WHERE hash = ?")
      .bind(claimed)
      .first<{ n: number }>();
    expect(visible?.n).toBe(0);
    // The status question says: nothing stored, start over.
    expect(ok(await upload(alice, { hash: claimed, total: data.length }), pb.UploadBlobResponse).received).toBe(0);
  });

  it("resumes an interrupted upload from the stored offset; repeats are harmless, gaps refused", async () => {
    const alice = randomKey();
    const { data, hash } = await blobOf(3 * MiB + 7);
    await uploadChunks(alice, data, hash, 0, 2);
    // Where to resume: an empty chunk writes nothing and answers the stored offset.
    const where = ok(await upload(alice, { hash, total: data.length }), pb.UploadBlobResponse);
    expect(where).toMatchObject({ received: 2 * MiB, complete: false });
    expect((await download(alice, hash)).status).toBe(Status.NotFound);
    // A chunk sent again (its answer was lost) changes nothing.
    const again = ok(
      await upload(alice, { hash, total: data.length, offset: MiB, chunk: data.subarray(MiB, 2 * MiB) }),
      pb.UploadBlobResponse,
    );
    expect(again.received).toBe(2 * MiB);
    // Skipping ahead leaves a gap: refused, naming where to continue.
    const gap = await upload(alice, { hash, total: data.length, offset: 3 * MiB, chunk: data.subarray(3 * MiB) });
    expect(gap.status).toBe(Status.BadRequest);
    expect(errorOf(gap).message).toMatch(new RegExp(`continues at offset ${2 * MiB}`));
    // Another total_size for the open upload, a misaligned offset, a wrong chunk length: refused.
    expect(
      (await upload(alice, { hash, total: data.length + 1, offset: 2 * MiB, chunk: data.subarray(2 * MiB, 3 * MiB) }))
        .status,
    ).toBe(Status.BadRequest);
    expect((await upload(alice, { hash, total: data.length, offset: 5, chunk: data.subarray(5, 10) })).status).toBe(
      Status.BadRequest,
    );
    expect(
      (await upload(alice, { hash, total: data.length, offset: 2 * MiB, chunk: data.subarray(2 * MiB, 3 * MiB - 1) }))
        .status,
    ).toBe(Status.BadRequest);

    const done = await uploadChunks(alice, data, hash, 2);
    expect(done.complete).toBe(true);
    expect(hex(await downloadAll(alice, hash))).toBe(hex(data));
    // Asking again after completion (or repeating the last chunk) answers complete.
    expect(ok(await upload(alice, { hash, total: data.length }), pb.UploadBlobResponse).complete).toBe(true);
  });

  it("lets only the uploader and the identities it shared with download; the hash alone grants nothing", async () => {
    const [alice, bob, carol, mallory] = [randomKey(), randomKey(), randomKey(), randomKey()];
    const { data, hash } = await blobOf(1000);
    ok(await upload(alice, { hash, total: data.length, chunk: data, shareWith: [bob] }), pb.UploadBlobResponse);
    expect(hex(await downloadAll(bob, hash))).toBe(hex(data));
    const refused = await download(carol, hash);
    expect(refused.status).toBe(Status.NotFound);
    // The uploader shares later through a status question.
    expect((await upload(bob, { hash, total: 0, shareWith: [carol] })).status).toBe(Status.Ok);
    expect((await download(carol, hash)).status).toBe(Status.NotFound); // bob is not an uploader
    ok(await upload(alice, { hash, total: 0, shareWith: [carol] }), pb.UploadBlobResponse);
    expect(hex(await downloadAll(carol, hash))).toBe(hex(data));
    // Knowing the hash and asking does not grant it; uploading the same bytes does.
    expect(ok(await upload(mallory, { hash, total: data.length }), pb.UploadBlobResponse).complete).toBe(false);
    expect((await download(mallory, hash)).status).toBe(Status.NotFound);
    const bogus = await upload(mallory, { hash, total: data.length, chunk: randomData(data.length) });
    expect(bogus.status).toBe(Status.BadRequest);
    expect((await download(mallory, hash)).status).toBe(Status.NotFound);
    expect(ok(await upload(mallory, { hash, total: data.length, chunk: data }), pb.UploadBlobResponse).complete).toBe(
      true,
    );
    expect(hex(await downloadAll(mallory, hash))).toBe(hex(data));
    // Stored once: the second upload's chunks were dropped in favour of the first copy.
    const stored = await env.DB.prepare("SELECT storage_id FROM blobs WHERE hash = ?").bind(hash).first<{
      storage_id: string;
    }>();
    expect(await r2Keys(`blob/${stored?.storage_id}/`)).toHaveLength(1);
  });

  it("refuses bad input: hash length, sizes, share lists", async () => {
    const alice = randomKey();
    const chunk = randomBytes(10);
    const hash = await sha256(chunk);
    expect((await upload(alice, { hash: hash.subarray(1), total: 10, chunk })).status).toBe(Status.BadRequest);
    expect((await upload(alice, { hash, total: 0, chunk })).status).toBe(Status.BadRequest);
    expect((await upload(alice, { hash, total: 50 * MiB + 1, chunk })).status).toBe(Status.BadRequest);
    expect((await upload(alice, { hash, total: 10, chunk, shareWith: [randomBytes(31)] })).status).toBe(
      Status.BadRequest,
    );
    const tooMany = Array.from({ length: 257 }, () => randomKey());
    expect((await upload(alice, { hash, total: 10, chunk, shareWith: tooMany })).status).toBe(Status.BadRequest);
    expect((await download(alice, hash.subarray(2))).status).toBe(Status.BadRequest);
    expect((await rpc(Method.UploadBlob, new Uint8Array(0))).status).toBe(Status.Unauthorized);
  });
});

describe("blob limits", () => {
  it("holds an identity to its storage quota (stored blobs plus open uploads; 16 MiB in these tests)", async () => {
    const alice = randomKey();
    const big = await blobOf(10 * MiB);
    expect((await uploadChunks(alice, big.data, big.hash)).complete).toBe(true);
    const next = await blobOf(6 * MiB + 1);
    const refused = await upload(alice, {
      hash: next.hash,
      total: next.data.length,
      chunk: next.data.subarray(0, MiB),
    });
    expect(refused.status).toBe(Status.Forbidden);
    expect(errorOf(refused).message).toMatch(/quota/);
    // Exactly up to the quota is fine.
    const fits = await blobOf(6 * MiB);
    expect(
      ok(
        await upload(alice, { hash: fits.hash, total: fits.data.length, chunk: fits.data.subarray(0, MiB) }),
        pb.UploadBlobResponse,
      ).received,
    ).toBe(MiB);
  });

  it("allows 8 open uploads per identity; a ninth waits (RateLimited)", async () => {
    const alice = randomKey();
    for (let i = 0; i < 8; i++) {
      const b = await blobOf(MiB + 1);
      ok(
        await upload(alice, { hash: b.hash, total: b.data.length, chunk: b.data.subarray(0, MiB) }),
        pb.UploadBlobResponse,
      );
    }
    const b = await blobOf(MiB + 1);
    const ninth = await upload(alice, { hash: b.hash, total: b.data.length, chunk: b.data.subarray(0, MiB) });
    expect(ninth.status).toBe(Status.RateLimited);
    expect(errorOf(ninth).retryAfterMs).toBeGreaterThan(0);
  });
});

describe("blob upload starts", () => {
  it("takes one start per new upload from a bucket shared by every front; an empty bucket is RateLimited", async () => {
    const alice = randomKey();
    const first = await blobOf(10);
    ok(await upload(alice, { hash: first.hash, total: 10, chunk: first.data }), pb.UploadBlobResponse);
    const key = await bucketKey("blob-upload", alice);
    const row = await env.DB.prepare("SELECT tokens FROM rate_buckets WHERE key = ?")
      .bind(key)
      .first<{ tokens: number }>();
    expect(row?.tokens).toBe(59); // burst 60, one taken
    // Spend the rest, as 59 more starts would.
    await env.DB.prepare("UPDATE rate_buckets SET tokens = 0, updated_at = ? WHERE key = ?")
      .bind(Date.now(), key)
      .run();
    const next = await blobOf(10);
    const refused = await upload(alice, { hash: next.hash, total: 10, chunk: next.data });
    expect(refused.status).toBe(Status.RateLimited);
    expect(errorOf(refused).retryAfterMs).toBeGreaterThan(20_000); // 120 an hour: one per 30 s
    // Chunks of an upload already open, and status questions, take nothing.
    expect(ok(await upload(alice, { hash: first.hash, total: 0 }), pb.UploadBlobResponse).complete).toBe(true);
  });
});

describe("blob sweep", () => {
  it("drops an upload idle past its expiry with its chunks; the uploader starts over", async () => {
    const alice = randomKey();
    const { data, hash } = await blobOf(2 * MiB);
    await uploadChunks(alice, data, hash, 0, 1);
    const row = await uploadRow(alice, hash);
    if (!row) throw new Error("no upload row");
    expect(await r2Keys(`blob/${row.upload_id}/`)).toHaveLength(1);
    // Not yet idle: kept.
    await sweepStorage(sweepDeps(), row.expires_at - 1, 1000);
    expect(await uploadRow(alice, hash)).not.toBeNull();
    const swept = await sweepStorage(sweepDeps(), row.expires_at, 1000);
    expect(swept.uploads).toBeGreaterThanOrEqual(1);
    expect(await uploadRow(alice, hash)).toBeNull();
    expect(await r2Keys(`blob/${row.upload_id}/`)).toEqual([]);
    expect(ok(await upload(alice, { hash, total: data.length }), pb.UploadBlobResponse).received).toBe(0);
    expect((await uploadChunks(alice, data, hash)).complete).toBe(true);
  });

  it("deletes a blob when its uploaders' copies expire; shares go with it", async () => {
    const [alice, bob] = [randomKey(), randomKey()];
    const { data, hash } = await blobOf(MiB + 5);
    const done = await uploadChunks(alice, data, hash);
    ok(await upload(alice, { hash, total: 0, shareWith: [bob] }), pb.UploadBlobResponse);
    const stored = await env.DB.prepare("SELECT storage_id FROM blobs WHERE hash = ?").bind(hash).first<{
      storage_id: string;
    }>();
    expect(await r2Keys(`blob/${stored?.storage_id}/`)).toHaveLength(2);
    const swept = await sweepStorage(sweepDeps(), done.expiresAtMs, 1000);
    expect(swept.blobs).toBeGreaterThanOrEqual(1);
    expect((await download(alice, hash)).status).toBe(Status.NotFound);
    expect((await download(bob, hash)).status).toBe(Status.NotFound);
    expect(await r2Keys(`blob/${stored?.storage_id}/`)).toEqual([]);
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM blob_access WHERE blob_hash = ?").bind(hash).first<{
      n: number;
    }>();
    expect(rows?.n).toBe(0);
  });
});

describe("DeleteAccount and the cron sweep", () => {
  it("DeleteAccount ends the account's blobs, shares, recovery bundle and endpoints; the sweep deletes the bytes", async () => {
    const username = `blobdel-${crypto.randomUUID().slice(0, 12)}`;
    const identityKey = randomKey();
    expect(await register(username, "pw", identityKey)).toBe(true);
    const alice = (await login(username, "pw", identityKey)).assertion;
    if (!alice) throw new Error("login failed");
    const bob = randomKey();
    const mine = await blobOf(MiB + 1);
    ok(
      await uploadAs(alice, { hash: mine.hash, total: mine.data.length, chunk: mine.data.subarray(0, MiB) }),
      pb.UploadBlobResponse,
    );
    ok(
      await uploadAs(alice, {
        hash: mine.hash,
        total: mine.data.length,
        offset: MiB,
        chunk: mine.data.subarray(MiB),
        shareWith: [bob],
      }),
      pb.UploadBlobResponse,
    );
    const open = await blobOf(MiB + 1);
    ok(
      await uploadAs(alice, { hash: open.hash, total: open.data.length, chunk: open.data.subarray(0, MiB) }),
      pb.UploadBlobResponse,
    );
    const theirs = await blobOf(10);
    ok(
      await upload(bob, { hash: theirs.hash, total: 10, chunk: theirs.data, shareWith: [identityKey] }),
      pb.UploadBlobResponse,
    );
    const tokenHash = await sha256(randomBytes(32));
    ok(
      await rpc(
        Method.StoreRecoveryBundle,
        pb.StoreRecoveryBundleRequest.encode({ tokenHash, bundle: randomBytes(9) }).finish(),
        {
          caller: alice,
        },
      ),
      pb.StoreRecoveryBundleResponse,
    );
    ok(
      await rpc(Method.PublishEndpoint, pb.PublishEndpointRequest.encode({ address: randomBytes(4) }).finish(), {
        caller: alice,
      }),
      pb.PublishEndpointResponse,
    );
    expect((await download(bob, mine.hash)).status).toBe(Status.Ok);

    ok(
      await rpc(Method.DeleteAccount, pb.DeleteAccountRequest.encode({}).finish(), { caller: alice }),
      pb.DeleteAccountResponse,
    );

    // At once: nobody reads the deleted account's blobs any more; the rest is gone.
    expect((await download(bob, mine.hash)).status).toBe(Status.NotFound);
    const count = (sql: string, ...args: unknown[]) =>
      env.DB.prepare(sql)
        .bind(...args)
        .first<{ n: number }>()
        .then((r) => r?.n);
    expect(
      await count(
        "SELECT COUNT(*) AS n FROM blob_access WHERE identity_key = ? AND owner_key <> ?",
        identityKey,
        identityKey,
      ),
    ).toBe(0);
    expect(await count("SELECT COUNT(*) AS n FROM recovery_bundles WHERE identity_key = ?", identityKey)).toBe(0);
    expect(await count("SELECT COUNT(*) AS n FROM p2p_endpoints WHERE identity_key = ?", identityKey)).toBe(0);
    expect((await download(bob, theirs.hash)).status).toBe(Status.Ok); // bob's own blob stays his

    // The cron trigger's sweep removes the rows and the R2 objects.
    const stored = await env.DB.prepare("SELECT storage_id FROM blobs WHERE hash = ?")
      .bind(mine.hash)
      .first<{ storage_id: string }>();
    const openRow = await uploadRow(identityKey, open.hash);
    const controller = createScheduledController({ scheduledTime: Date.now(), cron: "*/15 * * * *" });
    const ctx = createExecutionContext();
    worker.scheduled(controller, env as unknown as AppEnv, ctx);
    await waitOnExecutionContext(ctx);
    expect(await count("SELECT COUNT(*) AS n FROM blobs WHERE hash = ?", mine.hash)).toBe(0);
    expect(await count("SELECT COUNT(*) AS n FROM blob_access WHERE owner_key = ?", identityKey)).toBe(0);
    expect(await uploadRow(identityKey, open.hash)).toBeNull();
    expect(await r2Keys(`blob/${stored?.storage_id}/`)).toEqual([]);
    expect(await r2Keys(`blob/${openRow?.upload_id}/`)).toEqual([]);
  });
});
