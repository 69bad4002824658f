// Key transparency end to end over QUIC: registration logs the binding, the SDK verifies the
// inclusion proof, the signed head and consistency with the head it saw before, and refuses a
// tampered answer, a head signed by another key and a log that does not extend what it saw;
// `qpq resolve` prints the verified key and keeps the head in the profile.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Method, Status, pb } from "../../proto/index.ts";
import { leafHash } from "../../proto/kt/merkle.ts";
import { verifyResolution } from "../../proto/kt/verify.ts";
import { KtVerificationError, type QpqClient } from "../../sdk/client.ts";
import type { QuicTransport } from "../../sdk/transport.ts";
import { randomIdentity, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";

const CLI = join(import.meta.dirname, "../../sdk/cli.ts");

describe("key transparency over QUIC", () => {
  let sys: TestSystem;
  let alice: QpqClient<QuicTransport>;
  const aliceName = uniqueName("alice");
  const bobName = uniqueName("bob");
  const aliceKey = randomIdentity();
  const bobKey = randomIdentity();

  async function registered(name: string, key: Uint8Array): Promise<void> {
    const c = await sys.connect();
    try {
      expect(await c.register(name, `${name} pw`, key)).toBe(true);
    } finally {
      await c.close();
    }
  }

  beforeAll(async () => {
    sys = await startTestSystem();
    await registered(aliceName, aliceKey);
    await registered(bobName, bobKey);
    alice = await sys.connect();
    await alice.login(aliceName, `${aliceName} pw`, aliceKey);
  });

  afterAll(async () => {
    await sys?.stop();
  });

  it("resolves with a verified proof, then verifies that the next head extends the first", async () => {
    const first = await alice.resolveUserVerified(bobName);
    expect(first.identityKey).toEqual(bobKey);
    expect(first.pinnedNow).toBe(true);
    expect(alice.kt.publicKey).toEqual((await alice.health()).ktPublicKey);
    expect(first.entry).toMatchObject({ kind: "binding", username: bobName });

    await registered(uniqueName("carol"), randomIdentity());
    const second = await alice.resolveUserVerified(bobName);
    expect(second.pinnedNow).toBe(false);
    expect(second.previous?.treeSize).toBe(first.head.treeSize);
    expect(second.head.treeSize).toBeGreaterThan(first.head.treeSize);
    expect(second.leafIndex).toBe(first.leafIndex);
    expect(alice.kt.head?.treeSize).toBe(second.head.treeSize);
  });

  it("refuses a tampered answer (path, entry or head) that came over the wire", async () => {
    const raw = await alice.raw(Method.ResolveUser, pb.ResolveUserRequest.encode({ username: bobName }).finish());
    expect(raw.status).toBe(Status.Ok);
    const publicKey = alice.kt.publicKey ?? new Uint8Array(0);
    await verifyResolution(bobName, pb.ResolveUserResponse.decode(raw.payload), publicKey);
    const tampered = (mutate: (bytes: ReturnType<typeof pb.ResolveUserResponse.decode>) => void) => {
      const res = pb.ResolveUserResponse.decode(raw.payload);
      mutate(res);
      return verifyResolution(bobName, res, publicKey);
    };
    await expect(
      tampered((r) => {
        r.proof?.path?.[0]?.fill(0);
      }),
    ).rejects.toBeInstanceOf(KtVerificationError);
    await expect(
      tampered((r) => {
        r.identityKey = randomIdentity();
      }),
    ).rejects.toMatchObject({ failure: "wrong-entry" });
    await expect(
      tampered((r) => {
        if (r.treeHead) r.treeHead.timestampMs = (r.treeHead.timestampMs ?? 0) + 1;
      }),
    ).rejects.toMatchObject({ failure: "unsigned-head" });
  });

  it("the SDK refuses a head signed by another key, or one that does not extend the head it saw", async () => {
    const c = await sys.connect();
    try {
      await c.login(aliceName, `${aliceName} pw`, aliceKey);
      c.kt = { publicKey: randomIdentity() };
      await expect(c.resolveUser(bobName)).rejects.toMatchObject({ failure: "unsigned-head" });
      const pinned = alice.kt.publicKey;
      const seen = alice.kt.head;
      expect(seen).toBeDefined();
      if (!seen) return;
      // A head this client "saw" that the log never had: the real log cannot prove it extends it.
      const forged = { ...seen, root: leafHash(Uint8Array.of(7)) };
      c.kt = { publicKey: pinned, head: forged };
      await expect(c.resolveUser(bobName)).rejects.toMatchObject({ failure: "inconsistent" });
      expect(c.kt.head).toEqual(forged); // a refused answer never becomes the trusted head
    } finally {
      await c.close();
    }
  });

  it("qpq resolve prints the verified key, keeps the head, and refuses when the log does not extend it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qpq-kt-"));
    try {
      const ca = join(dir, "ca.pem");
      writeFileSync(ca, sys.system.certPem);
      const qpq = (args: string[]) =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          const env = {
            PATH: process.env.PATH,
            HOME: dir,
            QPQ_PROFILE: join(dir, "profiles"),
            QPQ_PASSWORD: "dave pw",
          };
          const child = execFile(
            process.execPath,
            [CLI, ...args, "--server", `127.0.0.1:${sys.system.quicPort}`, "--ca", ca],
            { env, timeout: 60_000 },
            (err, stdout, stderr) =>
              resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
          );
          child.stdin?.end();
        });
      const dave = uniqueName("dave");
      expect((await qpq(["register", dave])).code).toBe(0);
      expect((await qpq(["login", dave])).code).toBe(0);

      const first = await qpq(["resolve", bobName]);
      expect(first).toMatchObject({ code: 0, stderr: "" });
      expect(first.stdout).toContain(`identity  ${Buffer.from(bobKey).toString("hex")}\n`);
      expect(first.stdout).toMatch(/proof {5}verified: binding at leaf \d+ of a \d+-entry log/);
      expect(first.stdout).toContain("first tree head seen; log key pinned now");
      expect(first.stdout).toContain("revoked   no");

      const again = await qpq(["resolve", bobName]);
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/log {7}consistent with the \d+-entry tree head seen before/);

      // The profile's head replaced by one the log never had: the CLI refuses and prints no key.
      const file = join(dir, "profiles", `${dave}.json`);
      const profile = JSON.parse(readFileSync(file, "utf8")) as { kt: { root: string } };
      profile.kt.root = Buffer.from(leafHash(Uint8Array.of(9))).toString("base64url");
      writeFileSync(file, JSON.stringify(profile), { mode: 0o600 });
      const refused = await qpq(["resolve", bobName]);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toContain(`refusing the key the server gave for ${bobName}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
