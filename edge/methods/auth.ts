// 100-104: OPAQUE registration and login, session resume. The password never reaches the server;
// tokens are stored only as SHA-256 digests; every answer takes at least LIMITS.authFloorMs.
import { and, eq, gt, lt } from "drizzle-orm";
import { Method, pb, badRequest, unauthorized } from "../../proto/index.ts";
import { unary, type MethodSpec, type MethodTable, type RpcContext } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { concatBytes, equalBytes, randomBytes, sha256 } from "../lib/crypto.ts";
import * as opaque from "../lib/opaque.ts";
import { users, sessions, pendingLogins } from "../../schema/tables.ts";

const encoder = new TextEncoder();
const LOGIN_FAILED = "login failed";
const OPAQUE_RECORD_BYTES = 192;

/** Answers no faster than the floor, so timing does not reveal whether a user exists. */
function withFloor(spec: MethodSpec): MethodSpec {
  return {
    auth: spec.auth,
    async handle(ctx, payload) {
      const floor = new Promise((r) => setTimeout(r, LIMITS.authFloorMs));
      try {
        return await spec.handle(ctx, payload);
      } finally {
        await floor;
      }
    },
  };
}

async function opaqueStep<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof opaque.OpaqueInputError) throw badRequest(`malformed OPAQUE message (${err.field ?? "input"})`);
    throw err;
  }
}

/** A pending login belongs to one connection and one username. */
async function pendingLoginId(ctx: RpcContext, username: string): Promise<Uint8Array> {
  return sha256(concatBytes(encoder.encode(ctx.connectionId), Uint8Array.of(0), encoder.encode(username)));
}

export async function hashToken(token: Uint8Array): Promise<Uint8Array> {
  return sha256(token);
}

export const authMethods: MethodTable = {
  [Method.OpaqueRegisterStart]: withFloor(unary("none", pb.OpaqueRegisterStartRequest, pb.OpaqueRegisterStartResponse, async (ctx, req) => {
    const username = v.username(req.username);
    // Stores nothing: a taken name is reported at finish, so start does not enumerate users.
    const response = await opaqueStep(() => opaque.registrationResponse(ctx.deps.opaqueSetup, username, req.request));
    return { response };
  })),

  [Method.OpaqueRegisterFinish]: withFloor(unary("none", pb.OpaqueRegisterFinishRequest, pb.OpaqueRegisterFinishResponse, async (ctx, req) => {
    const username = v.username(req.username);
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    // A ristretto255 OPAQUE registration record is exactly 192 bytes; anything else would make
    // later logins for this name fail in a way that reveals the name exists.
    if (req.upload.length !== OPAQUE_RECORD_BYTES) {
      throw badRequest(`upload must be a ${OPAQUE_RECORD_BYTES}-byte OPAQUE registration record, got ${req.upload.length}`);
    }
    // ON CONFLICT DO NOTHING covers both the username and the identity-key uniqueness.
    const result = await ctx.deps.db.insert(users).values({
      username, identityKey, opaqueRecord: req.upload, createdAt: Date.now(),
    }).onConflictDoNothing().run();
    return { success: result.meta.changes === 1 };
  })),

  [Method.OpaqueLoginStart]: withFloor(unary("none", pb.OpaqueLoginStartRequest, pb.OpaqueLoginStartResponse, async (ctx, req) => {
    const username = v.username(req.username);
    const { db } = ctx.deps;
    const user = await db.select({ record: users.opaqueRecord }).from(users).where(eq(users.username, username)).get();
    // Unknown users get the library's fake response, indistinguishable from a real one.
    const { state, response } = await opaqueStep(() =>
      opaque.loginStart(ctx.deps.opaqueSetup, username, user ? user.record : null, req.request));
    const now = Date.now();
    const id = await pendingLoginId(ctx, username);
    await db.batch([
      db.delete(pendingLogins).where(lt(pendingLogins.expiresAt, now)),
      db.insert(pendingLogins).values({ id, username, serverState: state, expiresAt: now + LIMITS.pendingLoginMs })
        .onConflictDoUpdate({ target: pendingLogins.id, set: { serverState: state, expiresAt: now + LIMITS.pendingLoginMs } }),
    ]);
    return { response };
  })),

  [Method.OpaqueLoginFinish]: withFloor(unary("none", pb.OpaqueLoginFinishRequest, pb.OpaqueLoginFinishResponse, async (ctx, req) => {
    const username = v.username(req.username);
    const identityKey = v.identityKey(req.identityKey, "identity_key");
    const { db } = ctx.deps;
    const now = Date.now();
    // Consumed by this statement whatever happens next: a login state is single-use.
    const pending = await db.delete(pendingLogins)
      .where(and(eq(pendingLogins.id, await pendingLoginId(ctx, username)), gt(pendingLogins.expiresAt, now)))
      .returning({ state: pendingLogins.serverState }).get();
    if (!pending) throw unauthorized("no login in progress on this connection (or it expired)");
    const sessionKey = await opaqueStep(() => opaque.loginFinish(pending.state, req.finalization));
    if (!sessionKey) throw unauthorized(LOGIN_FAILED);
    const user = await db.select({ identityKey: users.identityKey }).from(users).where(eq(users.username, username)).get();
    if (!user || !equalBytes(user.identityKey, identityKey)) throw unauthorized(LOGIN_FAILED);

    const token = randomBytes(32);
    const expiresAt = now + ctx.deps.sessionTtlMs;
    const deviceId = new Uint8Array(0);
    await db.batch([
      db.delete(sessions).where(and(eq(sessions.identityKey, identityKey), lt(sessions.expiresAt, now))),
      db.insert(sessions).values({ tokenHash: await hashToken(token), identityKey, deviceId, createdAt: now, expiresAt }),
    ]);
    ctx.session = { identityKey, deviceId, sessionExpiresAt: expiresAt };
    return { sessionToken: token };
  })),

  [Method.SessionResume]: withFloor(unary("none", pb.SessionResumeRequest, pb.SessionResumeResponse, async (ctx, req) => {
    const deviceId = v.deviceId(req.deviceId);
    if (req.accessToken.length !== 32) throw unauthorized();
    const row = await ctx.deps.db.select().from(sessions)
      .where(and(eq(sessions.tokenHash, await hashToken(req.accessToken)), gt(sessions.expiresAt, Date.now()))).get();
    if (!row) throw unauthorized();
    const identityKey = row.identityKey;
    ctx.session = { identityKey, deviceId, sessionExpiresAt: row.expiresAt };
    return { identityKey, expiresAtMs: row.expiresAt };
  })),
};

