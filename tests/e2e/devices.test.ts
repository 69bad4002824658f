// Devices and account deletion end to end over QUIC: two devices of one user each get every
// message and ack on their own; a revoked device's connection loses its session on its next
// call; a sixth device is refused; DeleteAccount frees the name; the CLI device commands.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Status } from "../../proto/index.ts";
import { QpqCallError, QpqClient, newDeviceId } from "../../sdk/client.ts";
import { randomIdentity, startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import { callFailure, registerAndLogin } from "../support/users.ts";

const CLI = join(import.meta.dirname, "../../sdk/cli.ts");
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

describe("devices over QUIC", () => {
  let sys: TestSystem;
  let dir: string;

  beforeAll(async () => {
    sys = await startTestSystem();
    dir = mkdtempSync(join(tmpdir(), "qpq-devices-"));
  });

  afterAll(async () => {
    await sys?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A new user, registered and logged in on its default device. */
  const loggedInUser = async (prefix: string) => registerAndLogin(await sys.connect(), prefix);

  /** A registered user logged in on its default device, and a second connection logged in as a new device. */
  async function userWithTwoDevices() {
    const name = uniqueName("multi");
    const key = randomIdentity();
    const phone = await sys.connect();
    expect(await phone.register(name, "pw", key)).toBe(true);
    await phone.login(name, "pw", key);
    const laptopId = newDeviceId();
    expect(await phone.registerDevice(laptopId, "Laptop")).toBe(true);
    const laptop = await sys.connect();
    await laptop.login(name, "pw", key, laptopId);
    return { name, key, phone, laptop, laptopId };
  }

  it("delivers every message to both devices; each acks on its own; a message stays until the second ack", async () => {
    const u = await userWithTwoDevices();
    const { client: sender } = await loggedInUser("sender");
    const s1 = (await sender.enqueue({ recipientKey: u.key, payload: bytes("one") })).seq;
    const s2 = (await sender.enqueue({ recipientKey: u.key, payload: bytes("two") })).seq;

    expect((await u.phone.fetch()).map((e) => text(e.data))).toEqual(["one", "two"]);
    expect((await u.laptop.fetch()).map((e) => text(e.data))).toEqual(["one", "two"]);
    await u.phone.ack(Number(s2));
    expect(await u.phone.fetch()).toEqual([]);
    // Still there for the laptop, which has not acked.
    expect((await u.laptop.fetch()).map((e) => text(e.data))).toEqual(["one", "two"]);
    await u.laptop.ack(Number(s1));
    expect((await u.laptop.fetch()).map((e) => text(e.data))).toEqual(["two"]);
    await u.laptop.ack(Number(s2));
    expect(await u.laptop.fetch()).toEqual([]);

    // A session reads only its own device's cursor.
    const other = await callFailure(u.phone.fetch({ deviceId: u.laptopId }));
    expect(other.status).toBe(Status.Forbidden);

    const { devices } = await u.laptop.listDevices();
    expect(devices.map((d) => [d.name, d.current])).toEqual([
      ["default", false],
      ["Laptop", true],
    ]);
  });

  it("a revoked device's connection loses its session on its next call, and the queue stops waiting for it", async () => {
    const u = await userWithTwoDevices();
    const { client: sender } = await loggedInUser("sender");
    const seq = Number((await sender.enqueue({ recipientKey: u.key, payload: bytes("kept for the laptop") })).seq);
    await u.phone.ack(seq);
    expect(await u.laptop.fetch()).toHaveLength(1);

    await u.phone.revokeDevice(u.laptopId);
    // The laptop's next call is refused by the edge, and the front unbinds its session...
    const refused = await callFailure(u.laptop.fetch());
    expect(refused.status).toBe(Status.Unauthorized);
    // ...so the call after that is refused at the front: this connection has no session any more.
    const unbound = await callFailure(u.laptop.listDevices());
    expect(unbound.status).toBe(Status.Unauthorized);
    expect(unbound.message).toMatch(/no session/);
    // Its token does not resume either.
    const again = await sys.connect();
    expect((await callFailure(again.resume(u.laptop.sessionToken!))).status).toBe(Status.Unauthorized);
    // The phone goes on; a message the revoked laptop never acked is no longer held for it.
    expect((await u.phone.listDevices()).devices).toHaveLength(1);
    expect(await u.phone.fetch()).toEqual([]);
  });

  /** Enqueues from `client` until the front refuses it for having no session (bounded tries). */
  async function untilUnbound(client: QpqClient, recipientKey: Uint8Array): Promise<QpqCallError> {
    for (let i = 0; i < 100; i++) {
      try {
        await client.enqueue({ recipientKey, payload: bytes("after the end") });
      } catch (err) {
        if (err instanceof QpqCallError) return err;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("the session was never ended");
  }

  it("a revoked device's or deleted account's open connections lose their session at once, enqueues included", async () => {
    const u = await userWithTwoDevices();
    const { key: otherKey } = await loggedInUser("other");
    await u.laptop.enqueue({ recipientKey: otherKey, payload: bytes("before") });

    // Enqueue never asks the sender's queue about its device: only the revocation signal the
    // user's queue sends to the fronts can end this session before its re-validation (minutes).
    await u.phone.revokeDevice(u.laptopId);
    const revoked = await untilUnbound(u.laptop, otherKey);
    expect(revoked.status).toBe(Status.Unauthorized);
    expect(revoked.message).toMatch(/no session/);

    const u2 = await userWithTwoDevices();
    await u2.laptop.enqueue({ recipientKey: otherKey, payload: bytes("before") });
    await u2.phone.deleteAccount();
    const deleted = await untilUnbound(u2.laptop, otherKey);
    expect(deleted.status).toBe(Status.Unauthorized);
    expect(deleted.message).toMatch(/no session/);
  });

  it("refuses a sixth device with Forbidden", async () => {
    const u = await userWithTwoDevices();
    for (let i = 0; i < 3; i++) expect(await u.phone.registerDevice(newDeviceId(), `extra ${i}`)).toBe(true);
    const sixth = await callFailure(u.phone.registerDevice(newDeviceId(), "one too many"));
    expect(sixth.status).toBe(Status.Forbidden);
    expect(sixth.message).toMatch(/at most 5 devices/);
  });

  it("DeleteAccount ends the account; its name registers again with a new key", async () => {
    const u = await userWithTwoDevices();
    await u.phone.deleteAccount();
    expect((await callFailure(u.laptop.fetch())).status).toBe(Status.Unauthorized);
    const fresh = await sys.connect();
    const newKey = randomIdentity();
    expect(await fresh.register(u.name, "new pw", newKey)).toBe(true);
    await fresh.login(u.name, "new pw", newKey);
    expect(await fresh.resolveUser(u.name)).toEqual(newKey);
  });

  describe("qpq CLI", () => {
    let server: string;
    let ca: string;

    function qpq(
      args: string[],
      profileDir: string,
      password?: string,
    ): Promise<{ code: number; stdout: string; stderr: string }> {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir, QPQ_PROFILE: profileDir };
      if (password !== undefined) env.QPQ_PASSWORD = password;
      return new Promise((resolve) => {
        const child = execFile(
          process.execPath,
          [CLI, ...args, "--server", server, "--ca", ca],
          { env, timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
        );
        child.stdin?.end(); // not a TTY
      });
    }

    it("device add, login --device, devices, device revoke and delete-account (confirmed)", async () => {
      server = `127.0.0.1:${sys.system.quicPort}`;
      ca = join(dir, "ca.pem");
      writeFileSync(ca, sys.system.certPem);
      const name = uniqueName("cli");
      const phoneDir = join(dir, "phone");
      const laptopDir = join(dir, "laptop");
      expect(await qpq(["register", name], phoneDir, "pw")).toMatchObject({ code: 0 });
      expect(await qpq(["login", name], phoneDir, "pw")).toMatchObject({ code: 0 });

      const added = await qpq(["device", "add", "Laptop"], phoneDir);
      expect(added).toMatchObject({ code: 0, stderr: "" });
      const id = /added device ([0-9a-f]{32}) \(Laptop\)/.exec(added.stdout)?.[1];
      expect(id).toBeDefined();
      expect(added.stdout).toContain(`qpq login ${name} --device ${id}`);

      // The laptop gets a copy of the profile (the identity key) and logs in as that device.
      mkdirSync(laptopDir, { recursive: true });
      copyFileSync(join(phoneDir, `${name}.json`), join(laptopDir, `${name}.json`));
      const onLaptop = await qpq(["login", name, "--device", id!], laptopDir, "pw");
      expect(onLaptop).toMatchObject({ code: 0, stdout: `logged in as ${name} on device ${id}\n` });

      const listed = await qpq(["devices"], laptopDir);
      expect(listed.code).toBe(0);
      const lines = listed.stdout.trimEnd().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^  default\tdefault\tadded /);
      expect(lines[1]).toMatch(new RegExp(`^\\* ${id}\\tLaptop\\tadded .*\\tlast seen \\d{4}-`));

      expect(await qpq(["device", "revoke", id!], phoneDir)).toMatchObject({
        code: 0,
        stdout: `revoked device ${id} of ${name}\n`,
      });
      const gone = await qpq(["devices"], laptopDir);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/no longer valid/);
      expect((await qpq(["device", "revoke", "zz"], phoneDir)).stderr).toMatch(/hex/);

      // Deleting asks for confirmation; without a terminal only --yes does it.
      const unconfirmed = await qpq(["delete-account"], phoneDir);
      expect(unconfirmed.code).toBe(1);
      expect(unconfirmed.stderr).toMatch(/--yes/);
      expect((await qpq(["devices"], phoneDir)).code).toBe(0);
      const deleted = await qpq(["delete-account", "--yes"], phoneDir);
      expect(deleted).toMatchObject({ code: 0, stderr: "" });
      expect(existsSync(join(phoneDir, `${name}.json`))).toBe(false);
      expect(await qpq(["register", name], phoneDir, "pw2")).toMatchObject({ code: 0 });
    });
  });
});
