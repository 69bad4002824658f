// Users for the end-to-end tests: registered and logged in on their default device.
import { QpqCallError, type QpqClient } from "../../sdk/client.ts";
import { randomIdentity, uniqueName } from "./system.ts";

export interface TestUser {
  client: QpqClient;
  key: Uint8Array;
  name: string;
}

/** Registers a fresh name (from prefix) with key on client and logs it in. */
export async function registerAndLogin(
  client: QpqClient,
  prefix: string,
  key: Uint8Array = randomIdentity(),
): Promise<TestUser> {
  const name = uniqueName(prefix);
  await client.register(name, "pw", key);
  await client.login(name, "pw", key);
  return { client, key, name };
}

/** The QpqCallError a call fails with; anything else (or success) fails the test. */
export async function callFailure(p: Promise<unknown>): Promise<QpqCallError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof QpqCallError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}
