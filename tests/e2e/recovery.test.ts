// Recovery over QUIC through two fronts over one edge: a user who lost every device fetches the
// bundle without a session; the fetch limit per token holds across both fronts (the edge counts
// in D1), so switching fronts gains an attacker nothing.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Status } from "../../proto/index.ts";
import { newRecoveryToken } from "../../sdk/recovery.ts";
import { randomIdentity, startExtraFront, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import { callFailure } from "../support/users.ts";

const CLI = join(import.meta.dirname, "../../sdk/cli.ts");

describe("recovery over QUIC, two fronts", () => {
  let sys: TestSystem;
  let frontB: Awaited<ReturnType<typeof startExtraFront>>;

  beforeAll(async () => {
    sys = await startTestSystem();
    frontB = await startExtraFront(sys);
  });

  afterAll(async () => {
    await frontB?.stop();
    await sys?.stop();
  });

  it("qpq recovery setup, then restore on a machine without the profile, then login", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qpq-recovery-"));
    try {
      const server = `127.0.0.1:${sys.system.quicPort}`;
      const ca = join(dir, "ca.pem");
      writeFileSync(ca, sys.system.certPem);
      const qpq = (args: string[], profileDir: string) =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          const env = { PATH: process.env.PATH, HOME: dir, QPQ_PROFILE: profileDir, QPQ_PASSWORD: "pw" };
          const child = execFile(
            process.execPath,
            [CLI, ...args, "--server", server, "--ca", ca],
            { env, timeout: 60_000 },
            (err, stdout, stderr) =>
              resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
          );
          child.stdin?.end();
        });
      const name = uniqueName("rec");
      const [oldDir, newDir] = [join(dir, "old"), join(dir, "new")];
      expect((await qpq(["register", name], oldDir)).code).toBe(0);
      expect((await qpq(["login", name], oldDir)).code).toBe(0);
      const setup = await qpq(["recovery", "setup"], oldDir);
      expect(setup.code).toBe(0);
      const token = setup.stdout.trim();
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

      // The old machine is gone; the new one has only the token.
      const restored = await qpq(["recovery", "restore", token], newDir);
      expect(restored).toMatchObject({ code: 0, stdout: `restored ${name}; now run: qpq login ${name}\n` });
      const before = JSON.parse(readFileSync(join(oldDir, `${name}.json`), "utf8")) as Record<string, unknown>;
      const after = JSON.parse(readFileSync(join(newDir, `${name}.json`), "utf8")) as Record<string, unknown>;
      expect(after.identityKey).toBe(before.identityKey);
      expect(after.privateKey).toBe(before.privateKey);
      expect((await qpq(["login", name], newDir)).code).toBe(0);

      // A wrong token: refused, exit 1.
      const wrong = await qpq(
        ["recovery", "restore", token.slice(0, -2) + (token.endsWith("AA") ? "AB" : "AA")],
        join(dir, "x"),
      );
      expect(wrong.code).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fetches the bundle without a session, and refuses the fourth fetch of a token on either front", async () => {
    const owner = await sys.connect();
    const name = uniqueName("recover");
    const identity = randomIdentity();
    await owner.register(name, "pw", identity);
    await owner.login(name, "pw", identity);
    const token = newRecoveryToken();
    const secret = new TextEncoder().encode("identity key and MLS state, sealed by the client");
    await owner.recovery.store(token, secret);

    // New devices, never logged in, one on each front.
    const viaA = await sys.connect();
    const viaB = await frontB.connect();
    expect(Buffer.from(await viaA.recovery.fetch(token)).toString()).toBe(Buffer.from(secret).toString());
    expect(Buffer.from(await viaB.recovery.fetch(token)).toString()).toBe(Buffer.from(secret).toString());
    await viaA.recovery.fetch(token);
    // Three fetches per token in all, not per front.
    for (const client of [viaB, viaA]) {
      const refused = await callFailure(client.recovery.fetch(token));
      expect(refused.status).toBe(Status.RateLimited);
      expect(refused.retryAfterMs).toBeGreaterThan(0);
    }
    // Another token is limited on its own (its bundle does not exist: NotFound, not RateLimited).
    expect((await callFailure(viaB.recovery.fetch(newRecoveryToken()))).status).toBe(Status.NotFound);
    // Storing still needs a session.
    expect((await callFailure(viaB.recovery.store(newRecoveryToken(), secret))).status).toBe(Status.Unauthorized);
  });
});
