// The `qpq` CLI as a user runs it: child processes against the whole local system over QUIC.
// Children run asynchronously: the system under test lives in this process's event loop.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestSystem, uniqueName, type TestSystem } from "../support/system.ts";
import { envelopeLength } from "../../sdk/hybrid-envelope.ts";

const CLI = join(import.meta.dirname, "../../sdk/cli.ts");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe("qpq CLI", () => {
  let sys: TestSystem;
  let dir: string;
  let server: string;
  let ca: string;
  const alice = uniqueName("alice");
  const bob = uniqueName("bob");
  const profiles = () => ({ [alice]: join(dir, "alice-profile"), [bob]: join(dir, "bob-profile") });

  function qpq(args: string[], opts: { as?: string; password?: string } = {}): Promise<Run> {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir };
    if (opts.as) env.QPQ_PROFILE = profiles()[opts.as];
    if (opts.password !== undefined) env.QPQ_PASSWORD = opts.password;
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [CLI, ...args, "--server", server, "--ca", ca],
        { env, timeout: 60_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
      );
      child.stdin?.end(); // not a TTY: no password prompt possible
    });
  }

  beforeAll(async () => {
    sys = await startTestSystem();
    dir = mkdtempSync(join(tmpdir(), "qpq-cli-"));
    server = `127.0.0.1:${sys.system.quicPort}`;
    ca = join(dir, "ca.pem");
    writeFileSync(ca, sys.system.certPem);
  });

  afterAll(async () => {
    await sys?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("health prints ok", async () => {
    const r = await qpq(["health"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    // The front's uptime counts from its start, the edge's from its isolate's first request.
    expect(r.stdout).toMatch(/^ok \(front 0\.1\.0 up \d+s; edge 0\.1\.0, isolate up \d+s\)\n$/);
  });

  it("two users register, log in and exchange a message", async () => {
    for (const [name, pw] of [
      [alice, "alice pw"],
      [bob, "bob pw"],
    ]) {
      expect(await qpq(["register", name], { as: name, password: pw })).toMatchObject({ code: 0, stderr: "" });
      expect(await qpq(["login", name], { as: name, password: pw })).toMatchObject({ code: 0, stderr: "" });
    }

    const sent = await qpq(["send", bob, "hello", "bob"], { as: alice });
    expect(sent).toMatchObject({ code: 0, stderr: "" });
    const seq = sent.stdout.trim();
    expect(seq).toMatch(/^\d+$/);

    expect(await qpq(["recv"], { as: bob })).toEqual({ code: 0, stdout: `${seq}\thello bob\n`, stderr: "" });
    // Acked: nothing left, said on stderr so stdout stays messages only.
    expect(await qpq(["recv"], { as: bob })).toEqual({ code: 0, stdout: "", stderr: "no messages\n" });

    const who = await qpq(["whoami"], { as: bob });
    expect(who.code).toBe(0);
    expect(who.stdout).toContain(`username  ${bob}\n`);
  });

  it("send pads and seals the text to the recipient's hybrid key; recv opens it", async () => {
    const profile = JSON.parse(readFileSync(join(profiles()[bob], `${bob}.json`), "utf8")) as {
      identityKey: string;
      hybrid?: { publicKey: string };
    };
    expect(profile.hybrid).toBeDefined();
    const bobKey = new Uint8Array(Buffer.from(profile.identityKey, "base64url"));
    const observer = await sys.connect();
    await observer.login(bob, "bob pw", bobKey);
    // Login uploaded the profile's hybrid key.
    expect(Buffer.from(await observer.fetchHybridKey(bobKey)).toString("base64url")).toBe(profile.hybrid!.publicKey);
    const message = "the server sees only a padded envelope";
    const sent = await qpq(["send", bob, message], { as: alice });
    expect(sent).toMatchObject({ code: 0, stderr: "" });
    const [held] = await observer.peek();
    expect(Buffer.from(held.data.subarray(0, 6)).toString("hex")).toBe("515051450101"); // "QPQE", v1, suite 1
    expect(held.data.length).toBe(envelopeLength(message.length));
    expect(Buffer.from(held.data).includes(Buffer.from(message))).toBe(false);
    expect(await qpq(["recv"], { as: bob })).toEqual({
      code: 0,
      stdout: `${sent.stdout.trim()}\t${message}\n`,
      stderr: "",
    });
  });

  it("recv --wait returns a message that arrives while waiting", async () => {
    const waiting = qpq(["recv", "--wait", "20"], { as: alice });
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await qpq(["send", alice, "hi alice"], { as: bob })).code).toBe(0);
    const r = await waiting;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+\thi alice\n$/);
  });

  it("recv --wait that ends empty says so on stderr", async () => {
    expect(await qpq(["recv", "--wait", "1"], { as: bob })).toEqual({ code: 0, stdout: "", stderr: "no messages\n" });
  });

  it("login from a profile directory without the user's key says what is missing and the ways forward", async () => {
    const elsewhere = join(dir, "new-machine");
    const run = (args: string[]) =>
      new Promise<Run>((resolve) => {
        execFile(
          process.execPath,
          [CLI, "--profile", elsewhere, ...args, "--server", server, "--ca", ca],
          { env: { PATH: process.env.PATH, HOME: dir, QPQ_PASSWORD: "bob pw" }, timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
        );
      });
    const login = await run(["login", bob]);
    expect(login.code).toBe(1);
    expect(login.stdout).toBe("");
    expect(login.stderr).toContain(
      `error: this machine has no identity key for ${bob} (no ${join(elsewhere, `${bob}.json`)}); `,
    );
    expect(login.stderr).toContain(`copy the profile file ${bob}.json`);
    expect(login.stderr).toContain(`add this machine as a device of ${bob}`);
    expect(login.stderr).not.toContain(`run "qpq register ${bob}" first`);
    // Registering again is refused, and the refusal points the same ways.
    const register = await run(["register", bob]);
    expect(register.code).toBe(1);
    expect(register.stderr).toMatch(
      new RegExp(`^error: username ${bob} is already taken on ${server}; if it is yours, copy the profile file`),
    );
    // Copying the profile is enough.
    mkdirSync(elsewhere, { recursive: true });
    copyFileSync(join(profiles()[bob], `${bob}.json`), join(elsewhere, `${bob}.json`));
    expect(await run(["login", bob])).toEqual({ code: 0, stdout: `logged in as ${bob}\n`, stderr: "" });
  });

  it("a wrong password fails with one Unauthorized line and exit code 1", async () => {
    expect(await qpq(["login", bob], { as: bob, password: "not bob pw" })).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: Unauthorized (2): login failed\n",
    });
  });

  it("without QPQ_PASSWORD and no terminal it fails clearly", async () => {
    const r = await qpq(["login", bob], { as: bob });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: no password: set QPQ_PASSWORD.*\n$/);
  });

  it("keeps the profile and current pointer private (0600)", () => {
    for (const file of [join(profiles()[bob], `${bob}.json`), join(profiles()[bob], "current")]) {
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    expect(statSync(profiles()[bob]).mode & 0o777).toBe(0o700);
  });

  it("usage errors are one line, never a stack trace", async () => {
    const r = await qpq(["send", "nobody-at-all", "hi"], { as: alice });
    expect(r).toEqual({ code: 1, stdout: "", stderr: "error: NotFound (4): no such user\n" });
    const help = await qpq(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("qpq send <username> <message…>");
  });
});
