// The client side of OPAQUE inside workerd (the same extracted wasm the edge uses), for tests
// that register real users through the RPC layer.
import { client, initOpaque } from "../../edge/generated/opaque-glue.js";
import wasm from "../../edge/generated/opaque.wasm";
import { Method, RelayHeader, Status, parseSessionGrant, pb } from "../../proto/index.ts";
import { ok, rpc } from "./helpers.ts";

export { client };

export function opaqueReady(): Promise<void> {
  return initOpaque(wasm);
}

// The library speaks unpadded base64url strings; the wire carries raw bytes.
export function toB64u(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromB64u(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Registers `username` with real OPAQUE (100/101); returns OpaqueRegisterFinishResponse.success. */
export async function register(username: string, password: string, identityKey: Uint8Array): Promise<boolean> {
  await opaqueReady();
  const start = client.startRegistration({ password });
  const res1 = ok(
    await rpc(
      Method.OpaqueRegisterStart,
      pb.OpaqueRegisterStartRequest.encode({ username, request: fromB64u(start.registrationRequest) }).finish(),
    ),
    pb.OpaqueRegisterStartResponse,
  );
  const finish = client.finishRegistration({
    password,
    clientRegistrationState: start.clientRegistrationState,
    registrationResponse: toB64u(res1.response),
  });
  const res2 = ok(
    await rpc(
      Method.OpaqueRegisterFinish,
      pb.OpaqueRegisterFinishRequest.encode({
        username,
        upload: fromB64u(finish.registrationRecord),
        identityKey,
      }).finish(),
    ),
    pb.OpaqueRegisterFinishResponse,
  );
  return res2.success;
}

/** LoginStart on `connection`, then the client's finalization (undefined when the client rejects the server). */
export async function loginStart(username: string, password: string, connection: string) {
  await opaqueReady();
  const start = client.startLogin({ password });
  const res = ok(
    await rpc(
      Method.OpaqueLoginStart,
      pb.OpaqueLoginStartRequest.encode({ username, request: fromB64u(start.startLoginRequest) }).finish(),
      { connection },
    ),
    pb.OpaqueLoginStartResponse,
  );
  const finish = client.finishLogin({
    clientLoginState: start.clientLoginState,
    loginResponse: toB64u(res.response),
    password,
  });
  return { response: res.response, finalization: finish ? fromB64u(finish.finishLoginRequest) : undefined };
}

/**
 * Logs `username` in with real OPAQUE (102/103) on its own connection, optionally naming a
 * device. Returns the finish result, and on success the token and the caller assertion the edge
 * minted for the session (what the front would attach to the session's later calls).
 */
export async function login(
  username: string,
  password: string,
  identityKey: Uint8Array,
  deviceId: Uint8Array = new Uint8Array(0),
) {
  const connection = `login-${crypto.randomUUID()}`;
  const started = await loginStart(username, password, connection);
  const finalization = started.finalization ?? new Uint8Array(64);
  const res = await rpc(
    Method.OpaqueLoginFinish,
    pb.OpaqueLoginFinishRequest.encode({ username, finalization, identityKey, deviceId }).finish(),
    { connection },
  );
  const grant = parseSessionGrant(res.headers.get(RelayHeader.session) ?? undefined);
  const token = res.status === Status.Ok ? pb.OpaqueLoginFinishResponse.decode(res.body).sessionToken : undefined;
  return { res, token, assertion: grant?.assertion };
}
