// 100-104: OPAQUE registration and login, session resume. The password never reaches the server;
// tokens are stored only as SHA-256 digests; every answer takes at least LIMITS.authFloorMs.
import { and, eq, gt, isNull, lt, sql } from "drizzle-orm";
import { Method, pb, badRequest, forbidden, rateLimited, unauthorized } from "../../proto/index.ts";
import { unary, type MethodSpec, type MethodTable, type RpcContext } from "../rpc.ts";
import * as v from "../lib/validate.ts";
import { LIMITS } from "../lib/limits.ts";
import { concatBytes, equalBytes, randomBytes, sha256 } from "../lib/crypto.ts";
import { encodeUtf8 } from "../../proto/util/text.ts";
import { markRegistered, queueOf } from "../durable/recipient-queue-client.ts";
import { accepted } from "../durable/refusable.ts";
import { appendBinding } from "../durable/kt-log.ts";
import * as opaque from "../lib/opaque.ts";
import { takeLoginAttempt } from "../lib/login-limit.ts";
import { isBrokenRecord, recordIsUsable } from "../lib/opaque-record.ts";
import { users, sessions, pendingLogins, pendingRegistrations, devices } from "../../schema/tables.ts";
import { refuseBanned } from "../lib/bans.ts";

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

/** A pending login or registration belongs to one connection and one username. */
async function pendingId(ctx: RpcContext, username: string): Promise<Uint8Array> {
  return sha256(concatBytes(encodeUtf8(ctx.connectionId), Uint8Array.of(0), encodeUtf8(username)));
}

export async function hashToken(token: Uint8Array): Promise<Uint8Array> {
  return sha256(token);
}

const DEFAULT_DEVICE = new Uint8Array(0);

/**
 * The device a login names must be registered. The default device (empty id) exists from
 * registration on; if it was revoked, a login naming no device registers it again (a password
 * holder may add devices anyway), within the device limit.
 */
async function loginDevice(ctx: RpcContext, identityKey: Uint8Array, deviceId: Uint8Array, now: number): Promise<void> {
  const { db } = ctx.deps;
  const known = await db
    .select({ id: devices.deviceId })
    .from(devices)
    .where(and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId)))
    .get();
  if (known) return;
  if (deviceId.length > 0) {
    throw forbidden(
      "device_id is not a registered device of this account: register it from a signed-in device (RegisterDevice) first",
    );
  }
  const added = await db.run(sql`INSERT INTO ${devices} (identity_key, device_id, name, created_at, last_seen_at)
    SELECT ${identityKey}, ${DEFAULT_DEVICE}, 'default', ${now}, ${now}
    WHERE (SELECT COUNT(*) FROM ${devices} WHERE identity_key = ${identityKey}) < ${LIMITS.devicesPerAccount}
    ON CONFLICT DO NOTHING`);
  if (added.meta.changes !== 1) {
    const again = await db
      .select({ id: devices.deviceId })
      .from(devices)
      .where(and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId)))
      .get();
    if (again) return;
    throw forbidden(
      `the default device was revoked and the account already has ${LIMITS.devicesPerAccount} devices: log in naming one of them, or revoke one`,
    );
  }
  try {
    accepted(await queueOf(ctx.deps, identityKey).addDevice(deviceId));
  } catch (err) {
    await db.delete(devices).where(and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId)));
    throw err;
  }
}

export const authMethods: MethodTable = {
  [Method.OpaqueRegisterStart]: withFloor(
    unary("none", pb.OpaqueRegisterStartRequest, pb.OpaqueRegisterStartResponse, async (ctx, req) => {
      const username = v.username(req.username);
      const response = await opaqueStep(() => opaque.registrationResponse(ctx.deps.opaqueSetup, username, req.request));
      // Records only that this connection started this registration: no username is reserved and
      // a taken name is reported at finish, so start does not enumerate users. A repeat renews it.
      const { db } = ctx.deps;
      const now = Date.now();
      const id = await pendingId(ctx, username);
      const expiresAt = now + LIMITS.pendingRegistrationMs;
      await db.batch([
        db.delete(pendingRegistrations).where(lt(pendingRegistrations.expiresAt, now)),
        db
          .insert(pendingRegistrations)
          .values({ id, expiresAt })
          .onConflictDoUpdate({ target: pendingRegistrations.id, set: { expiresAt } }),
      ]);
      return { response };
    }),
  ),

  [Method.OpaqueRegisterFinish]: withFloor(
    unary("none", pb.OpaqueRegisterFinishRequest, pb.OpaqueRegisterFinishResponse, async (ctx, req) => {
      const username = v.username(req.username);
      // Only after this connection's RegisterStart for this name, consumed whatever happens next.
      const started = await ctx.deps.db
        .delete(pendingRegistrations)
        .where(
          and(
            eq(pendingRegistrations.id, await pendingId(ctx, username)),
            gt(pendingRegistrations.expiresAt, Date.now()),
          ),
        )
        .returning({ id: pendingRegistrations.id })
        .get();
      if (!started)
        throw unauthorized("no registration in progress for this username on this connection (or it expired)");
      const identityKey = v.identityKey(req.identityKey, "identity_key");
      // A stored record the OPAQUE library cannot use would make every later login for this name
      // fail differently from an unknown name's: a ristretto255 record is exactly 192 bytes, and
      // its client public key must be a valid point.
      if (req.upload.length !== OPAQUE_RECORD_BYTES) {
        throw badRequest(
          `upload must be a ${OPAQUE_RECORD_BYTES}-byte OPAQUE registration record, got ${req.upload.length}`,
        );
      }
      if (!(await recordIsUsable(ctx.deps.opaqueSetup, username, req.upload))) {
        throw badRequest(
          "upload is not a valid OPAQUE registration record (its client public key does not deserialise)",
        );
      }
      // ON CONFLICT DO NOTHING covers both the username and the identity-key uniqueness. The
      // default device comes in the same transaction, only when this insert made the account.
      const { db } = ctx.deps;
      const now = Date.now();
      const [result] = await db.batch([
        db
          .insert(users)
          .values({ username, identityKey, opaqueRecord: req.upload, createdAt: now })
          .onConflictDoNothing(),
        db
          .insert(devices)
          .select(
            db
              .select({
                identityKey: users.identityKey,
                deviceId: sql`${DEFAULT_DEVICE}`.as("device_id"),
                name: sql`'default'`.as("name"),
                createdAt: sql`${now}`.as("created_at"),
                lastSeenAt: sql`${now}`.as("last_seen_at"),
              })
              .from(users)
              .where(and(eq(users.username, username), eq(users.identityKey, identityKey), eq(users.createdAt, now))),
          )
          .onConflictDoNothing(),
      ]);
      // Its queue accepts messages from now on (Enqueue to unregistered identities is NotFound),
      // and the key-transparency log holds its (username, identity key) binding.
      if (result.meta.changes === 1) {
        await Promise.all([markRegistered(ctx.deps, identityKey), appendBinding(ctx.deps, username, identityKey)]);
      }
      return { success: result.meta.changes === 1 };
    }),
  ),

  [Method.OpaqueLoginStart]: withFloor(
    unary("none", pb.OpaqueLoginStartRequest, pb.OpaqueLoginStartResponse, async (ctx, req) => {
      const username = v.username(req.username);
      const { db } = ctx.deps;
      // Counted for every name, known or not, before any OPAQUE work: the answer reveals nothing.
      const wait = await takeLoginAttempt(db, username, Date.now(), LIMITS.loginAttemptsPerUsername);
      if (wait > 0) throw rateLimited("too many login attempts for this username", wait);
      // An account being deleted can no longer log in: it answers like an unknown user.
      const user = await db
        .select({ record: users.opaqueRecord })
        .from(users)
        .where(and(eq(users.username, username), isNull(users.deletingAt)))
        .get();
      // Unknown users get the library's fake response, indistinguishable from a real one; so do
      // users whose stored record the library cannot use (a broken user looks like no user).
      const start = (record: Uint8Array | null) =>
        opaque.loginStart(ctx.deps.opaqueSetup, username, record, req.request);
      const { state, response } = await opaqueStep(async () => {
        try {
          return await start(user ? user.record : null);
        } catch (err) {
          if (!user || !isBrokenRecord(err)) throw err;
          ctx.deps.logger.warn("stored OPAQUE record unusable; answering as for an unknown user", { username });
          return start(null);
        }
      });
      const now = Date.now();
      const id = await pendingId(ctx, username);
      await db.batch([
        db.delete(pendingLogins).where(lt(pendingLogins.expiresAt, now)),
        db
          .insert(pendingLogins)
          .values({ id, username, serverState: state, expiresAt: now + LIMITS.pendingLoginMs })
          .onConflictDoUpdate({
            target: pendingLogins.id,
            set: { serverState: state, expiresAt: now + LIMITS.pendingLoginMs },
          }),
      ]);
      return { response };
    }),
  ),

  [Method.OpaqueLoginFinish]: withFloor(
    unary("none", pb.OpaqueLoginFinishRequest, pb.OpaqueLoginFinishResponse, async (ctx, req) => {
      const username = v.username(req.username);
      const identityKey = v.identityKey(req.identityKey, "identity_key");
      const { db } = ctx.deps;
      const now = Date.now();
      // Consumed by this statement whatever happens next: a login state is single-use.
      const pending = await db
        .delete(pendingLogins)
        .where(and(eq(pendingLogins.id, await pendingId(ctx, username)), gt(pendingLogins.expiresAt, now)))
        .returning({ state: pendingLogins.serverState })
        .get();
      if (!pending) throw unauthorized("no login in progress on this connection (or it expired)");
      const sessionKey = await opaqueStep(() => opaque.loginFinish(pending.state, req.finalization));
      if (!sessionKey) throw unauthorized(LOGIN_FAILED);
      const user = await db
        .select({ identityKey: users.identityKey })
        .from(users)
        .where(and(eq(users.username, username), isNull(users.deletingAt)))
        .get();
      if (!user || !equalBytes(user.identityKey, identityKey)) throw unauthorized(LOGIN_FAILED);
      await refuseBanned(db, identityKey);
      const deviceId = v.deviceId(req.deviceId);
      await loginDevice(ctx, identityKey, deviceId, now);

      const token = randomBytes(32);
      const expiresAt = now + ctx.deps.sessionTtlMs;
      await db.batch([
        db.delete(sessions).where(and(eq(sessions.identityKey, identityKey), lt(sessions.expiresAt, now))),
        db
          .insert(sessions)
          .values({ tokenHash: await hashToken(token), identityKey, deviceId, createdAt: now, expiresAt }),
        db
          .update(devices)
          .set({ lastSeenAt: now })
          .where(and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId))),
      ]);
      ctx.session = { identityKey, deviceId, sessionExpiresAt: expiresAt };
      return { sessionToken: token };
    }),
  ),

  // The session's device comes from the session: device_id may only repeat it (empty = the
  // session's own). A revoked device's sessions are gone, so they cannot be resumed.
  [Method.SessionResume]: withFloor(
    unary("none", pb.SessionResumeRequest, pb.SessionResumeResponse, async (ctx, req) => {
      const asked = v.deviceId(req.deviceId);
      if (req.accessToken.length !== 32) throw unauthorized();
      const { db } = ctx.deps;
      const now = Date.now();
      const row = await db
        .select()
        .from(sessions)
        .where(and(eq(sessions.tokenHash, await hashToken(req.accessToken)), gt(sessions.expiresAt, now)))
        .get();
      if (!row) throw unauthorized();
      const { identityKey, deviceId } = row;
      if (asked.length > 0 && !equalBytes(asked, deviceId))
        throw unauthorized("this session belongs to another device");
      await refuseBanned(db, identityKey);
      await db
        .update(devices)
        .set({ lastSeenAt: now })
        .where(and(eq(devices.identityKey, identityKey), eq(devices.deviceId, deviceId)));
      ctx.session = { identityKey, deviceId, sessionExpiresAt: row.expiresAt };
      return { identityKey, expiresAtMs: row.expiresAt };
    }),
  ),
};
