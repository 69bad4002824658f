// Deletes what expired in blob storage and the other swept tables: abandoned uploads with their
// chunks, blobs no uploader holds any more with theirs, expired access rows, P2P endpoints and
// refilled rate buckets. Runs from the cron trigger (worker.ts) and, in small batches, whenever
// an upload starts, so a deployment without the trigger (or the local system) still cleans up.
// Rows go first (DELETE ... RETURNING), R2 objects after: a concurrent upload either sees the
// row and keeps it or makes a new one; an R2 failure leaks chunks, never exposes a broken blob.
import { and, eq, inArray, lte, sql } from "drizzle-orm";
import type { EdgeDeps } from "../deps.ts";
import { blobAccess, blobUploads, blobs, p2pEndpoints } from "../../schema/tables.ts";
import { deleteChunks } from "./blob-chunks.ts";

export interface SweepResult {
  uploads: number;
  blobs: number;
  endpoints: number;
}

type SweepDeps = Pick<EdgeDeps, "db" | "blobs" | "logger">;

/** Deletes at most `batch` abandoned uploads and `batch` expired blobs (with their chunks). */
export async function sweepStorage(deps: SweepDeps, now: number, batch: number): Promise<SweepResult> {
  const uploads = await sweepUploads(deps, now, batch);
  const released = await sweepBlobs(deps, now, batch);
  const endpoints = await deps.db
    .delete(p2pEndpoints)
    .where(lte(p2pEndpoints.expiresAt, now))
    .returning({ id: p2pEndpoints.identityKey });
  return { uploads, blobs: released, endpoints: endpoints.length };
}

async function sweepUploads({ db, blobs: bucket, logger }: SweepDeps, now: number, batch: number): Promise<number> {
  const gone = await db
    .delete(blobUploads)
    .where(
      inArray(
        blobUploads.uploadId,
        db.select({ id: blobUploads.uploadId }).from(blobUploads).where(lte(blobUploads.expiresAt, now)).limit(batch),
      ),
    )
    .returning({ uploadId: blobUploads.uploadId, totalSize: blobUploads.totalSize });
  for (const u of gone) {
    await deleteChunks(bucket, u.uploadId, u.totalSize).catch((err: unknown) =>
      logger.error("blob upload chunks not deleted", { upload: u.uploadId, error: String(err) }),
    );
  }
  return gone.length;
}

/** Expired access rows go; a blob whose every uploader's row is gone goes with its chunks. */
async function sweepBlobs(deps: SweepDeps, now: number, batch: number): Promise<number> {
  const { db } = deps;
  const expired = await db
    .selectDistinct({ hash: blobAccess.blobHash })
    .from(blobAccess)
    .where(lte(blobAccess.expiresAt, now))
    .limit(batch)
    .all();
  let released = 0;
  for (const { hash } of expired) {
    await db.delete(blobAccess).where(and(eq(blobAccess.blobHash, hash), lte(blobAccess.expiresAt, now)));
    released += await releaseBlob(deps, hash, now);
  }
  return released;
}

/** Deletes the blob `hash` if no uploader holds it any more; 1 when it did. */
export async function releaseBlob({ db, blobs: bucket, logger }: SweepDeps, hash: Uint8Array, now: number) {
  const gone = await db
    .delete(blobs)
    .where(
      and(
        eq(blobs.hash, hash),
        sql`NOT EXISTS (SELECT 1 FROM ${blobAccess} a WHERE a.blob_hash = ${hash} AND a.identity_key = a.owner_key AND a.expires_at > ${now})`,
      ),
    )
    .returning({ storageId: blobs.storageId, size: blobs.size });
  if (gone.length === 0) return 0;
  // Shares of a blob that is gone (unless an upload has just made it again).
  await db
    .delete(blobAccess)
    .where(and(eq(blobAccess.blobHash, hash), sql`NOT EXISTS (SELECT 1 FROM ${blobs} WHERE hash = ${hash})`));
  for (const b of gone) {
    await deleteChunks(bucket, b.storageId, b.size).catch((err: unknown) =>
      logger.error("blob chunks not deleted", { storage: b.storageId, error: String(err) }),
    );
  }
  return gone.length;
}
