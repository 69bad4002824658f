// Devices (700-702, 710): the per-account limit, device-bound sessions, revocation (sessions,
// cursors, push tokens, the queue no longer held back), push tokens. Real OPAQUE logins, D1 and
// the account's RecipientQueue, inspected directly.
import { describe, it, expect } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { Method, Status, pb } from "../../proto/index.ts";
import { bytesOf, env, errorOf, hex, ok, queueStub, randomBytes, randomKey, rpc, textOf } from "./helpers.ts";
import { login, register } from "./opaque-client.ts";
import { enqueueAs } from "./delivery-client.ts";
import { sha256 } from "../../edge/lib/crypto.ts";

const NONE = new Uint8Array(0);
const PASSWORD = "correct horse battery staple";

/** A registered account, logged in on its default device. */
async function account() {
  const username = `dev-${crypto.randomUUID().slice(0, 12)}`;
  const identityKey = randomKey();
  expect(await register(username, PASSWORD, identityKey)).toBe(true);
  const session = await login(username, PASSWORD, identityKey);
  if (!session.assertion) throw new Error("login failed");
  return { username, identityKey, assertion: session.assertion };
}

function registerDevice(caller: string, deviceId: Uint8Array, name = "") {
  return rpc(Method.RegisterDevice, pb.RegisterDeviceRequest.encode({ deviceId, name }).finish(), { caller });
}

async function listDevices(caller: string) {
  return ok(
    await rpc(Method.ListDevices, pb.ListDevicesRequest.encode({}).finish(), { caller }),
    pb.ListDevicesResponse,
  );
}

function revoke(caller: string, deviceId: Uint8Array) {
  return rpc(Method.RevokeDevice, pb.RevokeDeviceRequest.encode({ deviceId }).finish(), { caller });
}

function fetchAs(caller: string, recipientKey: Uint8Array) {
  return rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey }).finish(), { caller });
}

function ackAs(caller: string, recipientKey: Uint8Array, seqUpTo: number) {
  return rpc(Method.Ack, pb.AckRequest.encode({ recipientKey, seqUpTo }).finish(), { caller });
}

async function rows(table: string, identityKey: Uint8Array): Promise<number> {
  const row = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE identity_key = ?`)
    .bind(identityKey)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

describe("RegisterDevice / ListDevices", { timeout: 60_000 }, () => {
  it("allows 5 devices per account, the default included, and refuses a sixth with Forbidden", async () => {
    const a = await account();
    for (let i = 1; i <= 4; i++) {
      expect(
        ok(await registerDevice(a.assertion, bytesOf(`phone-${i}`), `Phone ${i}`), pb.RegisterDeviceResponse).wasNew,
      ).toBe(true);
    }
    const sixth = await registerDevice(a.assertion, bytesOf("phone-5"));
    expect(sixth.status).toBe(Status.Forbidden);
    expect(errorOf(sixth).message).toMatch(/at most 5 devices/);

    const list = await listDevices(a.assertion);
    expect(list.devices.map((d) => textOf(d.deviceId))).toEqual(["", "phone-1", "phone-2", "phone-3", "phone-4"]);
    expect(list.devices.map((d) => d.current)).toEqual([true, false, false, false, false]);
    expect(hex(list.currentDeviceId)).toBe("");
    expect(list.devices[1].name).toBe("Phone 1");
    // The queue holds exactly those devices.
    expect((await queueStub(a.identityKey).stats()).devices).toBe(5);

    // Registering a known id again renames it; nothing is added.
    expect(
      ok(await registerDevice(a.assertion, bytesOf("phone-1"), "Old phone"), pb.RegisterDeviceResponse).wasNew,
    ).toBe(false);
    expect((await listDevices(a.assertion)).devices[1].name).toBe("Old phone");
  });

  it("validates device ids and names", async () => {
    const a = await account();
    expect((await registerDevice(a.assertion, NONE)).status).toBe(Status.BadRequest);
    expect((await registerDevice(a.assertion, randomBytes(65))).status).toBe(Status.BadRequest);
    expect((await registerDevice(a.assertion, randomBytes(16), "x".repeat(65))).status).toBe(Status.BadRequest);
    expect((await registerDevice(a.assertion, randomBytes(16), "bad\u0000name")).status).toBe(Status.BadRequest);
    expect((await listDevices(a.assertion)).devices).toHaveLength(1);
  });
});

describe("device-bound sessions", { timeout: 60_000 }, () => {
  it("logs in naming a registered device; an unregistered device is refused", async () => {
    const a = await account();
    const laptop = randomBytes(16);
    const refused = await login(a.username, PASSWORD, a.identityKey, laptop);
    expect(refused.res.status).toBe(Status.Forbidden);
    expect(errorOf(refused.res).message).toMatch(/RegisterDevice/);

    ok(await registerDevice(a.assertion, laptop, "Laptop"), pb.RegisterDeviceResponse);
    const onLaptop = await login(a.username, PASSWORD, a.identityKey, laptop);
    expect(onLaptop.res.status).toBe(Status.Ok);
    const list = await listDevices(onLaptop.assertion!);
    expect(hex(list.currentDeviceId)).toBe(hex(laptop));
    expect(list.devices.find((d) => d.current)?.name).toBe("Laptop");
    expect(list.devices.find((d) => d.current)?.lastSeenMs).toBeGreaterThan(0);

    // The session row names the device; resuming it yields the same device, naming another is refused.
    const session = await env.DB.prepare("SELECT device_id FROM sessions WHERE token_hash = ?")
      .bind(await sha256(onLaptop.token!))
      .first<{ device_id: ArrayBuffer }>();
    expect(hex(new Uint8Array(session!.device_id))).toBe(hex(laptop));
    const resumed = await rpc(
      Method.SessionResume,
      pb.SessionResumeRequest.encode({ accessToken: onLaptop.token! }).finish(),
    );
    expect(resumed.status).toBe(Status.Ok);
    expect(resumed.headers.get("x-qpq-session")).toContain(`.${hex(laptop)}.`);
    const other = await rpc(
      Method.SessionResume,
      pb.SessionResumeRequest.encode({ accessToken: onLaptop.token!, deviceId: bytesOf("x") }).finish(),
    );
    expect(other.status).toBe(Status.Unauthorized);
  });

  it("delivers every message to every device; each acks its own cursor; a message stays until the last ack", async () => {
    const a = await account();
    const laptop = bytesOf("laptop");
    ok(await registerDevice(a.assertion, laptop), pb.RegisterDeviceResponse);
    const onLaptop = (await login(a.username, PASSWORD, a.identityKey, laptop)).assertion!;
    const seq = Number(ok(await enqueueAs(randomKey(), a.identityKey, bytesOf("hello")), pb.EnqueueResponse).seq);

    for (const caller of [a.assertion, onLaptop]) {
      expect(ok(await fetchAs(caller, a.identityKey), pb.FetchResponse).payloads.map((e) => textOf(e.data))).toEqual([
        "hello",
      ]);
    }
    ok(await ackAs(a.assertion, a.identityKey, seq), pb.AckResponse);
    expect(ok(await fetchAs(a.assertion, a.identityKey), pb.FetchResponse).payloads).toEqual([]);
    expect(ok(await fetchAs(onLaptop, a.identityKey), pb.FetchResponse).payloads).toHaveLength(1);
    expect((await queueStub(a.identityKey).stats()).messages).toBe(1);
    ok(await ackAs(onLaptop, a.identityKey, seq), pb.AckResponse);
    expect((await queueStub(a.identityKey).stats()).messages).toBe(0);
  });
});

describe("RevokeDevice", { timeout: 60_000 }, () => {
  it("ends the device's sessions, frees its slot, drops its push token and unblocks the queue", async () => {
    const a = await account();
    const tablet = bytesOf("tablet");
    for (let i = 1; i <= 3; i++) ok(await registerDevice(a.assertion, bytesOf(`d${i}`)), pb.RegisterDeviceResponse);
    ok(await registerDevice(a.assertion, tablet), pb.RegisterDeviceResponse);
    const onTablet = await login(a.username, PASSWORD, a.identityKey, tablet);
    ok(
      await rpc(
        Method.RegisterPushToken,
        pb.RegisterPushTokenRequest.encode({ platform: "fcm", token: bytesOf("fcm-token") }).finish(),
        { caller: onTablet.assertion! },
      ),
      pb.RegisterPushTokenResponse,
    );
    expect(await rows("push_tokens", a.identityKey)).toBe(1);

    // The default device acks; the message waits for the other devices.
    const seq = Number(ok(await enqueueAs(randomKey(), a.identityKey, bytesOf("m")), pb.EnqueueResponse).seq);
    ok(await ackAs(a.assertion, a.identityKey, seq), pb.AckResponse);
    expect((await queueStub(a.identityKey).stats()).messages).toBe(1);
    for (let i = 1; i <= 3; i++) ok(await revoke(a.assertion, bytesOf(`d${i}`)), pb.RevokeDeviceResponse);
    expect((await queueStub(a.identityKey).stats()).messages).toBe(1); // the tablet still holds it
    ok(await revoke(a.assertion, tablet), pb.RevokeDeviceResponse);
    expect((await queueStub(a.identityKey).stats()).messages).toBe(0); // nobody else waits for it

    // The tablet's session is gone: its assertion (alive at the front for minutes) is refused
    // on the queue path and the D1 path, and its token no longer resumes.
    expect((await fetchAs(onTablet.assertion!, a.identityKey)).status).toBe(Status.Unauthorized);
    expect((await ackAs(onTablet.assertion!, a.identityKey, seq)).status).toBe(Status.Unauthorized);
    expect(
      (await rpc(Method.ListDevices, pb.ListDevicesRequest.encode({}).finish(), { caller: onTablet.assertion! }))
        .status,
    ).toBe(Status.Unauthorized);
    const resume = await rpc(
      Method.SessionResume,
      pb.SessionResumeRequest.encode({ accessToken: onTablet.token! }).finish(),
    );
    expect(resume.status).toBe(Status.Unauthorized);
    const sessions = await env.DB.prepare("SELECT COUNT(*) AS n FROM sessions WHERE identity_key = ? AND device_id = ?")
      .bind(a.identityKey, tablet)
      .first<{ n: number }>();
    expect(sessions?.n).toBe(0);
    expect(await rows("push_tokens", a.identityKey)).toBe(0);
    expect(await rows("devices", a.identityKey)).toBe(1);

    // Slots are free again, but an id revoked minutes ago is not taken back (its assertions may live on).
    ok(await registerDevice(a.assertion, bytesOf("d5")), pb.RegisterDeviceResponse);
    const again = await registerDevice(a.assertion, tablet);
    expect(again.status).toBe(Status.Forbidden);
    expect(errorOf(again).message).toMatch(/revoked/);
    expect(await rows("devices", a.identityKey)).toBe(2);
    expect((await revoke(a.assertion, bytesOf("never-registered"))).status).toBe(Status.NotFound);
  });

  it("revoking the default device: it can log in again (re-created) once the assertion window has passed", async () => {
    const a = await account();
    const laptop = bytesOf("laptop");
    ok(await registerDevice(a.assertion, laptop), pb.RegisterDeviceResponse);
    const onLaptop = (await login(a.username, PASSWORD, a.identityKey, laptop)).assertion!;
    ok(await revoke(onLaptop, NONE), pb.RevokeDeviceResponse);
    expect((await fetchAs(a.assertion, a.identityKey)).status).toBe(Status.Unauthorized);
    // Within the window a login naming no device is refused rather than reviving the old assertions.
    const soon = await login(a.username, PASSWORD, a.identityKey);
    expect(soon.res.status).toBe(Status.Forbidden);
    expect(await rows("devices", a.identityKey)).toBe(1);
    // Once every assertion naming it has expired (simulated: the revocation made 11 minutes old),
    // a login naming no device registers the default device again.
    await runInDurableObject(queueStub(a.identityKey), (_i, state) => {
      state.storage.sql.exec("UPDATE revoked_devices SET revoked_at = revoked_at - 660000");
    });
    const later = await login(a.username, PASSWORD, a.identityKey);
    expect(later.res.status).toBe(Status.Ok);
    expect(ok(await fetchAs(later.assertion!, a.identityKey), pb.FetchResponse).payloads).toEqual([]);
    expect(await rows("devices", a.identityKey)).toBe(2);
  });
});

describe("RegisterPushToken", { timeout: 60_000 }, () => {
  it("stores one token per device, replaces it, removes it, and refuses other devices and bad input", async () => {
    const a = await account();
    const set = (fields: Parameters<typeof pb.RegisterPushTokenRequest.encode>[0]) =>
      rpc(Method.RegisterPushToken, pb.RegisterPushTokenRequest.encode(fields).finish(), { caller: a.assertion });
    ok(await set({ platform: "apns", token: randomBytes(32) }), pb.RegisterPushTokenResponse);
    ok(await set({ platform: "fcm", token: bytesOf("newer") }), pb.RegisterPushTokenResponse);
    const row = await env.DB.prepare("SELECT platform, token FROM push_tokens WHERE identity_key = ?")
      .bind(a.identityKey)
      .first<{ platform: string; token: ArrayBuffer }>();
    expect(row?.platform).toBe("fcm");
    expect(textOf(new Uint8Array(row!.token))).toBe("newer");
    expect((await set({ platform: "sms", token: bytesOf("t") })).status).toBe(Status.BadRequest);
    expect((await set({ platform: "fcm", token: randomBytes(513) })).status).toBe(Status.BadRequest);
    expect((await set({ deviceId: bytesOf("other"), platform: "fcm", token: bytesOf("t") })).status).toBe(
      Status.Forbidden,
    );
    ok(await set({ platform: "fcm", token: NONE }), pb.RegisterPushTokenResponse);
    expect(await rows("push_tokens", a.identityKey)).toBe(0);
  });
});
