// Moderation end to end over QUIC: a server-wide ban ends the banned user's open session (its
// next call is refused), refuses login and resume; reports reach the administrator named in
// QPQ_ADMIN_IDENTITIES; non-admins cannot ban or list.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { Status } from "../../proto/index.ts";
import { QpqCallError } from "../../sdk/client.ts";
import { banUser, listBanned, listReports, reportMessage, unbanUser } from "../../sdk/moderation.ts";
import { randomIdentity, recordingLogger, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import { pushLive, until } from "../support/push.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function failure(p: Promise<unknown>): Promise<QpqCallError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof QpqCallError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

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

  async function user(prefix: string, key = randomIdentity()) {
    const client = await sys.connect();
    const name = uniqueName(prefix);
    await client.register(name, "pw", key);
    await client.login(name, "pw", key);
    return { client, key, name };
  }

  it("a banned user's open connection is refused on its next call, and it cannot log in, resume or enqueue", async () => {
    const admin = await user("admin", adminKey);
    const bob = await user("bob");
    const mallory = await user("mallory");
    await pushLive(mallory, bob.client);
    const token = mallory.client.sessionToken!;

    // Reports: anyone files one; only the administrator lists them.
    const evidence = crypto.getRandomValues(new Uint8Array(300));
    const reportId = await reportMessage(bob.client, { reportedKey: mallory.key, evidence, reason: "spam" });
    expect((await failure(listReports(bob.client))).status).toBe(Status.Forbidden);
    const reports = await listReports(admin.client);
    const mine = reports.find((r) => hex(r.reportId) === hex(reportId));
    expect(mine && [hex(mine.reporterKey), hex(mine.evidence), mine.reason]).toEqual([
      hex(bob.key),
      hex(evidence),
      "spam",
    ]);

    expect((await failure(banUser(bob.client, mallory.key))).status).toBe(Status.Forbidden);
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
    const refused = await failure(mallory.client.enqueue({ recipientKey: bob.key, payload: Uint8Array.of(1) }));
    expect(refused.status).toBe(Status.Unauthorized);
    expect(await bob.client.fetch()).toHaveLength(0);

    // No new session: login is Forbidden, the old token does not resume.
    const again = await sys.connect();
    const login = await failure(again.login(mallory.name, "pw", mallory.key));
    expect(login.status).toBe(Status.Forbidden);
    expect(login.message).toContain("banned");
    expect((await failure(again.resume(token))).status).toBe(Status.Unauthorized);

    expect((await listBanned(admin.client)).map((b) => hex(b.identityKey))).toContain(hex(mallory.key));
    await unbanUser(admin.client, mallory.key);
    await again.login(mallory.name, "pw", mallory.key);
    await again.enqueue({ recipientKey: bob.key, payload: Uint8Array.of(2) });
  });
});
