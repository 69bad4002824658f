// Groups (410-413, group channels of 400): who may remove, add, rename and change roles, the
// default TTL each member's queue applies, RotateKeys, PushMembership on every change, and what a
// deleted creator leaves behind. Real D1 and RecipientQueues.
import { describe, it, expect } from "vitest";
import { exports } from "cloudflare:workers";
import { Method, PushEvent, Status, pb, parseQueueEvent } from "../../proto/index.ts";
import { assertionFor, env, errorOf, hex, ok, randomBytes, randomKey, registeredKey, rpc } from "./helpers.ts";
import { enqueueAs } from "./delivery-client.ts";

async function group(creator: Uint8Array, members: Uint8Array[]): Promise<Uint8Array> {
  const res = await rpc(Method.CreateChannel, pb.CreateChannelRequest.encode({ memberKeys: members }).finish(), {
    caller: creator,
  });
  return ok(res, pb.CreateChannelResponse).channelId;
}

function remove(caller: Uint8Array, channelId: Uint8Array, memberKey: Uint8Array) {
  return rpc(Method.RemoveMember, pb.RemoveMemberRequest.encode({ channelId, memberKey }).finish(), { caller });
}

type UpdateFields = Omit<Parameters<typeof pb.UpdateGroupMetadataRequest.encode>[0], "channelId">;
function update(caller: Uint8Array, channelId: Uint8Array, fields: UpdateFields) {
  return rpc(Method.UpdateGroupMetadata, pb.UpdateGroupMetadataRequest.encode({ channelId, ...fields }).finish(), {
    caller,
  });
}

async function list(caller: Uint8Array, channelId: Uint8Array) {
  return rpc(Method.ListGroupMembers, pb.ListGroupMembersRequest.encode({ channelId }).finish(), { caller });
}

async function roles(caller: Uint8Array, channelId: Uint8Array): Promise<Record<string, string>> {
  const res = ok(await list(caller, channelId), pb.ListGroupMembersResponse);
  return Object.fromEntries(res.members.map((m) => [hex(m.identityKey), m.role ?? ""]));
}

/** A front's push subscription to `who`'s queue; events are collected as they come. */
async function subscribe(who: Uint8Array) {
  const res = await exports.default.fetch("https://edge/push", {
    headers: { Upgrade: "websocket", "x-qpq-front-auth": env.FRONT_SECRET, "x-qpq-caller": await assertionFor(who) },
  });
  const ws = res.webSocket!;
  ws.accept();
  const events: { eventId: number; event: Uint8Array }[] = [];
  const waiting: (() => void)[] = [];
  ws.addEventListener("message", (e) => {
    const data = e.data as string | ArrayBuffer | Blob;
    if (typeof data === "string") return;
    const got = (bytes: Uint8Array) => {
      const framed = parseQueueEvent(bytes);
      if (framed) events.push({ eventId: framed.eventId, event: framed.event.slice() });
      for (const w of waiting.splice(0)) w();
    };
    if (data instanceof Blob) void data.arrayBuffer().then((b) => got(new Uint8Array(b)));
    else got(new Uint8Array(data));
  });
  return {
    events,
    /** Waits until `n` framed events arrived (no wall-clock margin: the test timeout bounds it). */
    async atLeast(n: number) {
      while (events.length < n) await new Promise<void>((r) => waiting.push(r));
      return events;
    },
    close: () => ws.close(1000, "done"),
  };
}

function membership(e: { eventId: number; event: Uint8Array }) {
  expect(e.eventId).toBe(PushEvent.Membership);
  const m = pb.PushMembership.decode(e.event);
  return {
    channel: hex(m.channelId),
    member: hex(m.memberKey),
    change: m.change,
    actor: hex(m.actorKey),
    role: m.role,
  };
}

describe("RemoveMember", () => {
  it("lets the creator remove a member, once", async () => {
    const [creator, bob, carol] = [randomKey(), randomKey(), randomKey()];
    const id = await group(creator, [bob, carol]);
    expect((await remove(creator, id, bob)).status).toBe(Status.Ok);
    // Removing again: bob is no longer a member.
    const again = await remove(creator, id, bob);
    expect(again.status).toBe(Status.NotFound);
    // A removed member cannot act in the channel any more.
    expect((await remove(bob, id, carol)).status).toBe(Status.Forbidden);
  });

  it("lets a member leave but not remove others", async () => {
    const [creator, bob, carol] = [randomKey(), randomKey(), randomKey()];
    const id = await group(creator, [bob, carol]);
    const refused = await remove(bob, id, carol);
    expect(refused.status).toBe(Status.Forbidden);
    expect(errorOf(refused).message).toContain("creator or an admin");
    expect(Object.keys(await roles(creator, id))).toContain(hex(carol));
    expect((await remove(bob, id, bob)).status).toBe(Status.Ok);
    // carol is still there: the creator can still remove her.
    expect((await remove(creator, id, carol)).status).toBe(Status.Ok);
  });

  it("lets an admin remove members but not other admins; the creator removes admins", async () => {
    const [creator, admin1, admin2, member] = [randomKey(), randomKey(), randomKey(), randomKey()];
    const id = await group(creator, [admin1, admin2, member]);
    ok(await update(creator, id, { makeAdminKeys: [admin1, admin2] }), pb.UpdateGroupMetadataResponse);
    expect((await remove(admin1, id, admin2)).status).toBe(Status.Forbidden);
    expect((await remove(admin1, id, member)).status).toBe(Status.Ok);
    expect((await remove(creator, id, admin2)).status).toBe(Status.Ok);
    expect(await roles(creator, id)).toEqual({ [hex(creator)]: "creator", [hex(admin1)]: "admin" });
  });

  it("never removes the creator, and refuses outsiders", async () => {
    const [creator, bob, outsider] = [randomKey(), randomKey(), randomKey()];
    const id = await group(creator, [bob]);
    expect((await remove(creator, id, creator)).status).toBe(Status.Forbidden);
    expect((await remove(outsider, id, bob)).status).toBe(Status.Forbidden);
    expect((await remove(creator, id, bob)).status).toBe(Status.Ok);
  });

  it("validates its input and refuses 1:1 channels", async () => {
    const [a, b] = [randomKey(), randomKey()];
    expect((await remove(a, new Uint8Array(16), b)).status).toBe(Status.NotFound);
    expect((await remove(a, new Uint8Array(0), b)).status).toBe(Status.BadRequest);
    const short = await remove(a, new Uint8Array(16), new Uint8Array(31));
    expect(short.status).toBe(Status.BadRequest);
    expect(errorOf(short).message).toContain("member_key");
    const direct = await rpc(Method.CreateChannel, pb.CreateChannelRequest.encode({ peerKey: b }).finish(), {
      caller: a,
    });
    const id = ok(direct, pb.CreateChannelResponse).channelId;
    expect((await remove(a, id, b)).status).toBe(Status.BadRequest);
  });

  it("needs a session", async () => {
    const res = await rpc(
      Method.RemoveMember,
      pb.RemoveMemberRequest.encode({ channelId: new Uint8Array(16), memberKey: randomKey() }).finish(),
    );
    expect(res.status).toBe(Status.Unauthorized);
  });
});

describe("UpdateGroupMetadata and ListGroupMembers", () => {
  it("lets the creator and admins add members and rename; members and outsiders may not", async () => {
    const [creator, admin, member, outsider, newcomer, late] = Array.from({ length: 6 }, randomKey);
    const id = await group(creator, [admin, member]);
    expect((await update(admin, id, { makeAdminKeys: [member] })).status).toBe(Status.Forbidden);
    ok(await update(creator, id, { makeAdminKeys: [admin] }), pb.UpdateGroupMetadataResponse);

    const refused = await update(member, id, { addMemberKeys: [newcomer] });
    expect(refused.status).toBe(Status.Forbidden);
    expect((await update(member, id, { setName: true, name: "mine" })).status).toBe(Status.Forbidden);
    expect((await update(outsider, id, { setName: true, name: "x" })).status).toBe(Status.Forbidden);
    expect((await list(outsider, id)).status).toBe(Status.Forbidden);

    const added = ok(await update(admin, id, { addMemberKeys: [newcomer, member] }), pb.UpdateGroupMetadataResponse);
    expect(added.addedMemberKeys.map(hex)).toEqual([hex(newcomer)]); // member already was one
    ok(
      await update(admin, id, { setName: true, name: "Team", setDescription: true, description: "weekly" }),
      pb.UpdateGroupMetadataResponse,
    );
    // Only the fields asked for change.
    ok(await update(creator, id, { addMemberKeys: [late] }), pb.UpdateGroupMetadataResponse);
    const seen = ok(await list(newcomer, id), pb.ListGroupMembersResponse);
    expect(seen.name).toBe("Team");
    expect(seen.description).toBe("weekly");
    // Listed creator first, then admins, then members.
    expect(seen.members.map((m) => m.role)).toEqual(["creator", "admin", "member", "member", "member"]);
    expect(await roles(member, id)).toEqual({
      [hex(creator)]: "creator",
      [hex(admin)]: "admin",
      [hex(member)]: "member",
      [hex(newcomer)]: "member",
      [hex(late)]: "member",
    });
    ok(await update(creator, id, { makeMemberKeys: [admin] }), pb.UpdateGroupMetadataResponse);
    expect((await update(admin, id, { setName: true, name: "again" })).status).toBe(Status.Forbidden);
  });

  it("holds at most 257 members, the creator included", async () => {
    const creator = randomKey();
    const id = await group(creator, Array.from({ length: 255 }, randomKey));
    ok(await update(creator, id, { addMemberKeys: [randomKey()] }), pb.UpdateGroupMetadataResponse);
    const full = await update(creator, id, { addMemberKeys: [randomKey()] });
    expect(full.status).toBe(Status.Forbidden);
    expect(errorOf(full).message).toContain("257");
    expect(ok(await list(creator, id), pb.ListGroupMembersResponse).members).toHaveLength(257);
  });

  it("validates: an empty update, a bad key, a too long name, the creator's role", async () => {
    const [creator, bob] = [randomKey(), randomKey()];
    const id = await group(creator, [bob]);
    expect((await update(creator, id, {})).status).toBe(Status.BadRequest);
    const bad = await update(creator, id, { addMemberKeys: [new Uint8Array(5)] });
    expect(bad.status).toBe(Status.BadRequest);
    expect(errorOf(bad).message).toContain("add_member_keys[0]");
    expect((await update(creator, id, { setName: true, name: "n".repeat(129) })).status).toBe(Status.BadRequest);
    expect((await update(creator, id, { makeMemberKeys: [creator] })).status).toBe(Status.BadRequest);
    expect((await update(creator, id, { makeAdminKeys: [randomKey()] })).status).toBe(Status.NotFound);
    expect((await update(creator, id, { makeAdminKeys: [bob], makeMemberKeys: [bob] })).status).toBe(Status.BadRequest);
    // Adding only keys that already are members changes nothing and answers none added.
    const none = ok(await update(creator, id, { addMemberKeys: [bob] }), pb.UpdateGroupMetadataResponse);
    expect(none.addedMemberKeys).toEqual([]);
  });
});

describe("the group's default TTL (disappearing messages)", () => {
  it("expires a message that carried no TTL after the group's TTL, in every member's queue", async () => {
    const [creator, bob] = [await registeredKey(), await registeredKey()];
    const sender = randomKey();
    const id = await group(creator, [bob]);
    expect((await update(bob, id, { settings: { defaultTtlSecs: 1 } })).status).toBe(Status.Forbidden);
    ok(await update(creator, id, { settings: { defaultTtlSecs: 1 } }), pb.UpdateGroupMetadataResponse);
    expect(ok(await list(bob, id), pb.ListGroupMembersResponse).settings?.defaultTtlSecs).toBe(1);

    const other = randomBytes(16);
    for (const r of [creator, bob]) {
      ok(await enqueueAs(sender, r, Uint8Array.of(1), { channelId: id }), pb.EnqueueResponse);
      ok(await enqueueAs(sender, r, Uint8Array.of(2), { channelId: other }), pb.EnqueueResponse);
      // A TTL the sender gives wins over the group's.
      ok(await enqueueAs(sender, r, Uint8Array.of(3), { channelId: id, ttlSecs: 3600 }), pb.EnqueueResponse);
    }
    await new Promise((r) => setTimeout(r, 1_100));
    for (const r of [creator, bob]) {
      const inGroup = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: r, channelId: id }).finish(), {
        caller: r,
      });
      expect(ok(inGroup, pb.FetchResponse).payloads.map((e) => Array.from(e.data!))).toEqual([[3]]);
      const elsewhere = await rpc(
        Method.Fetch,
        pb.FetchRequest.encode({ recipientKey: r, channelId: other }).finish(),
        {
          caller: r,
        },
      );
      expect(ok(elsewhere, pb.FetchResponse).payloads).toHaveLength(1);
    }
  });

  it("applies to members added later, and stops for a member who left", async () => {
    const [creator, late] = [await registeredKey(), await registeredKey()];
    const id = await group(creator, []);
    ok(await update(creator, id, { settings: { defaultTtlSecs: 1 } }), pb.UpdateGroupMetadataResponse);
    ok(await update(creator, id, { addMemberKeys: [late] }), pb.UpdateGroupMetadataResponse);
    ok(await enqueueAs(randomKey(), late, Uint8Array.of(1), { channelId: id }), pb.EnqueueResponse);
    expect((await remove(late, id, late)).status).toBe(Status.Ok);
    ok(await enqueueAs(randomKey(), late, Uint8Array.of(2), { channelId: id }), pb.EnqueueResponse);
    await new Promise((r) => setTimeout(r, 1_100));
    const res = await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: late, channelId: id }).finish(), {
      caller: late,
    });
    expect(ok(res, pb.FetchResponse).payloads.map((e) => Array.from(e.data!))).toEqual([[2]]);
  });
});

describe("RotateKeys", () => {
  it("records a growing epoch, answers a repeat, refuses going back and outsiders", async () => {
    const [creator, bob] = [randomKey(), randomKey()];
    const id = await group(creator, [bob]);
    const rotate = (caller: Uint8Array, epoch: number) =>
      rpc(Method.RotateKeys, pb.RotateKeysRequest.encode({ channelId: id, epoch }).finish(), { caller });
    const first = ok(await rotate(bob, 3), pb.RotateKeysResponse);
    expect(Number(first.rotatedAtMs)).toBeGreaterThan(0);
    expect(Number(ok(await rotate(creator, 3), pb.RotateKeysResponse).rotatedAtMs)).toBe(Number(first.rotatedAtMs));
    expect((await rotate(creator, 2)).status).toBe(Status.BadRequest);
    expect((await rotate(creator, 0)).status).toBe(Status.BadRequest);
    expect((await rotate(randomKey(), 9)).status).toBe(Status.Forbidden);
    const listed = ok(await list(creator, id), pb.ListGroupMembersResponse);
    expect(Number(listed.keyEpoch)).toBe(3);
  });
});

describe("PushMembership", () => {
  it("reaches every member's subscribers on each change: added, removed, roles, keys", async () => {
    const [creator, bob, carol] = [await registeredKey(), await registeredKey(), await registeredKey()];
    const bobPush = await subscribe(bob);
    try {
      const id = await group(creator, [bob]);
      expect(membership((await bobPush.atLeast(1))[0])).toEqual({
        channel: hex(id),
        member: hex(bob),
        change: "joined",
        actor: hex(creator),
        role: "member",
      });
      ok(await update(creator, id, { addMemberKeys: [carol] }), pb.UpdateGroupMetadataResponse);
      expect(membership((await bobPush.atLeast(2))[1])).toMatchObject({ member: hex(carol), change: "joined" });
      expect((await remove(creator, id, carol)).status).toBe(Status.Ok);
      expect(membership((await bobPush.atLeast(3))[2])).toMatchObject({ member: hex(carol), change: "removed" });
      ok(await update(creator, id, { makeAdminKeys: [bob] }), pb.UpdateGroupMetadataResponse);
      expect(membership((await bobPush.atLeast(4))[3])).toMatchObject({ change: "role_changed", role: "admin" });
      ok(
        await rpc(Method.RotateKeys, pb.RotateKeysRequest.encode({ channelId: id, epoch: 7 }).finish(), {
          caller: creator,
        }),
        pb.RotateKeysResponse,
      );
      const rotated = pb.PushMembership.decode((await bobPush.atLeast(5))[4].event);
      expect(rotated.change).toBe("keys_rotated");
      expect(Number(rotated.epoch)).toBe(7);
    } finally {
      bobPush.close();
    }
  });
});

describe("DeleteAccount of a group's creator", () => {
  it("passes the creator role to the longest-standing admin, so the group stays managed", async () => {
    const [creator, member, admin] = [randomKey(), await registeredKey(), randomKey()];
    const id = await group(creator, [member, admin]);
    ok(await update(creator, id, { makeAdminKeys: [admin] }), pb.UpdateGroupMetadataResponse);
    const memberPush = await subscribe(member);
    ok(
      await rpc(Method.DeleteAccount, pb.DeleteAccountRequest.encode({}).finish(), { caller: creator }),
      pb.DeleteAccountResponse,
    );
    expect(await roles(member, id)).toEqual({ [hex(member)]: "member", [hex(admin)]: "creator" });
    // The remaining members hear it: the creator left, and who holds the role now.
    const heard = (await memberPush.atLeast(2)).map(membership);
    memberPush.close();
    expect(heard).toEqual([
      { channel: hex(id), member: hex(creator), change: "left", actor: hex(creator), role: "" },
      { channel: hex(id), member: hex(admin), change: "role_changed", actor: hex(creator), role: "creator" },
    ]);
    const row = await env.DB.prepare("SELECT creator_key FROM channels WHERE id = ?").bind(id).first<{
      creator_key: ArrayBuffer;
    }>();
    expect(hex(new Uint8Array(row!.creator_key))).toBe(hex(admin));
    // The new creator manages the group.
    expect((await remove(admin, id, member)).status).toBe(Status.Ok);
  });
});
