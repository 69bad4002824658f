// CreateChannel (400): deterministic, deduplicated 1:1 channels and group channels.
// ResolveUser / ResolveIdentity (500/501): directory look-ups of registered users.
import { describe, it, expect, beforeAll } from "vitest";
import { Method, Status, pb } from "../../proto/index.ts";
import { env, errorOf, hex, ok, randomBytes, randomKey, rpc } from "./helpers.ts";
import { register } from "./opaque-client.ts";

function createChannel(caller: Uint8Array, req: Parameters<typeof pb.CreateChannelRequest.encode>[0]) {
  return rpc(Method.CreateChannel, pb.CreateChannelRequest.encode(req).finish(), { caller });
}

function blobHex(value: unknown): string {
  if (value instanceof ArrayBuffer) return hex(new Uint8Array(value));
  if (ArrayBuffer.isView(value)) return hex(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  return hex(Uint8Array.from(value as number[]));
}

async function membersOf(channelId: Uint8Array): Promise<Map<string, string>> {
  const { results } = await env.DB.prepare("SELECT identity_key, role FROM channel_members WHERE channel_id = ?")
    .bind(channelId)
    .all<{ identity_key: unknown; role: string }>();
  return new Map(results.map((r) => [blobHex(r.identity_key), r.role]));
}

async function channelCount(creator: Uint8Array): Promise<number> {
  const { results } = await env.DB.prepare("SELECT COUNT(*) AS n FROM channels WHERE creator_key = ?")
    .bind(creator)
    .all<{ n: number }>();
  return results[0].n;
}

describe("CreateChannel: 1:1", () => {
  it("gives both peers the same 16-byte id; only the first call creates it", async () => {
    const alice = randomKey();
    const bob = randomKey();
    const first = ok(await createChannel(alice, { peerKey: bob }), pb.CreateChannelResponse);
    expect(first.channelId).toHaveLength(16);
    expect(first.wasNew).toBe(true);
    const fromBob = ok(await createChannel(bob, { peerKey: alice }), pb.CreateChannelResponse);
    expect(hex(fromBob.channelId)).toBe(hex(first.channelId));
    expect(fromBob.wasNew).toBe(false);
    const again = ok(await createChannel(alice, { peerKey: bob }), pb.CreateChannelResponse);
    expect(hex(again.channelId)).toBe(hex(first.channelId));
    expect(again.wasNew).toBe(false);

    const members = await membersOf(first.channelId);
    expect(new Set(members.keys())).toEqual(new Set([hex(alice), hex(bob)]));
  });

  it("gives different pairs different ids", async () => {
    const alice = randomKey();
    const ab = ok(await createChannel(alice, { peerKey: randomKey() }), pb.CreateChannelResponse);
    const ac = ok(await createChannel(alice, { peerKey: randomKey() }), pb.CreateChannelResponse);
    expect(hex(ab.channelId)).not.toBe(hex(ac.channelId));
    expect(ac.wasNew).toBe(true);
  });

  it("rejects a malformed peer key, the caller's own key, and peer plus members together", async () => {
    const alice = randomKey();
    const short = await createChannel(alice, { peerKey: randomBytes(31) });
    expect(short.status).toBe(Status.BadRequest);
    expect(errorOf(short).message).toMatch(/peer_key.*31/);
    expect((await createChannel(alice, { peerKey: alice })).status).toBe(Status.BadRequest);
    expect((await createChannel(alice, { peerKey: randomKey(), memberKeys: [randomKey()] })).status).toBe(
      Status.BadRequest,
    );
    expect(await channelCount(alice)).toBe(0);
  });
});

describe("CreateChannel: groups", () => {
  it("creates a group with the caller as creator and each member once", async () => {
    const alice = randomKey();
    const bob = randomKey();
    const carol = randomKey();
    const res = ok(
      await createChannel(alice, { memberKeys: [bob, carol, alice, bob], name: "team" }),
      pb.CreateChannelResponse,
    );
    expect(res.channelId).toHaveLength(16);
    expect(res.wasNew).toBe(true);
    const members = await membersOf(res.channelId);
    expect(Object.fromEntries(members)).toEqual({
      [hex(alice)]: "creator",
      [hex(bob)]: "member",
      [hex(carol)]: "member",
    });
  });

  it("creates a new group on every call, even with the same members", async () => {
    const alice = randomKey();
    const memberKeys = [randomKey(), randomKey()];
    const g1 = ok(await createChannel(alice, { memberKeys }), pb.CreateChannelResponse);
    const g2 = ok(await createChannel(alice, { memberKeys }), pb.CreateChannelResponse);
    expect(hex(g1.channelId)).not.toBe(hex(g2.channelId));
    expect(g2.wasNew).toBe(true);
  });

  it("stores every member of a large group", async () => {
    const alice = randomKey();
    const memberKeys = Array.from({ length: 60 }, () => randomKey());
    const res = ok(await createChannel(alice, { memberKeys }), pb.CreateChannelResponse);
    const members = await membersOf(res.channelId);
    expect(members.size).toBe(61);
    for (const k of memberKeys) expect(members.get(hex(k))).toBe("member");
  });

  it("creates nothing when a member key is malformed", async () => {
    const alice = randomKey();
    const res = await createChannel(alice, { memberKeys: [randomKey(), randomBytes(31)] });
    expect(res.status).toBe(Status.BadRequest);
    expect(errorOf(res).message).toContain("member_keys[1]");
    expect(await channelCount(alice)).toBe(0);
  });

  it("rejects a name longer than 128 characters", async () => {
    const alice = randomKey();
    expect((await createChannel(alice, { memberKeys: [randomKey()], name: "n".repeat(129) })).status).toBe(
      Status.BadRequest,
    );
    ok(await createChannel(alice, { memberKeys: [randomKey()], name: "n".repeat(128) }), pb.CreateChannelResponse);
  });
});

describe("ResolveUser / ResolveIdentity", () => {
  const identity = randomKey();
  const username = `carol-${Date.now().toString(36)}-\u00e9`;
  let registeredAt = 0;

  beforeAll(async () => {
    registeredAt = Date.now();
    expect(await register(username, "pw", identity)).toBe(true);
  });

  it("resolves a registered username to its identity key", async () => {
    const res = ok(
      await rpc(Method.ResolveUser, pb.ResolveUserRequest.encode({ username }).finish(), { caller: randomKey() }),
      pb.ResolveUserResponse,
    );
    expect(hex(res.identityKey)).toBe(hex(identity));
  });

  it("resolves the NFD spelling of the same username", async () => {
    const res = ok(
      await rpc(Method.ResolveUser, pb.ResolveUserRequest.encode({ username: username.normalize("NFD") }).finish(), {
        caller: randomKey(),
      }),
      pb.ResolveUserResponse,
    );
    expect(hex(res.identityKey)).toBe(hex(identity));
  });

  it("answers NotFound for an unknown username", async () => {
    const res = await rpc(
      Method.ResolveUser,
      pb.ResolveUserRequest.encode({ username: `nobody-${crypto.randomUUID()}` }).finish(),
      { caller: randomKey() },
    );
    expect(res.status).toBe(Status.NotFound);
  });

  it("resolves an identity key to its username and creation time", async () => {
    const res = ok(
      await rpc(Method.ResolveIdentity, pb.ResolveIdentityRequest.encode({ identityKey: identity }).finish(), {
        caller: randomKey(),
      }),
      pb.ResolveIdentityResponse,
    );
    expect(res.username).toBe(username);
    expect(Number(res.createdAtMs)).toBeGreaterThan(registeredAt - 60_000);
    expect(Number(res.createdAtMs)).toBeLessThanOrEqual(Date.now() + 1_000);
  });

  it("answers NotFound for an unknown identity key and BadRequest for a malformed one", async () => {
    const unknown = await rpc(
      Method.ResolveIdentity,
      pb.ResolveIdentityRequest.encode({ identityKey: randomKey() }).finish(),
      { caller: randomKey() },
    );
    expect(unknown.status).toBe(Status.NotFound);
    const bad = await rpc(
      Method.ResolveIdentity,
      pb.ResolveIdentityRequest.encode({ identityKey: randomBytes(31) }).finish(),
      { caller: randomKey() },
    );
    expect(bad.status).toBe(Status.BadRequest);
    expect(errorOf(bad).message).toMatch(/identity_key.*31/);
  });
});
