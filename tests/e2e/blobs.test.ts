// Blobs end to end over QUIC, against the real edge (Miniflare R2 and D1): a 50 MiB upload cut
// off at 30 MiB resumes on a new connection and round-trips byte for byte; only the uploader and
// those it shared with can download; `qpq blob put|get` with --share and a resumed download.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Status } from "../../proto/index.ts";
import { BLOB_CHUNK_BYTES, BLOB_MAX_BYTES } from "../../proto/wire/limits.ts";
import { QpqCallError } from "../../sdk/client.ts";
import { bytesSource } from "../../sdk/blob.ts";
import { startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import { registerAndLogin } from "../support/users.ts";

const MiB = BLOB_CHUNK_BYTES;
const CLI = join(import.meta.dirname, "../../sdk/cli.ts");

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

describe("blobs over QUIC", () => {
  let sys: TestSystem;
  let dir: string;

  beforeAll(async () => {
    sys = await startTestSystem();
    dir = mkdtempSync(join(tmpdir(), "qpq-blobs-"));
  });

  afterAll(async () => {
    await sys?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const user = async (prefix: string) => registerAndLogin(await sys.connect(), prefix);

  it(
    "a 50 MiB upload cut off at 30 MiB resumes on a new connection, then round-trips",
    { timeout: 300_000 },
    async () => {
      const data = randomFillSync(new Uint8Array(BLOB_MAX_BYTES));
      const hash = sha256(data);
      const alice = await user("blob50");
      const started = performance.now();
      const cut = 30 * MiB;
      // The connection goes away once 30 MiB are stored: the next chunk never gets through.
      const interrupted = alice.client.blobs.put(bytesSource(data), {
        hash,
        onProgress: (received) => {
          if (received >= cut) void alice.client.close();
        },
      });
      await expect(interrupted).rejects.toThrow();

      const again = await sys.connect();
      await again.login(alice.name, "pw", alice.key);
      expect(await again.blobs.status(hash)).toMatchObject({ received: cut, complete: false });
      // Nothing is visible before the last chunk verified.
      const early = await again.blobs.read(hash).catch((err: unknown) => err);
      expect(early).toBeInstanceOf(QpqCallError);
      expect((early as QpqCallError).status).toBe(Status.NotFound);

      const done = await again.blobs.put(bytesSource(data), { hash });
      expect(done.resumedAt).toBe(cut);
      expect(done.size).toBe(data.length);
      const uploadedMs = performance.now() - started;

      const back = await again.blobs.getBytes(hash);
      const totalMs = performance.now() - started;
      expect(back.length).toBe(data.length);
      expect(Buffer.compare(back, data)).toBe(0);
      // For the report: 50 MiB up and 50 MiB down over loopback QUIC through the edge.
      console.info(
        `50 MiB blob: upload (with the interruption) ${Math.round(uploadedMs)} ms, download ${Math.round(totalMs - uploadedMs)} ms`,
      );
      // A range in the middle, across a chunk boundary.
      const mid = await again.blobs.read(hash, 20 * MiB - 5, 10);
      expect(Buffer.compare(mid.chunk, data.subarray(20 * MiB - 5, 20 * MiB + 5))).toBe(0);
    },
  );

  it("only the uploader and the identities it shared with can download", async () => {
    const [alice, bob, eve] = [await user("owner"), await user("friend"), await user("other")];
    const data = randomFillSync(new Uint8Array(MiB + 3));
    const { hash } = await alice.client.blobs.put(bytesSource(data), { shareWith: [bob.key] });
    expect(Buffer.compare(await bob.client.blobs.getBytes(hash), data)).toBe(0);
    const refused = await eve.client.blobs.read(hash).catch((err: unknown) => err);
    expect((refused as QpqCallError).status).toBe(Status.NotFound);
    await alice.client.blobs.share(hash, [eve.key]);
    expect(Buffer.compare(await eve.client.blobs.getBytes(hash), data)).toBe(0);
  });

  it("keeps blobs and open uploads across a restart (R2 persisted under the data directory)", async () => {
    const alice = await user("persist");
    const done = randomFillSync(new Uint8Array(MiB + 9));
    const { hash } = await alice.client.blobs.put(bytesSource(done));
    const half = randomFillSync(new Uint8Array(2 * MiB + 1));
    const halfHash = sha256(half);
    await alice.client.blobs.put(bytesSource(half), { hash: halfHash, stopAt: MiB });
    await sys.restart();
    const again = await sys.connect();
    await again.login(alice.name, "pw", alice.key);
    expect(Buffer.compare(await again.blobs.getBytes(hash), done)).toBe(0);
    expect((await again.blobs.status(halfHash)).received).toBe(MiB);
    expect((await again.blobs.put(bytesSource(half), { hash: halfHash })).resumedAt).toBe(MiB);
    expect(Buffer.compare(await again.blobs.getBytes(halfHash), half)).toBe(0);
  });

  it("qpq blob put --share and qpq blob get, resuming a cut-off download", async () => {
    const server = `127.0.0.1:${sys.system.quicPort}`;
    const ca = join(dir, "ca.pem");
    writeFileSync(ca, sys.system.certPem);
    const qpq = (args: string[], profileDir: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const env: NodeJS.ProcessEnv = {
          PATH: process.env.PATH,
          HOME: dir,
          QPQ_PROFILE: profileDir,
          QPQ_PASSWORD: "pw",
        };
        const child = execFile(
          process.execPath,
          [CLI, ...args, "--server", server, "--ca", ca],
          { env, timeout: 120_000 },
          (err, stdout, stderr) =>
            resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
        );
        child.stdin?.end();
      });
    const [alice, bob] = [uniqueName("clia"), uniqueName("clib")];
    const [aliceDir, bobDir] = [join(dir, "a"), join(dir, "b")];
    for (const [name, d] of [
      [alice, aliceDir],
      [bob, bobDir],
    ] as const) {
      expect((await qpq(["register", name], d)).code).toBe(0);
      expect((await qpq(["login", name], d)).code).toBe(0);
    }
    const file = join(dir, "photo.bin");
    const data = randomFillSync(new Uint8Array(3 * MiB + 777));
    writeFileSync(file, data);
    const put = await qpq(["blob", "put", file, "--share", bob], aliceDir);
    expect(put).toMatchObject({ code: 0, stderr: "" });
    const id = put.stdout.trim();
    expect(id).toBe(Buffer.from(sha256(data)).toString("hex"));
    // Putting it again finds it complete.
    expect((await qpq(["blob", "put", file], aliceDir)).stdout.trim()).toBe(id);

    // Bob's earlier download stopped after 1 MiB + 10 bytes: it continues from there.
    const target = join(dir, "copy.bin");
    writeFileSync(`${target}.part`, data.subarray(0, MiB + 10));
    const got = await qpq(["blob", "get", id, target], bobDir);
    expect(got).toMatchObject({ code: 0, stdout: `${target}: ${data.length} bytes (resumed at byte ${MiB + 10})\n` });
    expect(Buffer.compare(readFileSync(target), data)).toBe(0);

    // Someone it was not shared with: refused, exit 1.
    const carolDir = join(dir, "c");
    const carol = uniqueName("clic");
    await qpq(["register", carol], carolDir);
    await qpq(["login", carol], carolDir);
    const refused = await qpq(["blob", "get", id, join(dir, "nope.bin")], carolDir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/NotFound/);
  });
});
