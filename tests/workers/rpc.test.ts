// The RPC layer: front authentication, method dispatch, caller assertions, validation errors,
// all-or-nothing BatchEnqueue, and delivery proofs.
import { describe, it, expect } from "vitest";
import { exports } from "cloudflare:workers";
import { MAX_PAYLOAD, Method, RelayHeader as H, Status, pb } from "../../proto/index.ts";
import { provenMessage } from "../../edge/lib/delivery-proof.ts";
import { toHex } from "../../proto/util/hex.ts";
import {
  assertionFor,
  bytesOf,
  env,
  errorOf,
  ok,
  queueStub,
  randomBytes,
  randomKey,
  registeredKey,
  rpc,
  textOf,
} from "./helpers.ts";

const enqueueReq = (
  recipientKey: Uint8Array,
  payload = "hello",
  extra: Parameters<typeof pb.EnqueueRequest.encode>[0] = {},
) => pb.EnqueueRequest.encode({ recipientKey, payload: bytesOf(payload), ...extra }).finish();

const healthReq = pb.HealthRequest.encode({}).finish();

describe("front authentication", () => {
  it("rejects a request without the front secret with HTTP 401", async () => {
    const res = await rpc(Method.Health, healthReq, { frontSecret: null });
    expect(res.http).toBe(401);
    expect(res.headers.get("x-qpq-status")).toBeNull();
  });

  it("rejects a wrong front secret with HTTP 401, even with a valid caller assertion", async () => {
    const me = randomKey();
    const res = await rpc(Method.Enqueue, enqueueReq(me), { frontSecret: "not-the-secret", caller: me });
    expect(res.http).toBe(401);
    expect((await queueStub(me).stats()).messages).toBe(0);
  });

  it("answers an authentic front with HTTP 200 and the wire status in a header", async () => {
    const res = await rpc(Method.Health, healthReq);
    expect(res.http).toBe(200);
    const health = ok(res, pb.HealthResponse);
    expect(health.status).toBe("ok");
    expect(health.version).not.toBe("");
    // Answered by the edge itself: its own fields, no front's.
    expect(health).toMatchObject({
      edgeVersion: health.version,
      edgeUptimeSecs: health.uptimeSecs,
      frontVersion: "",
      frontUptimeSecs: 0,
    });
  });
});

describe("dispatch and caller assertions", () => {
  it("answers UnknownMethod (11) for an unregistered method id", async () => {
    for (const id of [0, 99, 206, 9999]) {
      const res = await rpc(id, new Uint8Array(0), { caller: randomKey() });
      expect(res.http).toBe(200);
      expect(res.status).toBe(Status.UnknownMethod);
      expect(errorOf(res).message).toContain(String(id));
    }
  });

  it("requires a caller assertion for user methods (Unauthorized)", async () => {
    const key = randomKey();
    const calls: [number, Uint8Array][] = [
      [Method.Enqueue, enqueueReq(key)],
      [Method.Fetch, pb.FetchRequest.encode({ recipientKey: key }).finish()],
      [Method.FetchWait, pb.FetchWaitRequest.encode({ recipientKey: key, timeoutMs: 5_000 }).finish()],
      [Method.Ack, pb.AckRequest.encode({ recipientKey: key, seqUpTo: 1 }).finish()],
      [Method.BatchEnqueue, pb.BatchEnqueueRequest.encode({ recipientKeys: [key], payload: bytesOf("x") }).finish()],
      [
        Method.UploadKeyPackage,
        pb.UploadKeyPackageRequest.encode({ identityKey: key, package: bytesOf("kp") }).finish(),
      ],
      [Method.FetchKeyPackage, pb.FetchKeyPackageRequest.encode({ identityKey: key }).finish()],
      [Method.FetchHybridKey, pb.FetchHybridKeyRequest.encode({ identityKey: key }).finish()],
      [Method.CreateChannel, pb.CreateChannelRequest.encode({ peerKey: randomKey() }).finish()],
      [Method.ResolveUser, pb.ResolveUserRequest.encode({ username: "nobody" }).finish()],
      [Method.ResolveIdentity, pb.ResolveIdentityRequest.encode({ identityKey: key }).finish()],
    ];
    for (const [id, body] of calls) {
      const res = await rpc(id, body);
      expect({ id, status: res.status }).toEqual({ id, status: Status.Unauthorized });
    }
    expect((await queueStub(key).stats()).messages).toBe(0);
  });

  it("rejects forged, tampered, malformed and expired assertions (Unauthorized)", async () => {
    const me = await registeredKey();
    const valid = await assertionFor(me);
    const forged = await assertionFor(me, { secret: "some-other-front-secret" });
    // Same MAC, different identity: the MAC no longer matches.
    const tampered = valid.replace(toHex(me), toHex(randomKey()));
    const expired = await assertionFor(me, { expiresAtMs: Date.now() - 1 });
    const fetchReq = pb.FetchRequest.encode({ recipientKey: me }).finish();
    for (const caller of [forged, tampered, expired, "v1.garbage", "", `${valid}x`]) {
      const res = await rpc(Method.Fetch, fetchReq, { caller });
      expect({ caller, status: res.status }).toEqual({ caller, status: Status.Unauthorized });
    }
    ok(await rpc(Method.Fetch, fetchReq, { caller: valid }), pb.FetchResponse);
  });

  it("lets unauthenticated methods through without an assertion", async () => {
    ok(await rpc(Method.Health, healthReq), pb.HealthResponse);
  });
});

describe("authorization", () => {
  it("forbids reading, peeking, waiting on or acking another identity's queue", async () => {
    const victim = await registeredKey();
    const attacker = randomKey();
    ok(await rpc(Method.Enqueue, enqueueReq(victim, "secret"), { caller: randomKey() }), pb.EnqueueResponse);
    const calls: [number, Uint8Array][] = [
      [Method.Fetch, pb.FetchRequest.encode({ recipientKey: victim }).finish()],
      [Method.Peek, pb.PeekRequest.encode({ recipientKey: victim }).finish()],
      [Method.FetchWait, pb.FetchWaitRequest.encode({ recipientKey: victim, timeoutMs: 1 }).finish()],
      [Method.Ack, pb.AckRequest.encode({ recipientKey: victim, seqUpTo: 1_000 }).finish()],
    ];
    for (const [id, body] of calls) {
      const res = await rpc(id, body, { caller: attacker });
      expect({ id, status: res.status }).toEqual({ id, status: Status.Forbidden });
      expect(textOf(res.body)).not.toContain("secret");
    }
    // The attacker's Ack did nothing: the message is still there for its owner.
    const mine = ok(
      await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: victim }).finish(), { caller: victim }),
      pb.FetchResponse,
    );
    expect(mine.payloads.map((e) => textOf(e.data))).toEqual(["secret"]);
  });

  it("forbids uploading a key package or hybrid key for another identity", async () => {
    const victim = randomKey();
    const attacker = randomKey();
    const up = await rpc(
      Method.UploadKeyPackage,
      pb.UploadKeyPackageRequest.encode({ identityKey: victim, package: bytesOf("evil kp") }).finish(),
      { caller: attacker },
    );
    expect(up.status).toBe(Status.Forbidden);
    const hybrid = await rpc(
      Method.UploadHybridKey,
      pb.UploadHybridKeyRequest.encode({ identityKey: victim, hybridPublicKey: randomBytes(1216) }).finish(),
      { caller: attacker },
    );
    expect(hybrid.status).toBe(Status.Forbidden);
    // Nothing was stored under the victim's identity.
    const kp = ok(
      await rpc(Method.FetchKeyPackage, pb.FetchKeyPackageRequest.encode({ identityKey: victim }).finish(), {
        caller: attacker,
      }),
      pb.FetchKeyPackageResponse,
    );
    expect(kp.package).toHaveLength(0);
    const hk = ok(
      await rpc(Method.FetchHybridKey, pb.FetchHybridKeyRequest.encode({ identityKey: victim }).finish(), {
        caller: attacker,
      }),
      pb.FetchHybridKeyResponse,
    );
    expect(hk.hybridPublicKey).toHaveLength(0);
  });
});

describe("validation", () => {
  it("rejects a 31-byte recipient key with BadRequest naming the field and length", async () => {
    const res = await rpc(Method.Enqueue, enqueueReq(randomBytes(31)), { caller: randomKey() });
    expect(res.status).toBe(Status.BadRequest);
    const { message } = errorOf(res);
    expect(message).toContain("recipient_key");
    expect(message).toContain("31");
  });

  it("rejects a 33-byte recipient key on Fetch too", async () => {
    const res = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: randomBytes(33) }).finish(), {
      caller: randomKey(),
    });
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toMatch(/recipient_key.*33/);
  });

  it("rejects a payload that is not valid protobuf with BadRequest", async () => {
    const garbage = [
      Uint8Array.of(0x0a, 0xff, 0x01), // length-delimited field running past the end
      Uint8Array.of(0x0f, 0x00), // wire type 7 does not exist
      Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // endless varint
    ];
    for (const body of garbage) {
      for (const id of [Method.Enqueue, Method.Fetch, Method.UploadKeyPackage, Method.OpaqueLoginStart]) {
        const res = await rpc(id, body, { caller: randomKey() });
        expect({ id, body: [...body], status: res.status }).toEqual({ id, body: [...body], status: Status.BadRequest });
      }
    }
  });

  it("ignores unknown protobuf fields (forward compatibility)", async () => {
    const bob = await registeredKey();
    const known = enqueueReq(bob, "future");
    // Field 15 (varint) and field 16 (bytes): unknown to this server.
    const withUnknown = new Uint8Array([...known, 0x78, 0x01, 0x82, 0x01, 0x02, 0xaa, 0xbb]);
    ok(await rpc(Method.Enqueue, withUnknown, { caller: randomKey() }), pb.EnqueueResponse);
    expect((await queueStub(bob).stats()).messages).toBe(1);
  });

  it("rejects a 15-byte message_id with BadRequest and stores nothing", async () => {
    const bob = randomKey();
    const res = await rpc(Method.Enqueue, enqueueReq(bob, "x", { messageId: randomBytes(15) }), {
      caller: randomKey(),
    });
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toContain("message_id");
    expect((await queueStub(bob).stats()).messages).toBe(0);
  });

  it("rejects an empty payload and a 65-byte channel id", async () => {
    const bob = await registeredKey();
    const empty = await rpc(Method.Enqueue, pb.EnqueueRequest.encode({ recipientKey: bob }).finish(), {
      caller: randomKey(),
    });
    expect(empty.status).toBe(Status.BadRequest);
    expect(errorOf(empty).message).toContain("payload");
    const longChannel = await rpc(Method.Enqueue, enqueueReq(bob, "x", { channelId: randomBytes(65) }), {
      caller: randomKey(),
    });
    expect(longChannel.status).toBe(Status.BadRequest);
    expect(errorOf(longChannel).message).toContain("channel_id");
    ok(
      await rpc(Method.Enqueue, enqueueReq(bob, "x", { channelId: randomBytes(64) }), { caller: randomKey() }),
      pb.EnqueueResponse,
    );
    expect((await queueStub(bob).stats()).messages).toBe(1);
  });
});

describe("BatchEnqueue", () => {
  it("delivers the payload to every recipient, seqs in input order", async () => {
    const [a, b, c] = await Promise.all([registeredKey(), registeredKey(), registeredKey()]);
    // Give b a head start so the recipients' seqs differ.
    ok(await rpc(Method.Enqueue, enqueueReq(b, "earlier"), { caller: randomKey() }), pb.EnqueueResponse);
    const res = ok(
      await rpc(
        Method.BatchEnqueue,
        pb.BatchEnqueueRequest.encode({ recipientKeys: [a, b, c], payload: bytesOf("to all") }).finish(),
        { caller: randomKey() },
      ),
      pb.BatchEnqueueResponse,
    );
    expect(res.seqs).toHaveLength(3);
    for (const [i, key] of [a, b, c].entries()) {
      const got = ok(
        await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: key }).finish(), { caller: key }),
        pb.FetchResponse,
      );
      const last = got.payloads[got.payloads.length - 1];
      expect(textOf(last.data)).toBe("to all");
      expect(Number(last.seq)).toBe(Number(res.seqs[i]));
    }
  });

  it("stores nothing when one recipient key is malformed", async () => {
    const good = randomKey();
    const res = await rpc(
      Method.BatchEnqueue,
      pb.BatchEnqueueRequest.encode({ recipientKeys: [good, randomBytes(31)], payload: bytesOf("partial?") }).finish(),
      { caller: randomKey() },
    );
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toContain("recipient_keys[1]");
    expect((await queueStub(good).stats()).messages).toBe(0);
    const got = ok(
      await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: good }).finish(), { caller: good }),
      pb.FetchResponse,
    );
    expect(got.payloads).toEqual([]);
  });

  it("stores nothing when the message_id is malformed", async () => {
    const good = randomKey();
    const res = await rpc(
      Method.BatchEnqueue,
      pb.BatchEnqueueRequest.encode({
        recipientKeys: [good],
        payload: bytesOf("x"),
        messageId: randomBytes(17),
      }).finish(),
      { caller: randomKey() },
    );
    expect(res.status).toBe(Status.BadRequest);
    expect((await queueStub(good).stats()).messages).toBe(0);
  });
});

describe("delivery proofs", () => {
  async function proofKey(): Promise<CryptoKey> {
    const health = ok(await rpc(Method.Health, healthReq), pb.HealthResponse);
    expect(health.deliveryProofKey).toHaveLength(32);
    return crypto.subtle.importKey("raw", health.deliveryProofKey, { name: "Ed25519" }, false, ["verify"]);
  }

  function parseProof(proof: Uint8Array): { timeMs: number; signature: Uint8Array } {
    expect(proof).toHaveLength(1 + 8 + 64);
    expect(proof[0]).toBe(1);
    const timeMs = Number(new DataView(proof.buffer, proof.byteOffset + 1, 8).getBigUint64(0));
    return { timeMs, signature: proof.slice(9) };
  }

  it("signs (recipient, channel, seq, SHA-256(payload), time) with the key published in Health", async () => {
    const key = await proofKey();
    const bob = await registeredKey();
    const channel = randomBytes(16);
    const payload = bytesOf("proof me");
    const before = Date.now();
    const res = ok(
      await rpc(Method.Enqueue, pb.EnqueueRequest.encode({ recipientKey: bob, payload, channelId: channel }).finish(), {
        caller: randomKey(),
      }),
      pb.EnqueueResponse,
    );
    const { timeMs, signature } = parseProof(res.deliveryProof);
    expect(timeMs).toBeGreaterThanOrEqual(before - 1_000);
    expect(timeMs).toBeLessThanOrEqual(Date.now() + 1_000);

    const seq = Number(res.seq);
    const message = await provenMessage(bob, channel, seq, payload, timeMs);
    expect(await crypto.subtle.verify("Ed25519", key, signature, message)).toBe(true);
    // The proof binds every field: change any one and it no longer verifies.
    const variants = [
      await provenMessage(randomKey(), channel, seq, payload, timeMs),
      await provenMessage(bob, randomBytes(16), seq, payload, timeMs),
      await provenMessage(bob, channel, seq + 1, payload, timeMs),
      await provenMessage(bob, channel, seq, bytesOf("proof mE"), timeMs),
      await provenMessage(bob, channel, seq, payload, timeMs + 1),
    ];
    for (const m of variants) expect(await crypto.subtle.verify("Ed25519", key, signature, m)).toBe(false);
  });

  it("publishes the same key at /.well-known/qpq", async () => {
    const health = ok(await rpc(Method.Health, healthReq), pb.HealthResponse);
    const res = await exports.default.fetch("https://edge/.well-known/qpq");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { delivery_proof_key: string };
    expect(doc.delivery_proof_key).toBe(toHex(health.deliveryProofKey));
  });

  it("also proves a duplicate enqueue, for the original seq", async () => {
    const key = await proofKey();
    const bob = await registeredKey();
    const alice = randomKey();
    const messageId = randomBytes(16);
    const first = ok(
      await rpc(Method.Enqueue, enqueueReq(bob, "dup", { messageId }), { caller: alice }),
      pb.EnqueueResponse,
    );
    const again = ok(
      await rpc(Method.Enqueue, enqueueReq(bob, "dup", { messageId }), { caller: alice }),
      pb.EnqueueResponse,
    );
    expect(again.duplicate).toBe(true);
    const { timeMs, signature } = parseProof(again.deliveryProof);
    const message = await provenMessage(bob, new Uint8Array(0), Number(first.seq), bytesOf("dup"), timeMs);
    expect(await crypto.subtle.verify("Ed25519", key, signature, message)).toBe(true);
  });
});

/**
 * A body far larger than any frame (16 × MAX_PAYLOAD in 64 KiB pulls), counting the bytes the
 * edge pulled out of it. Finite, so an edge that reads it all fails the test instead of hanging it.
 */
function hugeBody(): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const chunk = new Uint8Array(64 * 1024);
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (pulled >= 16 * MAX_PAYLOAD) return controller.close();
        pulled += chunk.byteLength;
        controller.enqueue(chunk.slice());
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulled };
}

function postRpc(methodId: number, body: BodyInit, headers: Record<string, string>): Promise<Response> {
  return exports.default.fetch(`https://edge/rpc/${methodId}`, { method: "POST", headers, body });
}

describe("relay body limit", () => {
  it("refuses a body larger than one frame's payload with HTTP 413", async () => {
    const res = await postRpc(Method.Enqueue, new Uint8Array(MAX_PAYLOAD + 1), {
      [H.frontAuth]: env.FRONT_SECRET,
      "content-length": String(MAX_PAYLOAD + 1),
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("connection")).toBe("close");
  });

  it("refuses a chunked body once more than one frame's payload arrived, without reading it to the end", async () => {
    const body = hugeBody();
    const res = await postRpc(Method.Enqueue, body.stream, { [H.frontAuth]: env.FRONT_SECRET });
    expect(res.status).toBe(413);
    expect(body.pulled()).toBeGreaterThan(MAX_PAYLOAD);
    expect(body.pulled()).toBeLessThan(MAX_PAYLOAD + 1024 * 1024);
  });

  it("reassembles a chunked body (no Content-Length) split at arbitrary points", async () => {
    const me = await registeredKey();
    const request = pb.FetchRequest.encode({ recipientKey: me, limit: 5 }).finish();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < request.length; i += 7) controller.enqueue(request.slice(i, i + 7));
        controller.close();
      },
    });
    const res = await postRpc(Method.Fetch, stream, {
      [H.frontAuth]: env.FRONT_SECRET,
      [H.caller]: await assertionFor(me),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get(H.status)).toBe(String(Status.Ok));
  });

  it("reads a chunked body of exactly one frame's payload (the cap is inclusive)", async () => {
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          const n = Math.min(100_000, MAX_PAYLOAD - sent);
          if (n === 0) return controller.close();
          sent += n;
          controller.enqueue(new Uint8Array(n));
        },
      },
      { highWaterMark: 0 },
    );
    const res = await postRpc(Method.Health, stream, { [H.frontAuth]: env.FRONT_SECRET });
    expect(res.status).toBe(200);
    // All zeros is no valid HealthRequest: the method saw the body and answered.
    expect(res.headers.get(H.status)).toBe(String(Status.BadRequest));
  });
});

describe("front secret before the body", () => {
  for (const [label, secret] of [
    ["without a front secret", null],
    ["with a wrong front secret", "not-the-secret"],
  ] as const) {
    it(`refuses an RPC ${label} with HTTP 401 and closes, without reading its body`, async () => {
      const body = hugeBody();
      const headers: Record<string, string> = secret === null ? {} : { [H.frontAuth]: secret };
      const res = await postRpc(Method.Enqueue, body.stream, headers);
      expect(res.status).toBe(401);
      expect(res.headers.get("connection")).toBe("close");
      expect(body.pulled()).toBeLessThanOrEqual(64 * 1024);
    });
  }

  it("refuses an announced oversized body with a wrong secret as 401, not 413 (nothing is revealed before auth)", async () => {
    const body = hugeBody();
    const res = await postRpc(Method.Enqueue, body.stream, {
      [H.frontAuth]: "not-the-secret",
      "content-length": String(MAX_PAYLOAD + 1),
    });
    expect(res.status).toBe(401);
    expect(body.pulled()).toBeLessThanOrEqual(64 * 1024);
  });

  it("refuses a push subscription with a wrong front secret with HTTP 401 and closes", async () => {
    const res = await exports.default.fetch("https://edge/push", {
      headers: { upgrade: "websocket", [H.frontAuth]: "not-the-secret" },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("connection")).toBe("close");
  });
});
