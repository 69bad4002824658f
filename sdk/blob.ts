// Blobs (600/601) for the SDK: upload a file or buffer chunk by chunk, resuming where the server's
// stored bytes end, and download ranges, checking the SHA-256 of a whole download. Memory stays
// one chunk (1 MiB) whatever the blob's size. docs/protocol.md, "Blobs".
import { createHash } from "node:crypto";
import { open, rename, stat, unlink } from "node:fs/promises";
import { Method, pb } from "../proto/index.ts";
import { BLOB_CHUNK_BYTES, BLOB_MAX_BYTES } from "../proto/wire/limits.ts";
import type { QpqClient } from "./client.ts";

/** Where blob bytes come from: a size and random-access reads. */
export interface BlobSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

export function bytesSource(bytes: Uint8Array): BlobSource {
  return { size: bytes.length, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/** A file, read one chunk at a time. Close it when done. */
export async function fileSource(path: string): Promise<BlobSource> {
  const size = (await stat(path)).size;
  const handle = await open(path, "r");
  return {
    size,
    async read(offset, length) {
      const buf = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) throw new Error(`${path} is shorter than it was (${offset + got} of ${size} bytes)`);
        got += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}

/** SHA-256 of a source, read chunk by chunk: the blob's id. */
export async function hashSource(source: BlobSource): Promise<Uint8Array> {
  const h = createHash("sha256");
  for (let at = 0; at < source.size; at += BLOB_CHUNK_BYTES) {
    h.update(await source.read(at, Math.min(BLOB_CHUNK_BYTES, source.size - at)));
  }
  return new Uint8Array(h.digest());
}

export interface UploadStatus {
  /** Bytes the server holds: where the next chunk starts. */
  received: number;
  complete: boolean;
  /** Open upload: when it is dropped if idle; complete: when the blob expires. */
  expiresAtMs: number;
}

export interface PutResult {
  hash: Uint8Array;
  size: number;
  expiresAtMs: number;
  /** Where this call started: above 0 when it resumed an interrupted upload. */
  resumedAt: number;
}

export class BlobError extends Error {
  override name = "BlobError";
}

export class Blobs {
  readonly #client: QpqClient;

  constructor(client: QpqClient) {
    this.#client = client;
  }

  /** How far the caller's upload of `hash` got (0 when none is open); writes nothing. */
  async status(hash: Uint8Array): Promise<UploadStatus> {
    const res = await this.#upload({ blobHash: hash, totalSize: 0, offset: 0, chunk: new Uint8Array(0) });
    return { received: res.received, complete: res.complete, expiresAtMs: res.expiresAtMs };
  }

  /**
   * Uploads `source` (≤ 50 MiB), continuing an interrupted upload of the same bytes where the
   * server's copy ends. `hash` skips hashing when the caller knows it. `stopAt`: stop once this
   * many bytes are stored (to simulate an interruption).
   */
  async put(
    source: BlobSource,
    opts: {
      hash?: Uint8Array;
      shareWith?: Uint8Array[];
      onProgress?: (received: number, total: number) => void;
      stopAt?: number;
    } = {},
  ): Promise<PutResult> {
    if (source.size < 1 || source.size > BLOB_MAX_BYTES) {
      throw new BlobError(`a blob is 1-${BLOB_MAX_BYTES} bytes; this one is ${source.size}`);
    }
    const hash = opts.hash ?? (await hashSource(source));
    const shareWith = opts.shareWith ?? [];
    const start = await this.status(hash);
    if (start.complete) {
      if (shareWith.length > 0) await this.share(hash, shareWith);
      return { hash, size: source.size, expiresAtMs: start.expiresAtMs, resumedAt: source.size };
    }
    let received = start.received;
    let expiresAtMs = start.expiresAtMs;
    while (received < source.size) {
      if (opts.stopAt !== undefined && received >= opts.stopAt) {
        return { hash, size: source.size, expiresAtMs: 0, resumedAt: start.received };
      }
      const chunk = await source.read(received, Math.min(BLOB_CHUNK_BYTES, source.size - received));
      const res = await this.#upload({
        blobHash: hash,
        totalSize: source.size,
        offset: received,
        chunk,
        // Sent with the first chunk this call writes; the server keeps them until completion.
        shareWith: received === start.received ? shareWith : [],
      });
      received = res.received;
      expiresAtMs = res.expiresAtMs;
      opts.onProgress?.(received, source.size);
      if (res.complete) return { hash, size: source.size, expiresAtMs, resumedAt: start.received };
    }
    throw new BlobError("the server stored every byte but did not complete the blob");
  }

  /** Lets `identityKeys` download a blob the caller uploaded. */
  async share(hash: Uint8Array, identityKeys: Uint8Array[]): Promise<void> {
    const res = await this.#upload({
      blobHash: hash,
      totalSize: 0,
      offset: 0,
      chunk: new Uint8Array(0),
      shareWith: identityKeys,
    });
    if (!res.complete) throw new BlobError("only a complete blob the caller uploaded can be shared");
  }

  /** One range: at most one chunk (1 MiB) per call; `length` 0 = a chunk's worth. */
  async read(hash: Uint8Array, offset = 0, length = 0): Promise<{ chunk: Uint8Array; totalSize: number }> {
    const res = await this.#client.call(
      Method.DownloadBlob,
      pb.DownloadBlobRequest,
      { blobHash: hash, offset, length },
      pb.DownloadBlobResponse,
    );
    return { chunk: res.chunk, totalSize: res.totalSize };
  }

  /**
   * Downloads from `offset` to the end, handing each chunk to `sink` in order. Up to `parallel`
   * (default 4) chunk reads are in flight at once, so memory stays that many chunks. `prefixHash`,
   * when given, already holds the SHA-256 state of bytes [0, offset) (a resumed download); the
   * whole blob's hash is then checked against `hash` and a mismatch throws BlobError.
   */
  async get(
    hash: Uint8Array,
    sink: (chunk: Uint8Array, offset: number) => Promise<void> | void,
    opts: { offset?: number; prefixHash?: ReturnType<typeof createHash>; parallel?: number } = {},
  ): Promise<{ size: number }> {
    let at = opts.offset ?? 0;
    const digest = opts.prefixHash ?? (at === 0 ? createHash("sha256") : undefined);
    // The first read tells the size; later ones go ahead of the sink, in order.
    const first = await this.read(hash, at);
    const total = first.totalSize;
    const ahead: { read: Promise<{ chunk: Uint8Array }>; length: number }[] = [];
    let next = at + first.chunk.length;
    const parallel = Math.max(1, opts.parallel ?? 4);
    const fill = () => {
      while (ahead.length < parallel && next < total) {
        const length = Math.min(BLOB_CHUNK_BYTES, total - next);
        const read = this.read(hash, next, length);
        read.catch(() => {}); // awaited in order below; a failure surfaces there
        ahead.push({ read, length });
        next += length;
      }
    };
    let chunk = first.chunk;
    for (;;) {
      if (chunk.length === 0 && at < total) throw new BlobError(`the server sent no bytes at offset ${at}`);
      fill();
      digest?.update(chunk);
      await sink(chunk, at);
      at += chunk.length;
      const pending = ahead.shift();
      if (!pending) break;
      chunk = (await pending.read).chunk;
      if (chunk.length !== pending.length) {
        throw new BlobError(`the server sent ${chunk.length} bytes at offset ${at}, not ${pending.length}`);
      }
    }
    if (at !== total) throw new BlobError(`the download ended at ${at} of ${total} bytes`);
    if (digest && !equal(new Uint8Array(digest.digest()), hash)) {
      throw new BlobError("the downloaded bytes do not hash to the blob id");
    }
    return { size: total };
  }

  /** The whole blob in memory (small blobs; use get for large ones). */
  async getBytes(hash: Uint8Array): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    const { size } = await this.get(hash, (chunk) => void parts.push(chunk));
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  #upload(req: {
    blobHash: Uint8Array;
    totalSize: number;
    offset: number;
    chunk: Uint8Array;
    shareWith?: Uint8Array[];
  }) {
    return this.#client.call(Method.UploadBlob, pb.UploadBlobRequest, { shareWith: [], ...req }, pb.UploadBlobResponse);
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Uploads the file at `path` (resuming an interrupted upload of it); the blob id is its SHA-256. */
export async function putFile(
  blobs: Blobs,
  path: string,
  opts: { shareWith?: Uint8Array[]; onProgress?: (received: number, total: number) => void } = {},
): Promise<PutResult> {
  const source = await fileSource(path);
  try {
    return await blobs.put(source, opts);
  } finally {
    await source.close?.();
  }
}

/**
 * Downloads blob `hash` into `path`: bytes go to `<path>.part` as they arrive, so a download cut
 * off continues from there when called again (the part already there is hashed first); the file
 * gets its name once the whole blob's SHA-256 matched. Returns the size and where it resumed.
 */
export async function getFile(
  blobs: Blobs,
  hash: Uint8Array,
  path: string,
): Promise<{ size: number; resumedAt: number }> {
  const partPath = `${path}.part`;
  const part = await open(partPath, "a+");
  try {
    const have = (await part.stat()).size;
    const prefixHash = createHash("sha256");
    for (let at = 0; at < have; at += BLOB_CHUNK_BYTES) {
      const buf = new Uint8Array(Math.min(BLOB_CHUNK_BYTES, have - at));
      await part.read(buf, 0, buf.length, at);
      prefixHash.update(buf);
    }
    const { size } = await blobs.get(hash, async (chunk) => void (await part.write(chunk)), {
      offset: have,
      prefixHash,
    });
    await part.close();
    await rename(partPath, path);
    return { size, resumedAt: have };
  } catch (err) {
    await part.close().catch(() => {});
    // A part that does not hash right is of no use for a retry.
    if (err instanceof BlobError) await unlink(partPath).catch(() => {});
    throw err;
  }
}
