// Nothing acknowledged is lost or duplicated by a crash: the whole local system (front, Miniflare
// and its workerd processes) is SIGKILLed while enqueues are in flight and started again on the
// same data directory.
import { describe, it, expect } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Status } from "../../proto/index.ts";
import { QpqCallError, type Envelope, type QpqClient } from "../../sdk/client.ts";
import { spawnSystem, killGroup, type SystemProcess } from "../support/process-system.ts";
import { randomIdentity, uniqueName } from "../support/system.ts";

/** Enqueues in flight at once. */
const CONCURRENCY = 16;
/**
 * The kill comes when this many enqueues were acknowledged. With the retries below this stays
 * within one sender's default enqueue burst (SENDER_ENQUEUE_BURST), so the run is not throttled.
 */
const ACKED_BEFORE_KILL = 100;
/** Backstop: a system that cannot acknowledge this many is failing anyway. */
const MAX_ATTEMPTS = 1000;
/** Large enough for a busy machine; an enqueue that times out simply counts as unacknowledged. */
const REQUEST_TIMEOUT_MS = 60_000;
const FETCH_PAGE = 40;
/** Two start-ups of the whole system; on a busy 2-core machine each can take half a minute. */
const TEST_TIMEOUT_MS = 240_000;

interface Sent {
  id: Uint8Array;
  payload: Uint8Array;
  /** The seq the server acknowledged, if it did. */
  seq?: number;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A unique payload that names its message id, so a fetched envelope can be matched to it. */
function payloadFor(id: Uint8Array, i: number): Uint8Array {
  const filler = crypto.getRandomValues(new Uint8Array(i % 7 === 0 ? 3000 : 40 + (i % 200)));
  const p = new Uint8Array(16 + 4 + filler.length);
  p.set(id, 0);
  new DataView(p.buffer).setUint32(16, i);
  p.set(filler, 20);
  return p;
}

/** Every pending envelope of the caller, paging with Fetch and Ack. */
async function drain(client: QpqClient): Promise<Envelope[]> {
  const all: Envelope[] = [];
  for (;;) {
    const page = await client.fetch({ limit: FETCH_PAGE });
    if (page.length === 0) return all;
    all.push(...page);
    await client.ack(page[page.length - 1].seq);
  }
}

/** Enqueue as a client retries it: the same message id again after RateLimited. */
async function enqueueRetrying(client: QpqClient, recipientKey: Uint8Array, m: Sent) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.enqueue({ recipientKey, payload: m.payload, messageId: m.id });
    } catch (err) {
      if (!(err instanceof QpqCallError) || err.status !== Status.RateLimited || attempt >= 20) throw err;
      await sleep(Math.min(Math.max(err.retryAfterMs, 50), 2000));
    }
  }
}

describe("crash", () => {
  it(
    "keeps every acknowledged enqueue exactly once across a SIGKILL of the whole system",
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "qpq-crash-"));
      let sys: SystemProcess | undefined;
      try {
        sys = await spawnSystem(dataDir);
        const alice = { name: uniqueName("alice"), key: randomIdentity() };
        const bob = { name: uniqueName("bob"), key: randomIdentity() };
        // Each logs in right after connecting, well within the front's 30 s authentication deadline.
        const sender = await sys.connect({ requestTimeoutMs: REQUEST_TIMEOUT_MS });
        expect(await sender.register(alice.name, "pw-alice", alice.key)).toBe(true);
        await sender.login(alice.name, "pw-alice", alice.key);
        const recipient = await sys.connect();
        expect(await recipient.register(bob.name, "pw-bob", bob.key)).toBe(true);
        await recipient.login(bob.name, "pw-bob", bob.key);
        await recipient.close();

        // Concurrent enqueues until enough are acknowledged, then SIGKILL while the rest are in flight.
        const sent: Sent[] = [];
        let acked = 0;
        let killed = false;
        let inFlightAtKill = 0;
        let inFlight = 0;
        let duplicates = 0;
        let markKilled!: () => void;
        const killedSignal = new Promise<void>((resolve) => {
          markKilled = resolve;
        });
        const running = sys;
        const worker = async () => {
          while (!killed && sent.length < MAX_ATTEMPTS) {
            const id = crypto.getRandomValues(new Uint8Array(16));
            const m: Sent = { id, payload: payloadFor(id, sent.length) };
            sent.push(m);
            inFlight++;
            let res: { seq: number; duplicate: boolean };
            try {
              res = await sender.enqueue({ recipientKey: bob.key, payload: m.payload, messageId: m.id });
            } catch (err) {
              inFlight--;
              // Unacknowledged: refused (e.g. RateLimited) or cut off by the kill. Either way it may
              // or may not be stored; the checks below allow both.
              if (!killed && err instanceof QpqCallError && err.status === Status.RateLimited) {
                await sleep(Math.min(Math.max(err.retryAfterMs, 50), 2000));
              }
              continue;
            }
            inFlight--;
            // An answer that arrives on the way down is an acknowledgement all the same.
            m.seq = res.seq;
            if (res.duplicate) duplicates++;
            if (++acked >= ACKED_BEFORE_KILL && !killed) {
              killed = true;
              inFlightAtKill = inFlight;
              running.killNow();
              markKilled();
            }
          }
        };
        const workers = Promise.all(Array.from({ length: CONCURRENCY }, worker));
        const outcome = await Promise.race([
          killedSignal.then(() => "killed" as const),
          workers.then(() => "exhausted" as const),
        ]);
        expect(outcome, `only ${acked} of ${sent.length} enqueues acknowledged before the attempts ran out`).toBe(
          "killed",
        );
        await sys.waitGone();
        // Enqueues cut off by the kill fail (or time out) now; none may hang the test.
        await sender.close().catch(() => {});
        await workers;

        const acknowledged = sent.filter((m) => m.seq !== undefined);
        const unacknowledged = sent.filter((m) => m.seq === undefined);
        expect(acknowledged.length).toBeGreaterThanOrEqual(ACKED_BEFORE_KILL);
        expect(inFlightAtKill).toBeGreaterThan(0);
        expect(duplicates, "fresh message ids answered as duplicates").toBe(0);
        expect(new Set(acknowledged.map((m) => m.seq)).size).toBe(acknowledged.length);

        // Same data directory, fresh processes.
        sys = await spawnSystem(dataDir);
        const bob2 = await sys.connect();
        await bob2.login(bob.name, "pw-bob", bob.key);
        const stored = await drain(bob2);

        const seqs = stored.map((e) => e.seq);
        expect(new Set(seqs).size, "a seq was delivered twice").toBe(seqs.length);
        expect(
          [...seqs].sort((a, b) => a - b),
          "seqs out of order",
        ).toEqual(seqs);
        const byId = new Map(sent.map((m) => [hex(m.id), m]));
        const found = new Map<string, Envelope>();
        for (const e of stored) {
          const key = hex(e.data.subarray(0, 16));
          const m = byId.get(key);
          expect(m, `seq ${e.seq} holds a payload nobody sent`).toBeDefined();
          expect(found.has(key), `message ${key} stored twice`).toBe(false);
          expect(Buffer.from(e.data).equals(Buffer.from(m!.payload)), `seq ${e.seq} payload differs`).toBe(true);
          found.set(key, e);
        }
        for (const m of acknowledged) {
          const e = found.get(hex(m.id));
          expect(e, `acknowledged seq ${m.seq} lost`).toBeDefined();
          expect(e!.seq).toBe(m.seq);
        }

        // The sender retries what it never saw acknowledged, with the same message ids: what was
        // stored is reported as a duplicate with its seq, the rest is stored now, once.
        const alice2 = await sys.connect();
        await alice2.login(alice.name, "pw-alice", alice.key);
        const maxSeq = Math.max(0, ...seqs);
        const storedByRetry = new Map<string, number>();
        for (const m of unacknowledged) {
          const res = await enqueueRetrying(alice2, bob.key, m);
          const before = found.get(hex(m.id));
          if (before) {
            expect(res.duplicate, `retry of stored ${hex(m.id)}`).toBe(true);
            expect(res.seq).toBe(before.seq);
          } else {
            expect(res.duplicate, `retry of unstored ${hex(m.id)}`).toBe(false);
            expect(res.seq).toBeGreaterThan(maxSeq);
            storedByRetry.set(hex(m.id), res.seq);
          }
        }
        // Acknowledged ones stay duplicates after the crash too.
        for (const m of acknowledged.slice(0, 5)) {
          const res = await enqueueRetrying(alice2, bob.key, m);
          expect(res.duplicate).toBe(true);
          expect(res.seq).toBe(m.seq);
        }
        const afterRetry = await drain(bob2);
        expect(afterRetry.map((e) => e.seq).sort((a, b) => a - b)).toEqual(
          [...storedByRetry.values()].sort((a, b) => a - b),
        );
        for (const e of afterRetry) {
          const m = byId.get(hex(e.data.subarray(0, 16)));
          expect(m && storedByRetry.get(hex(m.id))).toBe(e.seq);
          expect(Buffer.from(e.data).equals(Buffer.from(m!.payload))).toBe(true);
        }
        await Promise.allSettled([bob2.close(), alice2.close()]);
      } finally {
        if (sys) {
          killGroup(sys.pid);
          await sys.waitGone().catch(() => {});
        }
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
    TEST_TIMEOUT_MS,
  );
});
