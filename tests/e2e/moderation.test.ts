// Moderation end to end over QUIC: a server-wide ban ends the banned user's open session (its
// next call is refused), refuses login and resume; reports reach the administrator named in
// QPQ_ADMIN_IDENTITIES; non-admins cannot ban or list.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Status } from "../../proto/index.ts";
import { banUser, listBanned, listReports, reportMessage, unbanUser } from "../../sdk/moderation.ts";
import { randomIdentity, recordingLogger, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import { callFailure, registerAndLogin } from "../support/users.ts";
import { pushLive, until } from "../support/push.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const CLI = join(import.meta.dirname, "../../sdk/cli.ts");

describe("moderation over QUIC", () => {
  let sys: TestSystem;
  const logger = recordingLogger();
  const adminKey = randomIdentity();

  beforeAll(async () => {
    sys = await startTestSystem({
      env: { QPQ_AUTH_PER_MINUTE: "6000" },
      edgeVars: { QPQ_ADMIN_IDENTITIES: hex(adminKey) },
      logger,
    });
  });

  afterAll(async () => {
    await sys?.stop();
  });

  const user = async (prefix: string, key?: Uint8Array) => registerAndLogin(await sys.connect(), prefix, key);

  it("a banned user's open connection is refused on its next call, and it cannot log in, resume or enqueue", async () => {
    const admin = await user("admin", adminKey);
    const bob = await user("bob");
    const mallory = await user("mallory");
    await pushLive(mallory, bob.client);
    const token = mallory.client.sessionToken!;

    // Reports: anyone files one; only the administrator lists them.
    const evidence = crypto.getRandomValues(new Uint8Array(300));
    const reportId = await reportMessage(bob.client, { reportedKey: mallory.key, evidence, reason: "spam" });
    expect((await callFailure(listReports(bob.client))).status).toBe(Status.Forbidden);
    const reports = await listReports(admin.client);
    const mine = reports.find((r) => hex(r.reportId) === hex(reportId));
    expect(mine && [hex(mine.reporterKey), hex(mine.evidence), mine.reason]).toEqual([
      hex(bob.key),
      hex(evidence),
      "spam",
    ]);

    expect((await callFailure(banUser(bob.client, mallory.key))).status).toBe(Status.Forbidden);
    await banUser(admin.client, mallory.key, { reason: "spam" });
    // The front hears the ban on mallory's push subscription and ends the session...
    await until(
      () =>
        logger.entries.find((e) => e.msg === "session ended by the edge" && e.fields.reason === "banned")
          ? true
          : undefined,
      "the ban's session signal",
    );
    // ...so her open connection's next call is refused, an enqueue included.
    const refused = await callFailure(mallory.client.enqueue({ recipientKey: bob.key, payload: Uint8Array.of(1) }));
    expect(refused.status).toBe(Status.Unauthorized);
    expect(await bob.client.fetch()).toHaveLength(0);

    // No new session: login is Forbidden, the old token does not resume.
    const again = await sys.connect();
    const login = await callFailure(again.login(mallory.name, "pw", mallory.key));
    expect(login.status).toBe(Status.Forbidden);
    expect(login.message).toContain("banned");
    expect((await callFailure(again.resume(token))).status).toBe(Status.Unauthorized);

    expect((await listBanned(admin.client)).map((b) => hex(b.identityKey))).toContain(hex(mallory.key));
    await unbanUser(admin.client, mallory.key);
    await again.login(mallory.name, "pw", mallory.key);
    await again.enqueue({ recipientKey: bob.key, payload: Uint8Array.of(2) });
  });

  it("the CLI manages a group and, for the administrator, reports and bans", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qpq-mod-cli-"));
    try {
      const ca = join(dir, "ca.pem");
      writeFileSync(ca, sys.system.certPem);
      const qpq = (profile: string, args: string[]) =>
        new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
          const env = { PATH: process.env.PATH, HOME: dir, QPQ_PROFILE: join(dir, profile), QPQ_PASSWORD: "pw" };
          const child = execFile(
            process.execPath,
            [CLI, ...args, "--server", `127.0.0.1:${sys.system.quicPort}`, "--ca", ca],
            { env, timeout: 60_000 },
            (err, stdout, stderr) =>
              resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
          );
          child.stdin?.end();
        });
      const [alice, bob] = [uniqueName("cli-a"), uniqueName("cli-b")];
      for (const name of [alice, bob]) {
        expect((await qpq(name, ["register", name])).code).toBe(0);
        expect((await qpq(name, ["login", name])).code).toBe(0);
      }
      const created = await qpq(alice, ["group", "create", "team", bob]);
      expect(created).toMatchObject({ code: 0, stderr: "" });
      const channel = created.stdout.trim();
      expect(channel).toMatch(/^[0-9a-f]{32}$/);
      expect((await qpq(alice, ["group", "ttl", channel, "60"])).code).toBe(0);
      const info = await qpq(bob, ["group", "info", channel]);
      expect(info.stdout).toContain("name\tteam");
      expect(info.stdout).toContain("default ttl\t60s");
      expect(info.stdout.match(/^(creator|member)\t/gm)).toEqual(["creator\t", "member\t"]);
      expect(info.stdout).toMatch(new RegExp(`^member\\t[0-9a-f]{64}\\t${bob}$`, "m"));
      // Bob is a plain member: removing alice is refused, and the CLI says why.
      const refused = await qpq(bob, ["group", "remove", channel, alice]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/Forbidden/);

      const evidence = join(dir, "evidence.bin");
      writeFileSync(evidence, Buffer.from("sealed for the moderators"));
      expect((await qpq(bob, ["report", alice, evidence, "spam"])).code).toBe(0);
      // Only the administrator (its profile holds the configured key) may ban.
      expect((await qpq(bob, ["ban", alice])).code).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
