// Sealed sender at the edge (edge/lib/sealed-sender.ts): what stands for the sender of an enqueue
// in each mode, the refusal of a front whose mode differs, and that nothing edge-to-edge names the
// sender when sealed. The whole mode end to end (storage, logs, plugin events) is
// tests/e2e/sealed-sender.test.ts.
import { describe, it, expect } from "vitest";
import { exports } from "cloudflare:workers";
import { Method, RelayHeader as H, Status, decodeError, pb } from "../../proto/index.ts";
import {
  acceptRelayedSender,
  enqueueSender,
  sealedSenderFromEnv,
  senderForFederation,
} from "../../edge/lib/sealed-sender.ts";
import { importSenderTagKey, senderTag } from "../../edge/lib/sender-tag.ts";
import { createLogger } from "../../proto/util/log.ts";
import { toHex } from "../../proto/util/hex.ts";
import { QpqError } from "../../proto/index.ts";
import { assertionFor, ensureAccount, env, registeredKey, randomBytes, randomKey } from "./helpers.ts";

async function enqueue(sender: Uint8Array, recipient: Uint8Array, sealedTag?: string) {
  await ensureAccount(sender);
  const headers: Record<string, string> = {
    "content-type": "application/x-protobuf",
    [H.frontAuth]: env.FRONT_SECRET,
    [H.connection]: "sealed-test",
    [H.requestId]: "1",
    [H.caller]: await assertionFor(sender),
  };
  if (sealedTag !== undefined) headers[H.sealedSender] = sealedTag;
  const res = await exports.default.fetch(`https://edge/rpc/${Method.Enqueue}`, {
    method: "POST",
    headers,
    body: pb.EnqueueRequest.encode({ recipientKey: recipient, payload: randomBytes(10) }).finish(),
  });
  return { status: Number(res.headers.get(H.status)), body: new Uint8Array(await res.arrayBuffer()) };
}

const logger = createLogger("error");

describe("sealed sender at the edge", () => {
  it("reads SEALED_SENDER strictly", () => {
    expect([undefined, "", "false", "0", "true", "1", " TRUE "].map(sealedSenderFromEnv)).toEqual([
      false,
      false,
      false,
      false,
      true,
      true,
      true,
    ]);
    expect(() => sealedSenderFromEnv("yes")).toThrow(/SEALED_SENDER/);
  });

  it("publishes its mode in /.well-known/qpq (off in this configuration)", async () => {
    const res = await exports.default.fetch("https://edge/.well-known/qpq");
    expect(((await res.json()) as { sealed_sender: unknown }).sealed_sender).toBe(false);
  });

  it("without the mode, refuses an enqueue from a sealed-sender front and stores nothing", async () => {
    const sender = randomKey();
    const recipient = await registeredKey();
    const refused = await enqueue(sender, recipient, "ab".repeat(16));
    expect(refused.status).toBe(Status.Unavailable);
    expect(decodeError(refused.body).message).toMatch(/sealed-sender mode is on at the front but not at the edge/);
    const accepted = await enqueue(sender, recipient);
    expect(accepted.status).toBe(Status.Ok);
    expect(pb.EnqueueResponse.decode(accepted.body).seq).toBe(1); // the refused one took no seq
  });

  it("keys the queue on the identity's tag without the mode, on the front's address tag with it", async () => {
    const senderTagKey = importSenderTagKey(env.DELIVERY_SIGNING_KEY);
    const caller = { identityKey: randomKey(), deviceId: new Uint8Array(0) };
    const identityTag = await senderTag(await senderTagKey, caller.identityKey);

    const open = await enqueueSender({ sealedSender: false, senderTagKey, logger }, caller, undefined);
    expect(toHex(open.tag)).toBe(toHex(identityTag));
    expect(toHex(open.identityTag)).toBe(toHex(identityTag));

    const addressTag = "0123456789abcdef0123456789abcdef";
    const sealed = await enqueueSender({ sealedSender: true, senderTagKey, logger }, caller, addressTag);
    expect(toHex(sealed.tag)).toBe(addressTag);
    // Only for checks (channel bans), never stored: the queue stores `tag`.
    expect(toHex(sealed.identityTag)).toBe(toHex(identityTag));
  });

  it("with the mode, refuses an enqueue from a front that sends no (or a malformed) address tag", async () => {
    const senderTagKey = importSenderTagKey(env.DELIVERY_SIGNING_KEY);
    const caller = { identityKey: randomKey(), deviceId: new Uint8Array(0) };
    for (const header of [undefined, "", "xyz", "0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF"]) {
      const err = await enqueueSender({ sealedSender: true, senderTagKey, logger }, caller, header).catch((e) => e);
      expect(err).toBeInstanceOf(QpqError);
      expect((err as QpqError).status).toBe(Status.Unavailable);
      expect((err as QpqError).message).toMatch(/on at the edge but not at the front/);
    }
  });

  it("names the sender edge-to-edge only without the mode", () => {
    const caller = { identityKey: randomKey(), deviceId: new Uint8Array(0) };
    expect(senderForFederation({ sealedSender: false }, caller)).toEqual(caller.identityKey);
    expect(senderForFederation({ sealedSender: true }, caller)).toBeUndefined();
    // A relay received from a peer: its named sender is dropped in the mode.
    expect(acceptRelayedSender({ sealedSender: false }, caller.identityKey)).toEqual(caller.identityKey);
    expect(acceptRelayedSender({ sealedSender: true }, caller.identityKey)).toHaveLength(0);
  });
});
