// 600-601: content-addressed blobs on R2 (docs/protocol.md, "Blobs"). An upload is a sequence of
// 1 MiB chunks written in order, each stored as its own R2 object; the last chunk's request
// streams the chunks back through SHA-256 and only a match makes the blob visible (a row in
// `blobs`). Memory per request is one chunk. Access: the uploader and the identities it shared
// the blob with; the hash alone grants nothing (uploading the same bytes again does).
import { and, eq, gt, sql } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, notFound, rateLimited } from "../../proto/index.ts";
import { BLOB_CHUNK_BYTES, BLOB_MAX_BYTES } from "../../proto/wire/limits.ts";
import { unary, requireCaller, type MethodTable, type RpcContext } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { concatBytes, equalBytes, timingSafeEqual } from "../lib/crypto.ts";
import { bucketKey, takeToken } from "../lib/rate-bucket.ts";
import { chunkLength, deleteChunks, hashChunks, newStorageId, putChunk, readRange } from "../lib/blob-chunks.ts";
import { sweepStorage } from "../lib/storage-sweep.ts";
import { blobAccess, blobUploads, blobs } from "../../schema/tables.ts";
import { toHex } from "../../proto/util/hex.ts";

const HASH_BYTES = 32;

type Upload = typeof blobUploads.$inferSelect;

function blobHash(value: Uint8Array): Uint8Array {
  if (value.length !== HASH_BYTES)
    throw badRequest(`blob_hash must be ${HASH_BYTES} bytes (SHA-256), got ${value.length}`);
  return value;
}

/** share_with: 32-byte keys, at most blobShareMax, duplicates and the caller dropped. */
function shareList(ctx: RpcContext, keys: Uint8Array[], caller: Uint8Array): Uint8Array[] {
  const max = ctx.deps.storage.blobShareMax;
  if (keys.length > max) throw badRequest(`share_with names at most ${max} identities, got ${keys.length}`);
  const seen = new Set<string>([toHex(caller)]);
  const out: Uint8Array[] = [];
  for (const key of keys) {
    const hex = toHex(v.identityKey(key, "share_with entry"));
    if (!seen.has(hex)) {
      seen.add(hex);
      out.push(key);
    }
  }
  return out;
}

function splitKeys(packed: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i + 32 <= packed.length; i += 32) out.push(packed.slice(i, i + 32));
  return out;
}

/** The caller's own (uploader) access to a visible blob, if unexpired. */
async function ownCopy(ctx: RpcContext, hash: Uint8Array, caller: Uint8Array, now: number) {
  return ctx.deps.db
    .select({ size: blobs.size, expiresAt: blobAccess.expiresAt })
    .from(blobAccess)
    .innerJoin(blobs, eq(blobs.hash, blobAccess.blobHash))
    .where(
      and(
        eq(blobAccess.blobHash, hash),
        eq(blobAccess.identityKey, caller),
        eq(blobAccess.ownerKey, caller),
        gt(blobAccess.expiresAt, now),
      ),
    )
    .get();
}

/**
 * Grants the caller's copy of `hash` to `keys` until `expiresAt` (the caller's own row's expiry:
 * a share lives as long as the uploader's copy), within blobGrantsPerOwnerMax.
 */
async function grant(ctx: RpcContext, hash: Uint8Array, owner: Uint8Array, keys: Uint8Array[], expiresAt: number) {
  if (keys.length === 0) return;
  const { db, storage } = ctx.deps;
  const row = await db
    .select({ n: sql<number>`COUNT(*)` })
    .from(blobAccess)
    .where(and(eq(blobAccess.blobHash, hash), eq(blobAccess.ownerKey, owner)))
    .get();
  // The owner's own row counts too; re-sharing with someone already granted is refused only at the cap.
  if ((row?.n ?? 0) - 1 + keys.length > storage.blobGrantsPerOwnerMax) {
    throw forbidden(`an uploader may share one blob with at most ${storage.blobGrantsPerOwnerMax} identities`);
  }
  const [first, ...rest] = keys.map((identityKey) =>
    db
      .insert(blobAccess)
      .values({ blobHash: hash, identityKey, ownerKey: owner, expiresAt })
      .onConflictDoUpdate({
        target: [blobAccess.blobHash, blobAccess.identityKey, blobAccess.ownerKey],
        set: { expiresAt },
      }),
  );
  if (first) await db.batch([first, ...rest]);
}

/** Opens an upload: sweeps a little, takes an upload start, and checks the open-upload and storage limits in one statement. */
async function openUpload(ctx: RpcContext, owner: Uint8Array, hash: Uint8Array, total: number, share: Uint8Array[]) {
  const { db, storage } = ctx.deps;
  const now = Date.now();
  await sweepStorage(ctx.deps, now, storage.blobSweepBatch);
  const wait = await takeToken(db, await bucketKey("blob-upload", owner), now, storage.blobUploadStarts);
  if (wait > 0) throw rateLimited("too many blob uploads started: try again later", wait);
  const uploadId = newStorageId();
  const expiresAt = now + storage.blobUploadIdleMs;
  const used = sql`(COALESCE((SELECT SUM(b.size) FROM ${blobs} b JOIN ${blobAccess} a ON a.blob_hash = b.hash
      WHERE a.identity_key = ${owner} AND a.owner_key = ${owner} AND a.expires_at > ${now}), 0)
    + COALESCE((SELECT SUM(total_size) FROM ${blobUploads} WHERE owner_key = ${owner}), 0))`;
  const inserted = await db.run(sql`INSERT INTO ${blobUploads}
      (owner_key, blob_hash, upload_id, total_size, received, share_with, created_at, expires_at)
    SELECT ${owner}, ${hash}, ${uploadId}, ${total}, 0, ${concatBytes(...share)}, ${now}, ${expiresAt}
    WHERE (SELECT COUNT(*) FROM ${blobUploads} WHERE owner_key = ${owner}) < ${storage.blobUploadsOpenMax}
      AND ${used} + ${total} <= ${storage.blobQuotaBytes}
    ON CONFLICT DO NOTHING`);
  if (inserted.meta.changes === 1) return;
  // Refused, or another request of this uploader opened the same upload just now.
  if (await findUpload(ctx, owner, hash)) return;
  const open = await db
    .select({ n: sql<number>`COUNT(*)` })
    .from(blobUploads)
    .where(eq(blobUploads.ownerKey, owner))
    .get();
  if ((open?.n ?? 0) >= storage.blobUploadsOpenMax) {
    throw rateLimited(
      `at most ${storage.blobUploadsOpenMax} uploads may be open at once: finish one first`,
      storage.blobUploadIdleMs,
    );
  }
  throw forbidden(`blob storage quota exceeded: an identity holds at most ${storage.blobQuotaBytes} bytes`);
}

function findUpload(ctx: RpcContext, owner: Uint8Array, hash: Uint8Array): Promise<Upload | undefined> {
  return ctx.deps.db
    .select()
    .from(blobUploads)
    .where(and(eq(blobUploads.ownerKey, owner), eq(blobUploads.blobHash, hash)))
    .get();
}

/**
 * The last chunk arrived: hash the stored chunks; on a match the blob becomes visible (or, when
 * another upload of the same bytes completed first, this uploader gets access to that copy).
 * On a mismatch every chunk of this upload goes: nothing of it is ever visible.
 */
async function complete(ctx: RpcContext, upload: Upload) {
  const { db, blobs: bucket, storage } = ctx.deps;
  const digest = await hashChunks(bucket, upload.uploadId, upload.totalSize);
  if (!digest || !timingSafeEqual(digest, upload.blobHash)) {
    await db.delete(blobUploads).where(eq(blobUploads.uploadId, upload.uploadId));
    await deleteChunks(bucket, upload.uploadId, upload.totalSize);
    throw badRequest(
      "the uploaded bytes do not hash to blob_hash (SHA-256): the upload was discarded; upload the blob again from offset 0",
    );
  }
  const now = Date.now();
  const expiresAt = now + storage.blobTtlMs;
  const owner = upload.ownerKey;
  const hash = upload.blobHash;
  await db.batch([
    db
      .insert(blobs)
      .values({ hash, size: upload.totalSize, storageId: upload.uploadId, createdAt: now })
      .onConflictDoNothing(),
    db
      .insert(blobAccess)
      .values({ blobHash: hash, identityKey: owner, ownerKey: owner, expiresAt })
      .onConflictDoUpdate({
        target: [blobAccess.blobHash, blobAccess.identityKey, blobAccess.ownerKey],
        set: { expiresAt },
      }),
    // Earlier shares of this uploader live as long as its copy does.
    db
      .update(blobAccess)
      .set({ expiresAt })
      .where(and(eq(blobAccess.blobHash, hash), eq(blobAccess.ownerKey, owner))),
    db.delete(blobUploads).where(eq(blobUploads.uploadId, upload.uploadId)),
  ]);
  const stored = await db.select({ storageId: blobs.storageId }).from(blobs).where(eq(blobs.hash, hash)).get();
  // The same bytes were already stored by another upload: keep that copy only.
  if (stored?.storageId !== upload.uploadId) await deleteChunks(bucket, upload.uploadId, upload.totalSize);
  await grant(ctx, hash, owner, splitKeys(upload.shareWith), expiresAt);
  return { received: upload.totalSize, complete: true, expiresAtMs: expiresAt };
}

export const blobMethods: MethodTable = {
  [Method.UploadBlob]: unary("user", pb.UploadBlobRequest, pb.UploadBlobResponse, async (ctx, req) => {
    const caller = requireCaller(ctx).identityKey;
    const hash = blobHash(req.blobHash);
    const share = shareList(ctx, req.shareWith, caller);
    const chunk = req.chunk;
    let upload = await findUpload(ctx, caller, hash);
    // Completion removes the upload, so only without one can the caller already hold the blob.
    const own = upload ? undefined : await ownCopy(ctx, hash, caller, Date.now());
    // Already uploaded by the caller (a status question, or a repeat of the last chunk after a
    // lost answer): complete; share_with adds identities to it.
    if (own) {
      await grant(ctx, hash, caller, share, own.expiresAt);
      return { received: own.size, complete: true, expiresAtMs: own.expiresAt };
    }
    // An empty chunk asks where to resume and writes nothing.
    if (chunk.length === 0) {
      return upload
        ? { received: upload.received, complete: false, expiresAtMs: upload.expiresAt }
        : { received: 0, complete: false, expiresAtMs: 0 };
    }
    const total = req.totalSize;
    if (!Number.isSafeInteger(total) || total < 1 || total > BLOB_MAX_BYTES) {
      throw badRequest(`total_size must be 1-${BLOB_MAX_BYTES} bytes, got ${total}`);
    }
    const offset = req.offset;
    if (offset % BLOB_CHUNK_BYTES !== 0 || offset >= total) {
      throw badRequest(`offset must be a multiple of ${BLOB_CHUNK_BYTES} below total_size, got ${offset}`);
    }
    const index = offset / BLOB_CHUNK_BYTES;
    if (chunk.length !== chunkLength(total, index)) {
      throw badRequest(
        `the chunk at offset ${offset} of a ${total}-byte blob must be ${chunkLength(total, index)} bytes (every chunk but the last is ${BLOB_CHUNK_BYTES}), got ${chunk.length}`,
      );
    }
    if (upload && upload.totalSize !== total) {
      throw badRequest(`an upload of this blob with total_size ${upload.totalSize} is open: continue that one`);
    }
    if (!upload) {
      if (offset !== 0) {
        throw badRequest("no upload of this blob is open: start at offset 0 (an empty chunk asks where to resume)");
      }
      await openUpload(ctx, caller, hash, total, share);
      upload = await findUpload(ctx, caller, hash);
      if (!upload) throw notFound("the upload was dropped: start again at offset 0");
    }
    // A chunk already stored (a retry after a lost answer): nothing to write.
    if (offset < upload.received) return { received: upload.received, complete: false, expiresAtMs: upload.expiresAt };
    if (offset > upload.received) {
      throw badRequest(`chunks are written in order: this upload continues at offset ${upload.received}`);
    }
    const { db, blobs: bucket, storage } = ctx.deps;
    await putChunk(bucket, upload.uploadId, index, chunk);
    const merged = mergeShares(upload.shareWith, share, storage.blobShareMax);
    const expiresAt = Date.now() + storage.blobUploadIdleMs;
    // Only if nobody moved the upload on meanwhile (compare and set on `received`).
    const moved = await db
      .update(blobUploads)
      .set({ received: offset + chunk.length, expiresAt, shareWith: merged })
      .where(and(eq(blobUploads.uploadId, upload.uploadId), eq(blobUploads.received, offset)))
      .returning({ received: blobUploads.received });
    if (moved.length === 0) {
      const now2 = await findUpload(ctx, caller, hash);
      if (!now2 || now2.uploadId !== upload.uploadId) {
        // Swept (idle too long) while this chunk was written: its chunk must not linger.
        await bucket.delete(`blob/${upload.uploadId}/${index}`);
        throw notFound("the upload was dropped: start again at offset 0");
      }
      return { received: now2.received, complete: false, expiresAtMs: now2.expiresAt };
    }
    const received = offset + chunk.length;
    if (received < total) return { received, complete: false, expiresAtMs: expiresAt };
    return complete(ctx, { ...upload, received, shareWith: merged });
  }),

  [Method.DownloadBlob]: unary("user", pb.DownloadBlobRequest, pb.DownloadBlobResponse, async (ctx, req) => {
    const caller = requireCaller(ctx).identityKey;
    const hash = blobHash(req.blobHash);
    const now = Date.now();
    const blob = await ctx.deps.db
      .select({ size: blobs.size, storageId: blobs.storageId })
      .from(blobs)
      .innerJoin(blobAccess, eq(blobAccess.blobHash, blobs.hash))
      .where(and(eq(blobs.hash, hash), eq(blobAccess.identityKey, caller), gt(blobAccess.expiresAt, now)))
      .get();
    // One answer for "no such blob" and "not yours to read": the hash reveals nothing.
    if (!blob) throw notFound("no such blob, or it was not shared with you");
    const offset = req.offset;
    if (offset > blob.size) throw badRequest(`offset ${offset} is beyond the blob's ${blob.size} bytes`);
    const wanted = req.length === 0 ? BLOB_CHUNK_BYTES : Math.min(req.length, BLOB_CHUNK_BYTES);
    const length = Math.min(wanted, blob.size - offset);
    const chunk = await readRange(ctx.deps.blobs, blob.storageId, offset, length);
    return { chunk, totalSize: blob.size };
  }),
};

/** The upload's pending share list plus `more`, without duplicates, at most `max` keys. */
function mergeShares(packed: Uint8Array, more: Uint8Array[], max: number): Uint8Array {
  if (more.length === 0) return packed;
  const keys = splitKeys(packed);
  for (const key of more) if (!keys.some((k) => equalBytes(k, key))) keys.push(key);
  if (keys.length > max) throw badRequest(`share_with names at most ${max} identities per upload`);
  return concatBytes(...keys);
}
