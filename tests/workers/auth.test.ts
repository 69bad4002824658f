// Auth (100-104) with real OPAQUE: the client side of @serenity-kit/opaque runs here in workerd,
// the server side in the edge. Registration, login, session tokens and SessionResume.
import { describe, it, expect, beforeAll } from "vitest";
import { Method, Status, pb, parseSessionGrant } from "../../proto/index.ts";
import { env, errorOf, hex, ok, randomBytes, randomKey, rpc, type RpcResult } from "./helpers.ts";
import { client, fromB64u, opaqueReady, register, toB64u } from "./opaque-client.ts";


let counter = 0;
const uniqueName = (base = "user") => `${base}-${Date.now().toString(36)}-${++counter}`;
const uniqueConn = () => `conn-${crypto.randomUUID()}`;


/** LoginStart, then the client's finalization (undefined when the client rejects the server). */
async function loginStart(username: string, password: string, connection: string) {
  const start = client.startLogin({ password });
  const res = ok(await rpc(Method.OpaqueLoginStart,
    pb.OpaqueLoginStartRequest.encode({ username, request: fromB64u(start.startLoginRequest) }).finish(), { connection }),
  pb.OpaqueLoginStartResponse);
  const finish = client.finishLogin({ clientLoginState: start.clientLoginState, loginResponse: toB64u(res.response), password });
  return { response: res.response, finalization: finish ? fromB64u(finish.finishLoginRequest) : undefined };
}

function loginFinish(username: string, finalization: Uint8Array, identityKey: Uint8Array, connection: string): Promise<RpcResult> {
  return rpc(Method.OpaqueLoginFinish,
    pb.OpaqueLoginFinishRequest.encode({ username, finalization, identityKey }).finish(), { connection });
}

async function login(username: string, password: string, identityKey: Uint8Array, connection = uniqueConn()) {
  const { finalization } = await loginStart(username, password, connection);
  if (!finalization) throw new Error("client rejected the login response");
  return loginFinish(username, finalization, identityKey, connection);
}

function blob(value: unknown): Uint8Array {
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return Uint8Array.from(value as number[]);
}

async function sessionRows(identityKey: Uint8Array) {
  const { results } = await env.DB.prepare("SELECT token_hash, identity_key, expires_at FROM sessions WHERE identity_key = ?")
    .bind(identityKey).all<{ token_hash: unknown; identity_key: unknown; expires_at: number }>();
  return results.map((r) => ({ tokenHash: blob(r.token_hash), expiresAt: r.expires_at }));
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

beforeAll(async () => {
  await opaqueReady();
});

describe("OPAQUE registration and login", () => {
  // One registered account shared by the login tests (registration is the slow part).
  const password = "correct horse battery staple";
  const identity = randomKey();
  const username = uniqueName("alice");
  beforeAll(async () => {
    expect(await register(username, password, identity)).toBe(true);
  });

  it("logs in with the right password: 32-byte token and a session grant for the identity", async () => {
    const res = await login(username, password, identity);
    const { sessionToken } = ok(res, pb.OpaqueLoginFinishResponse);
    expect(sessionToken).toHaveLength(32);
    const grant = parseSessionGrant(res.headers.get("x-qpq-session") ?? undefined);
    expect(grant).toBeDefined();
    expect(grant!.identityKeyHex).toBe(hex(identity));
    expect(grant!.sessionExpiresAt).toBeGreaterThan(Date.now() + 24 * 3600 * 1000);
    // The granted assertion authenticates the identity on later RPCs.
    const fetched = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: identity }).finish(), { caller: grant!.assertion });
    ok(fetched, pb.FetchResponse);
    const other = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: randomKey() }).finish(), { caller: grant!.assertion });
    expect(other.status).toBe(Status.Forbidden);
  });

  it("resumes a session with the token on a new connection", async () => {
    const token = ok(await login(username, password, identity), pb.OpaqueLoginFinishResponse).sessionToken;
    const res = await rpc(Method.SessionResume, pb.SessionResumeRequest.encode({ accessToken: token }).finish(), { connection: uniqueConn() });
    const resumed = ok(res, pb.SessionResumeResponse);
    expect(hex(resumed.identityKey)).toBe(hex(identity));
    expect(Number(resumed.expiresAtMs)).toBeGreaterThan(Date.now());
    const grant = parseSessionGrant(res.headers.get("x-qpq-session") ?? undefined);
    expect(grant?.identityKeyHex).toBe(hex(identity));
  });

  it("refuses SessionResume with an unknown or malformed token", async () => {
    for (const accessToken of [randomBytes(32), randomBytes(31), new Uint8Array(0)]) {
      const res = await rpc(Method.SessionResume, pb.SessionResumeRequest.encode({ accessToken }).finish());
      expect(res.status).toBe(Status.Unauthorized);
      expect(res.headers.get("x-qpq-session")).toBeNull();
    }
  });

  it("refuses SessionResume once the session has expired", async () => {
    const insert = async (expiresAt: number) => {
      const token = randomBytes(32);
      await env.DB.prepare("INSERT INTO sessions (token_hash, identity_key, device_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
        .bind(await sha256(token), identity, new Uint8Array(0), Date.now() - 10_000, expiresAt).run();
      return rpc(Method.SessionResume, pb.SessionResumeRequest.encode({ accessToken: token }).finish());
    };
    const expired = await insert(Date.now() - 1);
    expect(expired.status).toBe(Status.Unauthorized);
    expect(expired.headers.get("x-qpq-session")).toBeNull();
    // Control: the same row with a future expiry resumes.
    expect(hex(ok(await insert(Date.now() + 60_000), pb.SessionResumeResponse).identityKey)).toBe(hex(identity));
  });

  it("stores only a hash of the session token", async () => {
    const token = ok(await login(username, password, identity), pb.OpaqueLoginFinishResponse).sessionToken;
    const rows = await sessionRows(identity);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(hex(r.tokenHash)).not.toBe(hex(token));
    expect(rows.map((r) => hex(r.tokenHash))).toContain(hex(await sha256(token)));
    const { results } = await env.DB.prepare("SELECT COUNT(*) AS n FROM sessions WHERE token_hash = ?").bind(token).all<{ n: number }>();
    expect(results[0].n).toBe(0);
  });

  it("fails a wrong password: the client rejects the response and a forged finalization gets no token", async () => {
    const connection = uniqueConn();
    const before = (await sessionRows(identity)).length;
    const attempt = await loginStart(username, "wrong password", connection);
    expect(attempt.finalization).toBeUndefined();
    const res = await loginFinish(username, randomBytes(64), identity, connection);
    expect(res.status).toBe(Status.Unauthorized);
    expect(res.headers.get("x-qpq-session")).toBeNull();
    // Status != Ok: the body is an ErrorResponse, never a token.
    expect(errorOf(res).message).toMatch(/login failed/);
    expect((await sessionRows(identity)).length).toBe(before);
  });

  it("does not accept a finalization replayed from an earlier login", async () => {
    const connection = uniqueConn();
    const first = await loginStart(username, password, connection);
    ok(await loginFinish(username, first.finalization!, identity, connection), pb.OpaqueLoginFinishResponse);
    // The pending login was consumed: the same finalization again fails...
    expect((await loginFinish(username, first.finalization!, identity, connection)).status).toBe(Status.Unauthorized);
    // ...and so does replaying it against a fresh login start.
    await loginStart(username, password, connection);
    expect((await loginFinish(username, first.finalization!, identity, connection)).status).toBe(Status.Unauthorized);
  });

  it("refuses a login finished on a different connection", async () => {
    const { finalization } = await loginStart(username, password, uniqueConn());
    const res = await loginFinish(username, finalization!, identity, uniqueConn());
    expect(res.status).toBe(Status.Unauthorized);
    expect(res.headers.get("x-qpq-session")).toBeNull();
  });

  it("refuses a login presenting another identity key", async () => {
    const before = (await sessionRows(identity)).length;
    const res = await login(username, password, randomKey());
    expect(res.status).toBe(Status.Unauthorized);
    expect(res.headers.get("x-qpq-session")).toBeNull();
    expect((await sessionRows(identity)).length).toBe(before);
  });

  it("answers LoginStart for an unknown user like for a real one, and the login then fails", async () => {
    const connection = uniqueConn();
    const real = await loginStart(username, password, uniqueConn());
    const ghostName = uniqueName("ghost");
    const ghost = await loginStart(ghostName, password, connection);
    expect(ghost.response).toHaveLength(real.response.length);
    expect(ghost.finalization).toBeUndefined(); // the client cannot complete against a fake record
    const res = await loginFinish(ghostName, randomBytes(64), randomKey(), connection);
    expect(res.status).toBe(Status.Unauthorized);
  });

  it("refuses to register a taken username and keeps the original account", async () => {
    expect(await register(username, "another password", randomKey())).toBe(false);
    ok(await login(username, password, identity), pb.OpaqueLoginFinishResponse);
  });

  it("refuses to register an identity key already bound to another user", async () => {
    const second = uniqueName("bob");
    expect(await register(second, password, identity)).toBe(false);
    const lookup = await rpc(Method.ResolveUser, pb.ResolveUserRequest.encode({ username: second }).finish(), { caller: randomKey() });
    expect(lookup.status).toBe(Status.NotFound);
  });
});

describe("username rules", () => {
  async function registerStart(username: string): Promise<RpcResult> {
    const start = client.startRegistration({ password: "pw" });
    return rpc(Method.OpaqueRegisterStart,
      pb.OpaqueRegisterStartRequest.encode({ username, request: fromB64u(start.registrationRequest) }).finish());
  }

  it("rejects empty, over-long, control-character and '@' usernames with BadRequest", async () => {
    for (const name of ["", "x".repeat(65), "bad\nname", "tab\tname", "name@example.org"]) {
      const res = await registerStart(name);
      expect({ name, status: res.status }).toEqual({ name, status: Status.BadRequest });
    }
    expect((await registerStart("x".repeat(64))).status).toBe(Status.Ok);
  });

  it("treats NFC-equivalent usernames as the same name", async () => {
    const base = uniqueName("n");
    const composed = `${base}-\u00e9`; // é
    const decomposed = `${base}-e\u0301`; // e + combining acute
    expect(await register(composed, "pw-1", randomKey())).toBe(true);
    expect(await register(decomposed, "pw-2", randomKey())).toBe(false);
  });

  it("rejects a malformed OPAQUE registration request with BadRequest", async () => {
    const res = await rpc(Method.OpaqueRegisterStart,
      pb.OpaqueRegisterStartRequest.encode({ username: uniqueName(), request: randomBytes(5) }).finish());
    expect(res.status).toBe(Status.BadRequest);
  });
});
