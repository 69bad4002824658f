// Recovery over QUIC through two fronts over one edge: a user who lost every device fetches the
// bundle without a session; the fetch limit per token holds across both fronts (the edge counts
// in D1), so switching fronts gains an attacker nothing.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { Status } from "../../proto/index.ts";
import { QpqCallError } from "../../sdk/client.ts";
import { newRecoveryToken } from "../../sdk/recovery.ts";
import { randomIdentity, startExtraFront, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";

async function failure(p: Promise<unknown>): Promise<QpqCallError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof QpqCallError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

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
      const refused = await failure(client.recovery.fetch(token));
      expect(refused.status).toBe(Status.RateLimited);
      expect(refused.retryAfterMs).toBeGreaterThan(0);
    }
    // Another token is limited on its own (its bundle does not exist: NotFound, not RateLimited).
    expect((await failure(viaB.recovery.fetch(newRecoveryToken()))).status).toBe(Status.NotFound);
    // Storing still needs a session.
    expect((await failure(viaB.recovery.store(newRecoveryToken(), secret))).status).toBe(Status.Unauthorized);
  });
});
