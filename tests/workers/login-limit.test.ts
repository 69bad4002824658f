// Login attempts per username (LIMITS.loginAttemptsPerUsername), kept in D1 so every front and
// isolate sees the same bucket: 10 at once, then one a minute, for known and unknown names alike.
import { describe, it, expect, beforeAll } from "vitest";
import { drizzle } from "drizzle-orm/d1";
import { Method, Status, pb } from "../../proto/index.ts";
import { LIMITS } from "../../edge/lib/limits.ts";
import { takeLoginAttempt } from "../../edge/lib/login-limit.ts";
import * as tables from "../../schema/tables.ts";
import { env, errorOf, rpc } from "./helpers.ts";
import { client, fromB64u, opaqueReady, register } from "./opaque-client.ts";

const db = drizzle(env.DB, { schema: tables });
let counter = 0;
const uniqueName = (base: string) => `${base}-${Date.now().toString(36)}-${++counter}`;

function loginStart(username: string, connection: string) {
  const start = client.startLogin({ password: "whatever" });
  return rpc(
    Method.OpaqueLoginStart,
    pb.OpaqueLoginStartRequest.encode({ username, request: fromB64u(start.startLoginRequest) }).finish(),
    { connection },
  );
}

beforeAll(opaqueReady);

describe("login attempts per username", () => {
  it(`allows ${LIMITS.loginAttemptsPerUsername.burst} LoginStarts for one name from any connections, then RateLimited with a retry time`, async () => {
    const { burst } = LIMITS.loginAttemptsPerUsername;
    const alice = uniqueName("alice");
    expect(await register(alice, "alice password", crypto.getRandomValues(new Uint8Array(32)))).toBe(true);
    // Different connections, as if through different fronts and addresses: one shared bucket.
    for (let i = 0; i < burst; i++) expect((await loginStart(alice, `front-${i}/conn`)).status).toBe(Status.Ok);
    const refused = await loginStart(alice, "front-x/conn");
    expect(refused.status).toBe(Status.RateLimited);
    const { message, retryAfterMs } = errorOf(refused);
    expect(message).toBe("too many login attempts for this username");
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(60_000);
    // Another name is not affected.
    expect((await loginStart(uniqueName("bob"), "front-x/conn")).status).toBe(Status.Ok);
  });

  it("treats an unknown name exactly like a known one", async () => {
    const ghost = uniqueName("nobody");
    for (let i = 0; i < LIMITS.loginAttemptsPerUsername.burst; i++)
      expect((await loginStart(ghost, "c")).status).toBe(Status.Ok);
    expect((await loginStart(ghost, "c")).status).toBe(Status.RateLimited);
  });

  it("refills at the configured rate; refusals do not push the wait further out", async () => {
    const limit = { burst: 3, perMinute: 2 };
    const name = uniqueName("bucket");
    const t0 = 1_000_000_000;
    for (let i = 0; i < 3; i++) expect(await takeLoginAttempt(db, name, t0, limit)).toBe(0);
    expect(await takeLoginAttempt(db, name, t0, limit)).toBe(30_000);
    // Hammering while refused changes nothing...
    for (let i = 0; i < 5; i++) expect(await takeLoginAttempt(db, name, t0 + 10_000, limit)).toBe(20_000);
    // ...so one attempt is back after 30 s, and only one.
    expect(await takeLoginAttempt(db, name, t0 + 30_000, limit)).toBe(0);
    expect(await takeLoginAttempt(db, name, t0 + 30_000, limit)).toBe(30_000);
    // Refilled completely: the row is dropped by the next attempt of anyone, and the name starts full.
    await takeLoginAttempt(db, uniqueName("other"), t0 + 10 * 60_000, limit);
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM login_attempts WHERE updated_at <= ?")
      .bind(t0 + 30_000)
      .first<{ n: number }>();
    expect(rows?.n).toBe(0);
    for (let i = 0; i < 3; i++) expect(await takeLoginAttempt(db, name, t0 + 10 * 60_000, limit)).toBe(0);
  });
});
