// Federation inside workerd: signed edge-to-edge requests (every refusal stores nothing and is
// counted), relays into local queues exactly once, name@domain look-ups, and the outbox towards a
// peer that is down (durable, deduplicated, bounded, backing off). This edge is region "b.test"
// (vitest.config.ts); peer "a.test" is played by the test with its own Ed25519 key.
import { describe, expect, it, beforeAll } from "vitest";
import { exports } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { Method, Status, encode, pb, decodeError, RelayHeader } from "../../proto/index.ts";
import { env, rpc, ok, registeredKey, randomKey, randomBytes, ensureAccount, bytesOf, textOf, hex } from "./helpers.ts";
import { signRequest } from "../../edge/federation/signature.ts";

const A = "a.test";
const C = "c.test";
const DOWN = "down.test";

interface PeerKeys {
  privateKey: CryptoKey;
  publicKey: Uint8Array;
}

async function newKeys(): Promise<PeerKeys> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  return {
    privateKey: pair.privateKey,
    publicKey: new Uint8Array((await crypto.subtle.exportKey("raw", pair.publicKey)) as ArrayBuffer),
  };
}

let a: PeerKeys;
let c: PeerKeys;

async function addPeer(domain: string, url: string, publicKey: Uint8Array): Promise<void> {
  await env.DB.prepare(
    "INSERT OR REPLACE INTO federation_peers (domain, url, public_key, updated_at) VALUES (?, ?, ?, 0)",
  )
    .bind(domain, url, publicKey)
    .run();
}

beforeAll(async () => {
  a = await newKeys();
  c = await newKeys();
  await addPeer(A, "http://127.0.0.1:9", a.publicKey);
  await addPeer(C, "http://127.0.0.1:9", c.publicKey);
  // Nothing listens on port 9: this peer is down for the outbox tests.
  await addPeer(DOWN, "http://127.0.0.1:9", (await newKeys()).publicKey);
});

interface Signed {
  method: number;
  body: Uint8Array;
  headers: Record<string, string>;
}

async function signed(
  method: number,
  body: Uint8Array,
  opts: { keys?: PeerKeys; keyId?: string; created?: number; path?: string } = {},
): Promise<Signed> {
  const headers = await signRequest({
    method: "POST",
    path: opts.path ?? `/federation/rpc/${method}`,
    body,
    keyId: opts.keyId ?? A,
    privateKey: (opts.keys ?? a).privateKey,
    created: opts.created ?? Math.floor(Date.now() / 1000),
  });
  return { method, body, headers: { ...headers } };
}

async function send(s: Signed, headers: Record<string, string> = s.headers) {
  const res = await exports.default.fetch(`https://edge/federation/rpc/${s.method}`, {
    method: "POST",
    headers,
    body: s.body,
  });
  const body = new Uint8Array(await res.arrayBuffer());
  return { http: res.status, status: Number(res.headers.get(RelayHeader.status) ?? NaN), body };
}

function relayBody(
  recipient: Uint8Array,
  text: string,
  opts: { sender?: Uint8Array; origin?: string; messageId?: Uint8Array } = {},
) {
  return encode(pb.RelayEnqueueRequest, {
    recipientKey: recipient,
    payload: bytesOf(text),
    messageId: opts.messageId ?? randomBytes(16),
    originDomain: opts.origin ?? A,
    senderIdentity: opts.sender ?? randomKey(),
  });
}

async function pendingTexts(recipient: Uint8Array): Promise<string[]> {
  const res = ok(
    await rpc(Method.Fetch, encode(pb.FetchRequest, { recipientKey: recipient, limit: 100 }), { caller: recipient }),
    pb.FetchResponse,
  );
  return res.payloads.map((e) => textOf(e.data));
}

async function metricsText(): Promise<string> {
  const res = await exports.default.fetch("https://edge/federation/metrics", {
    headers: { [RelayHeader.frontAuth]: env.FRONT_SECRET },
  });
  expect(res.status).toBe(200);
  return res.text();
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").pop()) : 0;
}

describe("/.well-known/qpq", () => {
  it("publishes the federation domain, URL and public key", async () => {
    const res = await exports.default.fetch("https://edge.example/.well-known/qpq");
    const doc = (await res.json()) as Record<string, string>;
    expect(doc.federation_domain).toBe("b.test");
    expect(doc.federation_url).toBe("https://edge.example");
    expect(doc.federation_public_key).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe("signed relays", () => {
  it("stores a relay from a peer once; a replayed request is refused; a retry is a duplicate", async () => {
    const bob = await registeredKey();
    await ensureAccount(bob);
    const sender = randomKey();
    const messageId = randomBytes(16);
    const body = relayBody(bob, "hello from a", { sender, messageId });
    const first = await signed(Method.RelayEnqueue, body);
    const r1 = await send(first);
    expect(r1.status).toBe(Status.Ok);
    expect(pb.RelayEnqueueResponse.decode(r1.body).duplicate).toBe(false);

    const replay = await send(first);
    expect(replay.status).toBe(Status.Unauthorized);
    expect(decodeError(replay.body).message).toContain("replay");

    // The outbox's retry after a lost answer: a new signature, the same relay message id.
    const retry = await send(await signed(Method.RelayEnqueue, body));
    expect(retry.status).toBe(Status.Ok);
    expect(pb.RelayEnqueueResponse.decode(retry.body).duplicate).toBe(true);

    expect(await pendingTexts(bob)).toEqual(["hello from a"]);
    expect(
      metric(await metricsText(), "federation_inbound_refused_total", `peer="${A}",reason="replay"`),
    ).toBeGreaterThan(0);
  });

  it("refuses unsigned, forged, unknown-peer, stale, future and tampered requests, storing nothing", async () => {
    const bob = await registeredKey();
    await ensureAccount(bob);
    const body = relayBody(bob, "must not arrive");
    const good = await signed(Method.RelayEnqueue, body);

    const cases: [string, Promise<{ status: number; body: Uint8Array }>][] = [
      ["unsigned", send(good, { "content-type": "application/x-protobuf" })],
      ["bad-signature", send(await signed(Method.RelayEnqueue, body, { keys: c }))],
      ["unknown-peer", send(await signed(Method.RelayEnqueue, body, { keyId: "nobody.test" }))],
      ["stale", send(await signed(Method.RelayEnqueue, body, { created: Math.floor(Date.now() / 1000) - 3600 }))],
      ["future", send(await signed(Method.RelayEnqueue, body, { created: Math.floor(Date.now() / 1000) + 3600 }))],
      ["bad-signature", send(await signed(Method.RelayEnqueue, body, { path: "/federation/rpc/904" }))],
      ["digest-mismatch", send({ ...good, body: relayBody(bob, "swapped body") }, good.headers)],
    ];
    for (const [reason, pending] of cases) {
      const res = await pending;
      expect(res.status, reason).toBe(Status.Unauthorized);
      expect(decodeError(res.body).message, reason).toContain(reason);
    }
    expect(await pendingTexts(bob)).toEqual([]);
    const text = await metricsText();
    expect(metric(text, "federation_inbound_refused_total", `peer="unknown",reason="unsigned"`)).toBeGreaterThan(0);
    expect(metric(text, "federation_inbound_refused_total", `peer="unknown",reason="unknown-peer"`)).toBeGreaterThan(0);
    expect(metric(text, "federation_inbound_refused_total", `peer="${A}",reason="bad-signature"`)).toBeGreaterThan(0);
    expect(metric(text, "federation_inbound_refused_total", `peer="${A}",reason="stale"`)).toBeGreaterThan(0);
    expect(metric(text, "federation_inbound_refused_total", `peer="${A}",reason="future"`)).toBeGreaterThan(0);
  });

  it("refuses a relay claiming a sender of another domain, or an origin other than the signer", async () => {
    const bob = await registeredKey();
    await ensureAccount(bob);
    // A user of this region, and a user c.test relayed first.
    const local = randomKey();
    await ensureAccount(local);
    const ofC = randomKey();
    const fromC = await send(
      await signed(Method.RelayEnqueue, relayBody(bob, "from c", { sender: ofC, origin: C }), { keys: c, keyId: C }),
    );
    expect(fromC.status).toBe(Status.Ok);

    for (const sender of [local, ofC]) {
      const res = await send(await signed(Method.RelayEnqueue, relayBody(bob, "spoofed", { sender })));
      expect(res.status).toBe(Status.Forbidden);
      expect(decodeError(res.body).message).toContain("relays only its own users");
    }
    const wrongOrigin = await send(await signed(Method.RelayEnqueue, relayBody(bob, "spoofed", { origin: C })));
    expect(wrongOrigin.status).toBe(Status.Forbidden);
    expect(await pendingTexts(bob)).toEqual(["from c"]);
    expect(
      metric(
        await metricsText(),
        "federation_inbound_refused_total",
        `peer="${A}",reason="status_${Status.Forbidden}"`,
      ),
    ).toBeGreaterThan(0);
  });

  async function sendBundle(items: { method: number; request: Uint8Array }[]) {
    const body = encode(pb.RelayBundleRequest, { items });
    const headers = await signRequest({
      method: "POST",
      path: "/federation/relay-bundle",
      body,
      keyId: A,
      privateKey: a.privateKey,
      created: Math.floor(Date.now() / 1000),
    });
    const res = await exports.default.fetch("https://edge/federation/relay-bundle", {
      method: "POST",
      headers: { ...headers },
      body,
    });
    expect(res.headers.get(RelayHeader.status)).toBe(String(Status.Ok));
    const { results } = pb.RelayBundleResponse.decode(new Uint8Array(await res.arrayBuffer()));
    return results.map((r) => (r.notAttempted ? "not attempted" : (r.status ?? 0)));
  }

  it("stores a bundle's relays in order; a relay refused for good holds back nothing", async () => {
    const bob = await registeredKey();
    await ensureAccount(bob);
    const local = randomKey();
    await ensureAccount(local);
    const results = await sendBundle([
      { method: Method.RelayEnqueue, request: relayBody(bob, "one") },
      { method: Method.RelayEnqueue, request: relayBody(bob, "two") },
      { method: Method.RelayEnqueue, request: relayBody(bob, "spoofed", { sender: local }) },
      { method: Method.RelayEnqueue, request: relayBody(bob, "after the refusal") },
    ]);
    expect(results).toEqual([Status.Ok, Status.Ok, Status.Forbidden, Status.Ok]);
    expect(await pendingTexts(bob)).toEqual(["one", "two", "after the refusal"]);
  });

  it("holds back only the busy recipient's later relays: others' go on, each recipient's stay in order", async () => {
    const bob = await registeredKey();
    const carol = await registeredKey();
    const sender = randomKey();
    // The test configuration lets one sender hold 5 messages of one queue (10% of 50).
    const toBob = Array.from({ length: 6 }, (_, i) => ({
      method: Method.RelayEnqueue,
      request: relayBody(bob, `bob ${i}`, { sender }),
    }));
    const results = await sendBundle([
      ...toBob,
      { method: Method.RelayEnqueue, request: relayBody(carol, "carol 0", { sender }) },
      { method: Method.RelayEnqueue, request: relayBody(bob, "bob 6", { sender }) },
    ]);
    expect(results).toEqual([...Array(5).fill(Status.Ok), Status.RateLimited, Status.Ok, "not attempted"]);
  });

  it("answers resolve, key package, hybrid key and health for its own users", async () => {
    const bob = randomKey();
    await ensureAccount(bob);
    const name = `t-${hex(bob).slice(0, 40)}`;
    const res = await send(
      await signed(Method.ProxyResolveUser, encode(pb.ProxyResolveUserRequest, { username: name })),
    );
    expect(res.status).toBe(Status.Ok);
    const answer = pb.ProxyResolveUserResponse.decode(res.body);
    expect(hex(pb.ResolveUserResponse.decode(answer.resolution).identityKey)).toBe(hex(bob));
    expect(answer.ktPublicKey.length).toBe(32);

    const health = await send(
      await signed(Method.FederationHealth, encode(pb.FederationHealthRequest, { originDomain: A })),
    );
    expect(pb.FederationHealthResponse.decode(health.body).domain).toBe("b.test");

    const kp = await send(
      await signed(Method.ProxyFetchKeyPackage, encode(pb.ProxyFetchKeyPackageRequest, { identityKey: bob })),
    );
    expect(kp.status).toBe(Status.Ok);
    expect(pb.ProxyFetchKeyPackageResponse.decode(kp.body).package.length).toBe(0);

    const hk = await send(
      await signed(Method.ProxyFetchHybridKey, encode(pb.ProxyFetchHybridKeyRequest, { identityKey: bob })),
    );
    expect(hk.status).toBe(Status.Ok);
    expect(pb.ProxyFetchHybridKeyResponse.decode(hk.body).hybridPublicKey.length).toBe(0);
  });
});

describe("/federation/peers", () => {
  it("asks every configured peer's FederationHealth and reports one that cannot be reached", async () => {
    const denied = await exports.default.fetch("https://edge/federation/peers");
    expect(denied.status).toBe(401);
    const res = await exports.default.fetch("https://edge/federation/peers", {
      headers: { [RelayHeader.frontAuth]: env.FRONT_SECRET },
    });
    const doc = (await res.json()) as { domain: string; peers: { domain: string; ok: boolean; error?: string }[] };
    expect(doc.domain).toBe("b.test");
    const down = doc.peers.find((p) => p.domain === DOWN);
    expect(down?.ok).toBe(false);
    expect(down?.error).toBeTruthy();
  });
});

describe("client calls about remote identities", () => {
  it("Enqueue to an identity whose home is no longer a peer is Unavailable, not held for good", async () => {
    const remote = randomKey();
    await env.DB.prepare("INSERT INTO remote_identities (identity_key, domain, learned_at) VALUES (?, ?, 0)")
      .bind(remote, "gone.test")
      .run();
    const res = await rpc(
      Method.Enqueue,
      encode(pb.EnqueueRequest, { recipientKey: remote, payload: bytesOf("hello"), messageId: randomBytes(16) }),
      { caller: randomKey() },
    );
    expect(res.status).toBe(Status.Unavailable);
    expect(decodeError(res.body).message).toContain("not a federation peer");
  });

  it("ResolveUser of name@domain needs a configured peer", async () => {
    const alice = randomKey();
    const res = await rpc(Method.ResolveUser, encode(pb.ResolveUserRequest, { username: "bob@nowhere.test" }), {
      caller: alice,
    });
    expect(res.status).toBe(Status.NotFound);
  });

  it("Enqueue to an identity homed on a peer that is down is Ok once in the outbox, kept, deduplicated and bounded", async () => {
    const alice = randomKey();
    const remote = randomKey();
    await env.DB.prepare("INSERT INTO remote_identities (identity_key, domain, learned_at) VALUES (?, ?, 0)")
      .bind(remote, DOWN)
      .run();
    const send1 = (messageId: Uint8Array, caller = alice) =>
      rpc(
        Method.Enqueue,
        encode(pb.EnqueueRequest, { recipientKey: remote, payload: bytesOf("to the other region"), messageId }),
        { caller },
      );
    const id = randomBytes(16);
    const first = ok(await send1(id), pb.EnqueueResponse);
    expect(first.duplicate).toBe(false);
    expect(Number(first.seq)).toBe(0);
    // A retry of the same message while it is still pending is stored once.
    expect(ok(await send1(id), pb.EnqueueResponse).duplicate).toBe(true);
    // One sender holds at most its share of the outbox (10% of 5 here: one message).
    const share = await send1(randomBytes(16));
    expect(share.status).toBe(Status.RateLimited);
    expect(decodeError(share.body).message).toContain("share");

    const outbox = env.FEDERATION_OUTBOX.get(env.FEDERATION_OUTBOX.idFromName(`out:${DOWN}`));
    // The alarm tries the peer, fails, and schedules a retry; the message stays.
    await runDurableObjectAlarm(outbox);
    let m = await outbox.metrics();
    expect(m.depth).toBe(1);
    expect(m.linkState).toBe("down");
    expect(m.retries).toBeGreaterThan(0);
    expect(m.lastError).not.toBe("");

    // BatchEnqueue with a local and a remote recipient: the local one stored, the remote one relayed.
    const bob = await registeredKey();
    const batch = ok(
      await rpc(
        Method.BatchEnqueue,
        encode(pb.BatchEnqueueRequest, {
          recipientKeys: [bob, remote],
          payload: bytesOf("both"),
          messageId: randomBytes(16),
        }),
        { caller: randomKey() },
      ),
      pb.BatchEnqueueResponse,
    );
    expect(Number(batch.seqs[0])).toBeGreaterThan(0);
    expect(Number(batch.seqs[1])).toBe(0);

    // The bound (5 in the test configuration): RateLimited with a retry_after, never a drop.
    for (let i = (await outbox.metrics()).depth; i < 5; i++) {
      ok(await send1(randomBytes(16), randomKey()), pb.EnqueueResponse);
    }
    const full = await send1(randomBytes(16), randomKey());
    expect(full.status).toBe(Status.RateLimited);
    expect(decodeError(full.body).retryAfterMs).toBeGreaterThan(0);
    m = await outbox.metrics();
    expect(m.depth).toBe(5);
    expect(m.oldestAgeMs).toBeGreaterThanOrEqual(0);
    const text = await metricsText();
    expect(metric(text, "federation_outbox_depth", `peer="${DOWN}"`)).toBe(5);
    expect(metric(text, "federation_link_up", `peer="${DOWN}",state="down"`)).toBe(1);
  });

  it("backs off exponentially while the peer stays down", async () => {
    const outbox = env.FEDERATION_OUTBOX.get(env.FEDERATION_OUTBOX.idFromName(`out:${DOWN}`));
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      await runDurableObjectAlarm(outbox);
      const at = await runInObjectAlarmTime(outbox);
      delays.push(at - Date.now());
    }
    // Full jitter in [backoff/2, backoff]: each later attempt waits at least as long as half the last cap doubled.
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThan(delays[i - 1] / 2);
    expect(delays[3]).toBeGreaterThan(2_000);
  });
});

async function runInObjectAlarmTime(stub: DurableObjectStub): Promise<number> {
  return runInDurableObject(stub, async (_obj, state) => (await state.storage.getAlarm()) ?? 0);
}
