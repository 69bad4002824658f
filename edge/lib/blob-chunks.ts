// Blob bytes in R2: one object per 1 MiB chunk, `blob/<storage id>/<chunk index>`, so an upload
// writes one chunk per request and a download reads at most two, and neither ever holds more
// than a chunk in memory. D1 (tables blobs, blob_uploads) says which chunk sets are visible.
import { BLOB_CHUNK_BYTES } from "../../proto/wire/limits.ts";
import { concatBytes } from "./crypto.ts";

/** How many chunks a blob of `size` bytes has. */
export function chunkCount(size: number): number {
  return Math.ceil(size / BLOB_CHUNK_BYTES);
}

/** The length chunk `index` of a `size`-byte blob must have: a full chunk, or the remainder for the last. */
export function chunkLength(size: number, index: number): number {
  return Math.max(0, Math.min(BLOB_CHUNK_BYTES, size - index * BLOB_CHUNK_BYTES));
}

export function chunkKey(storageId: string, index: number): string {
  return `blob/${storageId}/${index}`;
}

/** A fresh storage id: 16 random bytes, hex. */
export function newStorageId(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function putChunk(bucket: R2Bucket, storageId: string, index: number, bytes: Uint8Array): Promise<void> {
  await bucket.put(chunkKey(storageId, index), bytes);
}

/** Deletes every chunk a `size`-byte blob can have (missing ones are fine). */
export async function deleteChunks(bucket: R2Bucket, storageId: string, size: number): Promise<void> {
  const keys = Array.from({ length: chunkCount(size) }, (_, i) => chunkKey(storageId, i));
  // R2 deletes at most 1000 keys per call; a 50 MiB blob has 50.
  for (let i = 0; i < keys.length; i += 1000) await bucket.delete(keys.slice(i, i + 1000));
}

/**
 * SHA-256 of the `size` bytes stored as chunks of `storageId`, streamed chunk by chunk (memory:
 * one read buffer, not the blob), or null when a chunk is missing or has the wrong length.
 */
export async function hashChunks(bucket: R2Bucket, storageId: string, size: number): Promise<Uint8Array | null> {
  const digest = new crypto.DigestStream("SHA-256");
  for (let i = 0; i < chunkCount(size); i++) {
    const object = await bucket.get(chunkKey(storageId, i));
    if (!object || object.size !== chunkLength(size, i)) {
      if (object) await object.body.cancel();
      await digest.abort();
      return null;
    }
    await object.body.pipeTo(digest, { preventClose: true });
  }
  await digest.close();
  return new Uint8Array(await digest.digest);
}

/**
 * Bytes [offset, offset + length) of a `size`-byte blob; the range must lie within the blob and
 * span at most two chunks (length <= one chunk). Throws when a chunk is missing.
 */
export async function readRange(
  bucket: R2Bucket,
  storageId: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  if (length === 0) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let at = offset;
  const end = offset + length;
  while (at < end) {
    const index = Math.floor(at / BLOB_CHUNK_BYTES);
    const within = at - index * BLOB_CHUNK_BYTES;
    const take = Math.min(end - at, BLOB_CHUNK_BYTES - within);
    const object = await bucket.get(chunkKey(storageId, index), { range: { offset: within, length: take } });
    if (!object) throw new Error(`blob chunk ${chunkKey(storageId, index)} is missing`);
    const bytes = new Uint8Array(await object.arrayBuffer());
    if (bytes.length !== take) throw new Error(`blob chunk ${chunkKey(storageId, index)} is short`);
    parts.push(bytes);
    at += take;
  }
  return parts.length === 1 ? (parts[0] as Uint8Array) : concatBytes(...parts);
}
