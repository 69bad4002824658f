// RemoveMember (410): who may remove whom from a group channel.
import { describe, it, expect } from "vitest";
import { Method, Status, pb } from "../../proto/index.ts";
import { errorOf, ok, randomKey, rpc } from "./helpers.ts";

async function group(creator: Uint8Array, members: Uint8Array[]): Promise<Uint8Array> {
  const res = await rpc(Method.CreateChannel, pb.CreateChannelRequest.encode({ memberKeys: members }).finish(), {
    caller: creator,
  });
  return ok(res, pb.CreateChannelResponse).channelId;
}

function remove(caller: Uint8Array, channelId: Uint8Array, memberKey: Uint8Array) {
  return rpc(Method.RemoveMember, pb.RemoveMemberRequest.encode({ channelId, memberKey }).finish(), { caller });
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
    expect((await remove(bob, id, bob)).status).toBe(Status.Ok);
    // carol is still there: the creator can still remove her.
    expect((await remove(creator, id, carol)).status).toBe(Status.Ok);
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
