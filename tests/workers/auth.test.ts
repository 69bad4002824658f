// Auth (100-104) with real OPAQUE: the client side of @serenity-kit/opaque runs here in workerd,
// the server side in the edge. Registration, login, session tokens and SessionResume.
import { describe, it, expect, beforeAll } from "vitest";
import { Method, Status, pb, parseSessionGrant } from "../../proto/index.ts";
import { env, errorOf, hex, ok, randomBytes, randomKey, rpc, type RpcResult } from "./helpers.ts";
import { client, fromB64u, loginStart, opaqueReady, register, toB64u } from "./opaque-client.ts";

let counter = 0;
const uniqueName = (base = "user") => `${base}-${Date.now().toString(36)}-${++counter}`;
const uniqueConn = () => `conn-${crypto.randomUUID()}`;

function loginFinish(
  username: string,
  finalization: Uint8Array,
  identityKey: Uint8Array,
  connection: string,
): Promise<RpcResult> {
  return rpc(
    Method.OpaqueLoginFinish,
    pb.OpaqueLoginFinishRequest.encode({ username, finalization, identityKey }).finish(),
    { connection },
  );
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
  const { results } = await env.DB.prepare(
    "SELECT token_hash, identity_key, expires_at FROM sessions WHERE identity_key = ?",
  )
    .bind(identityKey)
    .all<{ token_hash: unknown; identity_key: unknown; expires_at: number }>();
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
    const fetched = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: identity }).finish(), {
      caller: grant!.assertion,
    });
    ok(fetched, pb.FetchResponse);
    const other = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: randomKey() }).finish(), {
      caller: grant!.assertion,
    });
    expect(other.status).toBe(Status.Forbidden);
  });

  it("resumes a session with the token on a new connection", async () => {
    const token = ok(await login(username, password, identity), pb.OpaqueLoginFinishResponse).sessionToken;
    const res = await rpc(Method.SessionResume, pb.SessionResumeRequest.encode({ accessToken: token }).finish(), {
      connection: uniqueConn(),
    });
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
      await env.DB.prepare(
        "INSERT INTO sessions (token_hash, identity_key, device_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      )
        .bind(await sha256(token), identity, new Uint8Array(0), Date.now() - 10_000, expiresAt)
        .run();
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
    const { results } = await env.DB.prepare("SELECT COUNT(*) AS n FROM sessions WHERE token_hash = ?")
      .bind(token)
      .all<{ n: number }>();
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
    const lookup = await rpc(Method.ResolveUser, pb.ResolveUserRequest.encode({ username: second }).finish(), {
      caller: randomKey(),
    });
    expect(lookup.status).toBe(Status.NotFound);
  });
});

describe("username rules", () => {
  async function registerStart(username: string): Promise<RpcResult> {
    const start = client.startRegistration({ password: "pw" });
    return rpc(
      Method.OpaqueRegisterStart,
      pb.OpaqueRegisterStartRequest.encode({ username, request: fromB64u(start.registrationRequest) }).finish(),
    );
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
    const res = await rpc(
      Method.OpaqueRegisterStart,
      pb.OpaqueRegisterStartRequest.encode({ username: uniqueName(), request: randomBytes(5) }).finish(),
    );
    expect(res.status).toBe(Status.BadRequest);
  });

  it("rejects invisible, direction-changing, unassigned, private-use and separator characters, naming the rule", async () => {
    const cases: [string, RegExp][] = [
      ["evil\u202Eexe.txt", /format characters.*U\+202E/], // RIGHT-TO-LEFT OVERRIDE
      ["ad\u200Bmin", /format characters.*U\+200B/], // ZERO WIDTH SPACE
      ["a\u200Db", /format characters.*U\+200D/], // ZERO WIDTH JOINER
      ["\u2066admin\u2069", /format characters.*U\+2066/], // LEFT-TO-RIGHT ISOLATE
      ["\uFEFFadmin", /format characters.*U\+FEFF/], // BYTE ORDER MARK
      ["admin\u2060", /format characters.*U\+2060/], // WORD JOINER
      ["soft\u00ADhyphen", /format characters.*U\+00AD/],
      ["bell\u0007", /control characters.*U\+0007/],
      ["c1\u0085", /control characters.*U\+0085/],
      ["priv\uE000ate", /private-use characters.*U\+E000/],
      ["un\u0378assigned", /unassigned code points.*U\+0378/],
      ["two words", /spaces or separators.*U\+0020/],
      ["no\u00A0break", /spaces or separators.*U\+00A0/],
      ["ideo\u3000space", /spaces or separators.*U\+0020/], // fullwidth space maps to a space
      ["line\u2028sep", /spaces or separators.*U\+2028/],
      ["hangul\u3164filler", /invisible \(default-ignorable\).*U\+3164/],
      ["variation\uFE0F", /invisible \(default-ignorable\).*U\+FE0F/],
      ["name\uFF20example.org", /'@'/], // FULLWIDTH COMMERCIAL AT maps to '@'
      // Never reaches the rule: the protobuf decoder refuses the ill-formed UTF-8 first.
      ["lone\uD800surrogate", /not a valid OpaqueRegisterStartRequest|unpaired surrogates/],
    ];
    for (const [name, rule] of cases) {
      const res = await registerStart(name);
      expect({ name, status: res.status }).toEqual({ name, status: Status.BadRequest });
      expect(errorOf(res).message).toMatch(rule);
    }
    // Letters, digits, punctuation and symbols of any script are fine.
    for (const name of ["zoë", "名前", "o'brien.x_y-z", "αλφα", "\u{1F600}"]) {
      expect({ name, status: (await registerStart(name)).status }).toEqual({ name, status: Status.Ok });
    }
  });

  it("checks the RFC 8265 rules on the mapped name and counts 64 characters, not bytes", async () => {
    expect((await registerStart("\u00e9".repeat(64))).status).toBe(Status.Ok); // 128 UTF-8 bytes
    expect((await registerStart("\u{1F600}".repeat(64))).status).toBe(Status.Ok); // 128 UTF-16 units
    const over = await registerStart("\u00e9".repeat(65));
    expect(over.status).toBe(Status.BadRequest);
    expect(errorOf(over).message).toMatch(/1-64 characters, got 65/);
  });

  it("maps case and width: Alice, ALICE and fullwidth ａｌｉｃｅ are one account, stored lowercase", async () => {
    const suffix = `${Date.now().toString(36)}${++counter}`;
    const identity = randomKey();
    expect(await register(`Alice-${suffix}`, "pw", identity)).toBe(true);
    expect(await register(`ALICE-${suffix.toUpperCase()}`, "pw-2", randomKey())).toBe(false);
    const fullwidth = [...`alice-${suffix}`].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join("");
    expect(await register(fullwidth, "pw-3", randomKey())).toBe(false);
    // Any spelling logs in and resolves; the directory shows the canonical name.
    ok(await login(`aLiCe-${suffix}`, "pw", identity), pb.OpaqueLoginFinishResponse);
    ok(await login(fullwidth, "pw", identity), pb.OpaqueLoginFinishResponse);
    const resolved = ok(
      await rpc(Method.ResolveUser, pb.ResolveUserRequest.encode({ username: `ALICE-${suffix}` }).finish(), {
        caller: randomKey(),
      }),
      pb.ResolveUserResponse,
    );
    expect(hex(resolved.identityKey)).toBe(hex(identity));
    const back = ok(
      await rpc(Method.ResolveIdentity, pb.ResolveIdentityRequest.encode({ identityKey: identity }).finish(), {
        caller: randomKey(),
      }),
      pb.ResolveIdentityResponse,
    );
    expect(back.username).toBe(`alice-${suffix}`);
  });
});

describe("registration requires its start", () => {
  const password = "pw";

  /** The client's registration record for `username`, after a RegisterStart on `connection`. */
  async function startedRecord(username: string, connection: string): Promise<Uint8Array> {
    const start = client.startRegistration({ password });
    const res = ok(
      await rpc(
        Method.OpaqueRegisterStart,
        pb.OpaqueRegisterStartRequest.encode({ username, request: fromB64u(start.registrationRequest) }).finish(),
        { connection },
      ),
      pb.OpaqueRegisterStartResponse,
    );
    const finish = client.finishRegistration({
      password,
      clientRegistrationState: start.clientRegistrationState,
      registrationResponse: toB64u(res.response),
    });
    return fromB64u(finish.registrationRecord);
  }

  function registerFinish(
    username: string,
    upload: Uint8Array,
    identityKey: Uint8Array,
    connection: string,
  ): Promise<RpcResult> {
    return rpc(
      Method.OpaqueRegisterFinish,
      pb.OpaqueRegisterFinishRequest.encode({ username, upload, identityKey }).finish(),
      { connection },
    );
  }

  async function userRows(username: string): Promise<number> {
    const { results } = await env.DB.prepare("SELECT COUNT(*) AS n FROM users WHERE username = ?")
      .bind(username)
      .all<{ n: number }>();
    return results[0].n;
  }

  it("refuses RegisterFinish without RegisterStart (Unauthorized), stores nothing, and the name stays unknown", async () => {
    // A record made for another name on another connection: well-formed, but never started here.
    const record = await startedRecord(uniqueName("other"), uniqueConn());
    const name = uniqueName("nostart");
    const connection = uniqueConn();
    const res = await registerFinish(name, record, randomKey(), connection);
    expect(res.status).toBe(Status.Unauthorized);
    expect(errorOf(res).message).toMatch(/no registration in progress/);
    expect(await userRows(name)).toBe(0);
    // LoginStart then answers the fake response of an unknown user, not an error.
    const real = await loginStart(uniqueName("ghost"), password, uniqueConn());
    const after = await loginStart(name, password, connection);
    expect(after.response).toHaveLength(real.response.length);
  });

  it("refuses a RegisterFinish on another connection or for another name than its start", async () => {
    const name = uniqueName("moved");
    const connection = uniqueConn();
    const record = await startedRecord(name, connection);
    expect((await registerFinish(name, record, randomKey(), uniqueConn())).status).toBe(Status.Unauthorized);
    expect((await registerFinish(uniqueName("renamed"), record, randomKey(), connection)).status).toBe(
      Status.Unauthorized,
    );
    expect(await userRows(name)).toBe(0);
    // The start is still there for the right connection and name.
    expect(
      ok(await registerFinish(name, record, randomKey(), connection), pb.OpaqueRegisterFinishResponse).success,
    ).toBe(true);
  });

  it("consumes the start: a second RegisterFinish needs a new RegisterStart", async () => {
    const name = uniqueName("twice");
    const connection = uniqueConn();
    const record = await startedRecord(name, connection);
    expect(
      ok(await registerFinish(name, record, randomKey(), connection), pb.OpaqueRegisterFinishResponse).success,
    ).toBe(true);
    expect((await registerFinish(name, record, randomKey(), connection)).status).toBe(Status.Unauthorized);
  });

  it("refuses a start older than 60 s", async () => {
    const name = uniqueName("late");
    const connection = uniqueConn();
    const record = await startedRecord(name, connection);
    const id = await sha256(new TextEncoder().encode(`${connection}\0${name}`));
    const { meta } = await env.DB.prepare("UPDATE pending_registrations SET expires_at = ? WHERE id = ?")
      .bind(Date.now() - 1, id)
      .run();
    expect(meta.changes).toBe(1);
    expect((await registerFinish(name, record, randomKey(), connection)).status).toBe(Status.Unauthorized);
    expect(await userRows(name)).toBe(0);
  });

  it("stores nothing but a hash and an expiry at RegisterStart, and reserves no name", async () => {
    const name = uniqueName("pending");
    const connection = uniqueConn();
    await startedRecord(name, connection);
    const { results } = await env.DB.prepare("SELECT * FROM pending_registrations").all<Record<string, unknown>>();
    expect(results.length).toBeGreaterThan(0);
    for (const row of results) expect(Object.keys(row).sort()).toEqual(["expires_at", "id"]);
    // Another connection can still register the name while the first has only started.
    expect(await register(name, "pw-other", randomKey())).toBe(true);
  });

  it("refuses a registration record the OPAQUE library cannot use (BadRequest) and stores nothing", async () => {
    const name = uniqueName("broken");
    const connection = uniqueConn();
    const record = await startedRecord(name, connection);
    // 0xff… is no canonical ristretto255 encoding: the record's client public key is broken.
    record.fill(0xff, 0, 32);
    const res = await registerFinish(name, record, randomKey(), connection);
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toMatch(/not a valid OPAQUE registration record/);
    expect(await userRows(name)).toBe(0);
  });

  it("answers LoginStart for a user whose stored record is unusable exactly like for an unknown user", async () => {
    const name = uniqueName("corrupt");
    const identity = randomKey();
    const record = await startedRecord(name, uniqueConn());
    record.fill(0xff, 0, 32);
    // Such a row can only come from outside the RPC layer (an older server, a restore, a bug).
    await env.DB.prepare("INSERT INTO users (username, identity_key, opaque_record, created_at) VALUES (?, ?, ?, ?)")
      .bind(name, identity, record, Date.now())
      .run();
    const connection = uniqueConn();
    const broken = await loginStart(name, password, connection);
    const unknown = await loginStart(uniqueName("ghost"), password, uniqueConn());
    expect(broken.response).toHaveLength(unknown.response.length);
    expect(broken.finalization).toBeUndefined();
    const res = await loginFinish(name, randomBytes(64), identity, connection);
    expect(res.status).toBe(Status.Unauthorized);
    expect(errorOf(res).message).toMatch(/login failed/);
  });
});
