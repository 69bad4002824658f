// Whether a client-uploaded OPAQUE registration record can ever be used for a login. The only
// structural check that matters is the library's own: a record whose client public key is not a
// valid ristretto255 point fails to deserialise at every later LoginStart. Checking by doing a
// login start against it with a throwaway KE1 tests exactly what LoginStart will do.
import wasmModule from "../generated/opaque.wasm";
import { client, initOpaque } from "../generated/opaque-glue.js";
import { OpaqueInputError, loginStart } from "./opaque.ts";

function fromB64u(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** True when the OPAQUE library accepts `record` for a login of `username`. */
export async function recordIsUsable(serverSetup: string, username: string, record: Uint8Array): Promise<boolean> {
  await initOpaque(wasmModule);
  // Any password: KE1 carries only a blinded element and an ephemeral key share.
  const probe = fromB64u(client.startLogin({ password: "record check" }).startLoginRequest);
  try {
    await loginStart(serverSetup, username, record, probe);
    return true;
  } catch (err) {
    if (isBrokenRecord(err)) return false;
    throw err;
  }
}

/** The library refused the stored registration record (as opposed to the client's request). */
export function isBrokenRecord(err: unknown): boolean {
  return err instanceof OpaqueInputError && err.field === "registrationRecord";
}
