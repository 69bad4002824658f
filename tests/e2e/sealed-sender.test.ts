// Sealed-sender mode end to end: the whole system started as `npm start` starts it, with
// QPQ_SEALED_SENDER the one setting for front and edge, real QUIC clients, a plugin recording
// every event into the front's log. After enqueues (single, batch, a retried message id), the
// persisted Durable Object and D1 files, the front's and the edge's output, the metrics and the
// plugin events hold no form of the sender's identity (nor the tag the edge derives from it); the
// same run without the mode finds it where docs/protocol.md says it is kept: the sender tag in the
// recipient's queue, senderIdentity in plugin events.
import { describe, it, expect, afterAll } from "vitest";
import { createHash, createHmac, createPublicKey, hkdfSync, verify as verifySignature } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { spawnSystem, type SystemProcess } from "../support/process-system.ts";
import { ed25519Identity, uniqueName } from "../support/system.ts";
import { loadOrCreateSecrets } from "../../local/secrets.ts";
import { importAssertionKey, mintAssertion } from "../../edge/lib/caller-assertion.ts";
import { Method, RelayHeader as H, Status, pb } from "../../proto/index.ts";

/** The sender tag as docs/protocol.md defines it: HMAC-SHA256(HKDF(DELIVERY_SIGNING_KEY, "qpq-sender-tag-v1"), identity)[0:16]. */
function documentedSenderTag(deliverySigningKeyBase64: string, identity: Uint8Array): Uint8Array {
  const key = hkdfSync(
    "sha256",
    Buffer.from(deliverySigningKeyBase64, "base64"),
    new Uint8Array(0),
    "qpq-sender-tag-v1",
    32,
  );
  return new Uint8Array(createHmac("sha256", Buffer.from(key)).update(identity).digest().subarray(0, 16));
}

const RECORDER = `
export const manifest = { name: "recorder" };
const record = (hook, event) => log(JSON.stringify({ hook, event }));
export function on_connect(e) { record("on_connect", e); }
export function on_disconnect(e) { record("on_disconnect", e); }
export function on_message_send(e) { record("on_message_send", e); }
export function on_message_receive(e) { record("on_message_receive", e); }
`;

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Every form the identity (or a tag of it) could take in storage or text. */
function forms(bytes: Uint8Array): { name: string; needle: Buffer }[] {
  const b = Buffer.from(bytes);
  return [
    { name: "raw", needle: b },
    { name: "hex", needle: Buffer.from(b.toString("hex")) },
    { name: "HEX", needle: Buffer.from(b.toString("hex").toUpperCase()) },
    { name: "base64", needle: Buffer.from(b.toString("base64").replace(/=+$/, "")) },
    { name: "base64url", needle: Buffer.from(b.toString("base64url")) },
  ];
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

/** Which forms of `bytes` occur in the files (SQLite databases with their WAL, i.e. also rows not yet checkpointed). */
function occurrences(files: string[], bytes: Uint8Array): string[] {
  const found: string[] = [];
  for (const file of files) {
    const content = readFileSync(file);
    for (const f of forms(bytes)) if (content.includes(f.needle)) found.push(`${f.name} in ${file}`);
  }
  return found;
}

/** D1 tables with a row holding `bytes` (as a blob, or hex/base64 text), read from a copy of the database. */
function d1TablesWith(d1Files: string[], bytes: Uint8Array, scratch: string): string[] {
  const tables = new Set<string>();
  for (const file of d1Files.filter((f) => f.endsWith(".sqlite"))) {
    const copy = join(scratch, `d1-${tables.size}-${Math.random().toString(36).slice(2)}.sqlite`);
    writeFileSync(copy, readFileSync(file));
    for (const suffix of ["-wal", "-shm"]) {
      try {
        writeFileSync(copy + suffix, readFileSync(file + suffix));
      } catch {
        /* no WAL */
      }
    }
    const db = new DatabaseSync(copy);
    try {
      const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
      for (const { name } of names) {
        const rows = db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).all() as Record<string, unknown>[];
        const hit = rows.some((row) =>
          Object.values(row).some((v) => {
            if (v instanceof Uint8Array) return Buffer.from(v).includes(Buffer.from(bytes));
            if (typeof v === "string") return forms(bytes).some((f) => v.includes(f.needle.toString()));
            return false;
          }),
        );
        if (hit) tables.add(name);
      }
    } finally {
      db.close();
    }
  }
  return [...tables].sort();
}

interface Run {
  sealed: boolean;
  sender: Uint8Array;
  recipient: Uint8Array;
  identityTag: Uint8Array;
  output: string;
  events: { hook: string; event: Record<string, unknown> }[];
  metrics: string;
  queueFiles: string[];
  d1Files: string[];
  d1Tables: string[];
}

/** Registers a sender and two recipients, enqueues every way, then stops the system and collects what it kept. */
async function scenario(sealed: boolean): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), `qpq-sealed-${sealed}-`));
  const pluginDir = join(dataDir, "plugins");
  mkdirSync(pluginDir);
  writeFileSync(join(pluginDir, "10-recorder.js"), RECORDER);
  let sys: SystemProcess | undefined;
  try {
    sys = await spawnSystem(dataDir, {
      QPQ_SEALED_SENDER: String(sealed),
      QPQ_PLUGIN_DIR: pluginDir,
      QPQ_LOG_LEVEL: "debug",
      QPQ_METRICS_LISTEN: "127.0.0.1:0",
    });
    const sender = ed25519Identity();
    const recipient = ed25519Identity();
    const other = ed25519Identity();
    const users: [Uint8Array, string][] = [
      [sender, uniqueName("sender")],
      [recipient, uniqueName("recipient")],
      [other, uniqueName("other")],
    ];
    const clients = [];
    for (const [key, name] of users) {
      const c = await sys.connect();
      expect(await c.register(name, `pw ${name}`, key)).toBe(true);
      expect((await c.login(name, `pw ${name}`, key)).length).toBe(32);
      clients.push(c);
    }
    const [alice, bob, carol] = clients;
    const wellKnown = (await (await fetch(new URL("/.well-known/qpq", sys.edgeUrl))).json()) as {
      delivery_proof_key: string;
      sealed_sender: boolean;
    };
    expect(wellKnown.sealed_sender).toBe(sealed);

    // Enqueues still need an authenticated connection.
    const anonymous = await sys.connect();
    await expect(anonymous.enqueue({ recipientKey: recipient, payload: new Uint8Array([1]) })).rejects.toThrow(
      /session/,
    );
    await anonymous.close();

    const channel = crypto.getRandomValues(new Uint8Array(16));
    const messageId = crypto.getRandomValues(new Uint8Array(16));
    const payload = crypto.getRandomValues(new Uint8Array(300));
    const first = await alice.enqueue({ recipientKey: recipient, channelId: channel, payload, messageId });
    expect(first.duplicate).toBe(false);
    // The delivery proof verifies against the published key, in either mode.
    const proof = first.deliveryProof;
    const time = proof.subarray(1, 9);
    const signed = Buffer.concat([
      Buffer.from("qpq-delivery-v1"),
      recipient,
      Buffer.from([channel.length]),
      channel,
      Buffer.from(new BigUint64Array([BigInt(first.seq)]).buffer).reverse(),
      createHash("sha256").update(payload).digest(),
      time,
    ]);
    const proofKey = createPublicKey({
      key: Buffer.concat([
        Buffer.from("302a300506032b6570032100", "hex"),
        Buffer.from(wellKnown.delivery_proof_key, "hex"),
      ]),
      format: "der",
      type: "spki",
    });
    expect(verifySignature(null, signed, proofKey, proof.subarray(9))).toBe(true);

    // Idempotency works from what the front knows: a retry on this connection, and one on a new
    // connection from the same address, answer the first seq and store nothing.
    const again = await alice.enqueue({ recipientKey: recipient, channelId: channel, payload, messageId });
    expect({ seq: again.seq, duplicate: again.duplicate }).toEqual({ seq: first.seq, duplicate: true });
    const alice2 = await sys.connect();
    await alice2.login(users[0][1], `pw ${users[0][1]}`, sender);
    const retried = await alice2.enqueue({ recipientKey: recipient, channelId: channel, payload, messageId });
    expect({ seq: retried.seq, duplicate: retried.duplicate }).toEqual({ seq: first.seq, duplicate: true });
    await alice2.enqueue({ recipientKey: recipient, channelId: channel, payload: new Uint8Array(50).fill(7) });
    await alice.batchEnqueue({ recipientKeys: [recipient, other], payload: new Uint8Array(80).fill(9) });

    const got = await bob.fetch({ channelId: channel });
    expect(got.map((e) => e.data.length)).toEqual([300, 50]);
    expect(await carol.fetch()).toHaveLength(1);

    // A front in the other mode is refused at the edge, which logs it: this also shows the edge's
    // own log lines are part of the output searched below.
    const secrets = await loadOrCreateSecrets(dataDir);
    const assertion = await mintAssertion(
      await importAssertionKey(secrets.FRONT_SECRET),
      { identityKey: sender, deviceId: new Uint8Array(0) },
      Date.now() + 60_000,
    );
    const mismatched = await fetch(new URL(`/rpc/${Method.Enqueue}`, sys.edgeUrl), {
      method: "POST",
      headers: {
        "content-type": "application/x-protobuf",
        [H.frontAuth]: secrets.FRONT_SECRET,
        [H.connection]: "other-front:1",
        [H.requestId]: "1",
        [H.caller]: assertion,
        ...(sealed ? {} : { [H.sealedSender]: "ab".repeat(16) }),
      },
      body: pb.EnqueueRequest.encode({ recipientKey: recipient, payload: new Uint8Array([1]) }).finish(),
    });
    await mismatched.arrayBuffer();
    expect(mismatched.headers.get(H.status)).toBe(String(Status.Unavailable));
    for (let i = 0; i < 200 && !sys.output().includes("front and edge disagree"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(sys.output()).toContain("front and edge disagree on sealed-sender mode");

    const metricsUrl = (/"metrics":"([^"]+)"/.exec(sys.output()) ?? [])[1];
    expect(metricsUrl).toBeTruthy();
    const metrics = await (await fetch(metricsUrl!)).text();
    expect(metrics).toContain("enqueue_total");

    // Let the observers' events reach the log before the processes stop.
    for (let i = 0; i < 200 && !sys.output().includes('\\"on_message_receive\\"'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    sys.killNow();
    await sys.waitGone();

    const output = sys.output();
    const events = output.split("\n").flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; line?: string };
        return entry.msg === "plugin log" && entry.line ? [JSON.parse(entry.line) as Run["events"][number]] : [];
      } catch {
        return [];
      }
    });
    const identityTag = documentedSenderTag(secrets.DELIVERY_SIGNING_KEY, sender);
    const edgeFiles = filesUnder(join(dataDir, "edge"));
    const queueFiles = edgeFiles.filter((f) => /RecipientQueue/.test(f));
    const d1Files = edgeFiles.filter((f) => /[/\\]d1[/\\]/.test(f));
    expect(queueFiles.length).toBeGreaterThan(0);
    expect(d1Files.length).toBeGreaterThan(0);
    return {
      sealed,
      sender,
      recipient,
      identityTag,
      output,
      events,
      metrics,
      queueFiles,
      d1Files,
      d1Tables: d1TablesWith(d1Files, sender, dataDir),
    };
  } finally {
    sys?.killNow();
    await sys?.waitGone().catch(() => {});
    runs.push(dataDir);
  }
}

const runs: string[] = [];
afterAll(() => {
  for (const dir of runs) rmSync(dir, { recursive: true, force: true });
});

describe("sealed-sender mode", () => {
  it(
    "keeps no trace of who sent a message: queues, D1, logs, metrics and plugin events",
    { timeout: 300_000 },
    async () => {
      const run = await scenario(true);
      const sends = run.events.filter((e) => e.hook === "on_message_send");
      expect(sends.length).toBe(5);
      for (const e of sends) expect(e.event).not.toHaveProperty("senderIdentity");
      // The recipient is routed by, so it is seen; the sender in no form, nor its tag.
      expect(occurrences(run.queueFiles, run.sender)).toEqual([]);
      expect(occurrences(run.queueFiles, run.identityTag)).toEqual([]);
      expect(forms(run.sender).filter((f) => run.output.includes(f.needle.toString()))).toEqual([]);
      expect(forms(run.identityTag).filter((f) => run.output.includes(f.needle.toString()))).toEqual([]);
      expect(forms(run.sender).filter((f) => run.metrics.includes(f.needle.toString()))).toEqual([]);
      // D1 holds the account (registration, session, device, key transparency), never a message.
      expect(run.d1Tables).toEqual(ACCOUNT_TABLES);
    },
  );

  it("without the mode, finds the sender where the docs say it is kept", { timeout: 300_000 }, async () => {
    const run = await scenario(false);
    const sends = run.events.filter((e) => e.hook === "on_message_send");
    expect(sends.length).toBe(5);
    for (const e of sends) expect(e.event.senderIdentity).toBe(hex(run.sender));
    // The recipient's queue keeps the sender tag (HMAC of the identity), never the identity itself.
    expect(occurrences(run.queueFiles, run.identityTag).some((o) => o.startsWith("raw "))).toBe(true);
    expect(occurrences(run.queueFiles, run.sender)).toEqual([]);
    // The plugin events (written to the log by the recording plugin) name the sender.
    expect(run.output).toContain(hex(run.sender));
    expect(forms(run.sender).filter((f) => run.metrics.includes(f.needle.toString()))).toEqual([]);
    expect(run.d1Tables).toEqual(ACCOUNT_TABLES);
  });
});

/** D1 tables that name an account's identity in either mode (docs/security.md, "What the server sees"). */
const ACCOUNT_TABLES = ["devices", "sessions", "users"];
