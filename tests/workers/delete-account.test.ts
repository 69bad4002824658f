// DeleteAccount (950): nothing of the account is left in D1 or in its queue object, a
// revocation is logged, the name registers again, and an interrupted deletion is finished by
// calling again with the same session.
import { describe, it, expect } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { Method, Status, pb } from "../../proto/index.ts";
import { bytesOf, env, hybridPublicKey, ok, queueStub, randomBytes, randomKey, rpc } from "./helpers.ts";
import { login, register } from "./opaque-client.ts";
import { enqueueAs } from "./delivery-client.ts";

const PASSWORD = "correct horse battery staple";
const TABLES = [
  "users",
  "sessions",
  "devices",
  "push_tokens",
  "key_packages",
  "last_resort_key_packages",
  "hybrid_keys",
  "channel_members",
];

async function account() {
  const username = `del-${crypto.randomUUID().slice(0, 12)}`;
  const identityKey = randomKey();
  expect(await register(username, PASSWORD, identityKey)).toBe(true);
  const session = await login(username, PASSWORD, identityKey);
  if (!session.assertion || !session.token) throw new Error("login failed");
  return { username, identityKey, assertion: session.assertion, token: session.token };
}

/** Gives the account something in every table and object DeleteAccount must purge. */
async function populate(a: Awaited<ReturnType<typeof account>>, peer: Uint8Array) {
  const caller = a.assertion;
  const call = <T>(method: number, bytes: Uint8Array, codec: { decode(b: Uint8Array): T }) =>
    rpc(method, bytes, { caller }).then((r) => ok(r, codec));
  await call(
    Method.UploadKeyPackage,
    pb.UploadKeyPackageRequest.encode({ identityKey: a.identityKey, package: bytesOf("kp") }).finish(),
    pb.UploadKeyPackageResponse,
  );
  await call(
    Method.UploadKeyPackage,
    pb.UploadKeyPackageRequest.encode({
      identityKey: a.identityKey,
      package: bytesOf("lr"),
      lastResort: true,
    }).finish(),
    pb.UploadKeyPackageResponse,
  );
  await call(
    Method.UploadHybridKey,
    pb.UploadHybridKeyRequest.encode({ identityKey: a.identityKey, hybridPublicKey: hybridPublicKey() }).finish(),
    pb.UploadHybridKeyResponse,
  );
  await call(
    Method.RegisterDevice,
    pb.RegisterDeviceRequest.encode({ deviceId: bytesOf("laptop"), name: "Laptop" }).finish(),
    pb.RegisterDeviceResponse,
  );
  await call(
    Method.RegisterPushToken,
    pb.RegisterPushTokenRequest.encode({ platform: "apns", token: randomBytes(32) }).finish(),
    pb.RegisterPushTokenResponse,
  );
  const direct = await call(
    Method.CreateChannel,
    pb.CreateChannelRequest.encode({ peerKey: peer }).finish(),
    pb.CreateChannelResponse,
  );
  const alone = await call(
    Method.CreateChannel,
    pb.CreateChannelRequest.encode({ name: "solo" }).finish(),
    pb.CreateChannelResponse,
  );
  ok(await enqueueAs(randomKey(), a.identityKey, bytesOf("pending")), pb.EnqueueResponse);
  return { direct: direct.channelId, alone: alone.channelId };
}

async function leftovers(identityKey: Uint8Array): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of TABLES) {
    out[t] =
      (
        await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${t} WHERE identity_key = ?`)
          .bind(identityKey)
          .first<{ n: number }>()
      )?.n ?? -1;
  }
  return out;
}

const NOTHING = Object.fromEntries(TABLES.map((t) => [t, 0]));

/** What the queue object stores: its tables and key-value entries. */
function objectContents(identityKey: Uint8Array) {
  return runInDurableObject(queueStub(identityKey), async (_instance, state) => ({
    tables: state.storage.sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'",
      )
      .toArray()
      .map((r) => r.name),
    entries: (await state.storage.list()).size,
    alarm: await state.storage.getAlarm(),
  }));
}

function deleteAccount(caller: string) {
  return rpc(Method.DeleteAccount, pb.DeleteAccountRequest.encode({}).finish(), { caller });
}

// Several real OPAQUE registrations and logins (Argon2id) per test: slow on a busy machine.
describe("DeleteAccount", { timeout: 60_000 }, () => {
  it("purges every row, the queue object and memberships, logs a revocation, and frees the name", async () => {
    const a = await account();
    const peer = randomKey();
    const { direct, alone } = await populate(a, peer);
    expect((await objectContents(a.identityKey)).tables.length).toBeGreaterThan(0);

    expect(ok(await deleteAccount(a.assertion), pb.DeleteAccountResponse).success).toBe(true);

    expect(await leftovers(a.identityKey)).toEqual(NOTHING);
    expect(await objectContents(a.identityKey)).toEqual({ tables: [], entries: 0, alarm: null });
    const channel = (id: Uint8Array) =>
      env.DB.prepare("SELECT COUNT(*) AS n FROM channels WHERE id = ?").bind(id).first<{ n: number }>();
    expect((await channel(alone))?.n).toBe(0); // nobody else was in it
    expect((await channel(direct))?.n).toBe(1); // the peer's side stays
    expect(
      (
        await env.DB.prepare("SELECT COUNT(*) AS n FROM channel_members WHERE channel_id = ?")
          .bind(direct)
          .first<{ n: number }>()
      )?.n,
    ).toBe(1);

    // The key-transparency log holds the revocation.
    const revoked = ok(
      await rpc(Method.CheckRevocation, pb.CheckRevocationRequest.encode({ identityKey: a.identityKey }).finish(), {
        caller: randomKey(),
      }),
      pb.CheckRevocationResponse,
    );
    expect(revoked.revoked).toBe(true);

    // Nothing more for this identity: enqueues are NotFound (and store nothing), the session is gone.
    expect((await enqueueAs(randomKey(), a.identityKey, bytesOf("late"))).status).toBe(Status.NotFound);
    // A connection still holding the account's assertion is refused on the queue path too, and
    // its read stores nothing.
    expect(
      (
        await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: a.identityKey }).finish(), {
          caller: a.assertion,
        })
      ).status,
    ).toBe(Status.Unauthorized);
    expect(await objectContents(a.identityKey)).toEqual({ tables: [], entries: 0, alarm: null });
    expect(
      (await rpc(Method.ListDevices, pb.ListDevicesRequest.encode({}).finish(), { caller: a.assertion })).status,
    ).toBe(Status.Unauthorized);
    expect(
      (await rpc(Method.SessionResume, pb.SessionResumeRequest.encode({ accessToken: a.token }).finish())).status,
    ).toBe(Status.Unauthorized);
    // Repeating it (the assertion outlives the session) is answered as done.
    expect(ok(await deleteAccount(a.assertion), pb.DeleteAccountResponse).success).toBe(true);

    // The name registers again, with a new identity key, and works.
    const newKey = randomKey();
    expect(await register(a.username, PASSWORD, newKey)).toBe(true);
    const again = await login(a.username, PASSWORD, newKey);
    expect(again.res.status).toBe(Status.Ok);
    ok(await enqueueAs(randomKey(), newKey, bytesOf("welcome back")), pb.EnqueueResponse);
  });

  it("finishes an interrupted deletion when called again with the same session; meanwhile the account cannot log in", async () => {
    const a = await account();
    await populate(a, randomKey());
    // Interrupted after the first steps: marked deleting, queue purged, nothing else yet.
    await env.DB.prepare("UPDATE users SET deleting_at = ? WHERE identity_key = ?")
      .bind(Date.now(), a.identityKey)
      .run();
    await queueStub(a.identityKey).purge();
    await env.DB.prepare("DELETE FROM devices WHERE identity_key = ?").bind(a.identityKey).run();

    // Half deleted: no login (like an unknown user), no other method, no enqueue, the name stays taken.
    expect((await login(a.username, PASSWORD, a.identityKey)).res.status).toBe(Status.Unauthorized);
    expect(
      (await rpc(Method.ListDevices, pb.ListDevicesRequest.encode({}).finish(), { caller: a.assertion })).status,
    ).toBe(Status.Unauthorized);
    expect((await enqueueAs(randomKey(), a.identityKey, bytesOf("x"))).status).toBe(Status.NotFound);
    expect(await register(a.username, PASSWORD, randomKey())).toBe(false);
    // The session still resumes, so the client can finish.
    expect(
      (await rpc(Method.SessionResume, pb.SessionResumeRequest.encode({ accessToken: a.token }).finish())).status,
    ).toBe(Status.Ok);

    expect(ok(await deleteAccount(a.assertion), pb.DeleteAccountResponse).success).toBe(true);
    expect(await leftovers(a.identityKey)).toEqual(NOTHING);
    expect(await objectContents(a.identityKey)).toEqual({ tables: [], entries: 0, alarm: null });
    expect(await register(a.username, PASSWORD, randomKey())).toBe(true);
  });

  it("is refused for a revoked device's session", async () => {
    const a = await account();
    ok(
      await rpc(Method.RegisterDevice, pb.RegisterDeviceRequest.encode({ deviceId: bytesOf("tab") }).finish(), {
        caller: a.assertion,
      }),
      pb.RegisterDeviceResponse,
    );
    const tab = await login(a.username, PASSWORD, a.identityKey, bytesOf("tab"));
    ok(
      await rpc(Method.RevokeDevice, pb.RevokeDeviceRequest.encode({ deviceId: bytesOf("tab") }).finish(), {
        caller: a.assertion,
      }),
      pb.RevokeDeviceResponse,
    );
    expect((await deleteAccount(tab.assertion!)).status).toBe(Status.Unauthorized);
    expect((await leftovers(a.identityKey)).users).toBe(1);
  });
});
