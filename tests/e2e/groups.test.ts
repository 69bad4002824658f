// Groups end to end over QUIC: PushMembership reaches a connected member without any fetch, a
// non-admin cannot remove a member, the group's default TTL expires a message that carried none,
// and on_group_join / on_group_leave fire for changes made by someone else.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Status } from "../../proto/index.ts";
import { QpqCallError } from "../../sdk/client.ts";
import { listGroupMembers, onMembership, rotateKeys, updateGroup, type MembershipEvent } from "../../sdk/groups.ts";
import { recordingLogger, startTestSystem, type TestSystem } from "../support/system.ts";
import { registerAndLogin } from "../support/users.ts";
import { pushLive, until } from "../support/push.ts";

const RECORDER = `
export function on_group_join(e) { log(JSON.stringify({ hook: "on_group_join", event: e })); }
export function on_group_leave(e) { log(JSON.stringify({ hook: "on_group_leave", event: e })); }
`;

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return Status.Ok;
  } catch (err) {
    if (err instanceof QpqCallError) return err.status;
    throw err;
  }
}

describe("groups over QUIC", () => {
  let sys: TestSystem;
  let dir: string;
  const logger = recordingLogger();
  const hooks = () =>
    logger.entries
      .filter((e) => e.msg === "plugin log")
      .map((e) => JSON.parse(String(e.fields.line)) as { hook: string; event: Record<string, string> });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "qpq-groups-"));
    writeFileSync(join(dir, "recorder.js"), RECORDER);
    sys = await startTestSystem({ env: { QPQ_PLUGIN_DIR: dir, QPQ_AUTH_PER_MINUTE: "6000" }, logger });
  });

  afterAll(async () => {
    await sys?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A registered user, logged in on its default device. */
  const user = async (prefix: string) => registerAndLogin(await sys.connect(), prefix);

  it("PushMembership reaches a connected member without a fetch; a non-admin cannot remove; hooks fire for others' changes", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const carol = await user("carol");
    await pushLive(bob, alice.client);
    const events: MembershipEvent[] = [];
    onMembership(bob.client, (e) => events.push(e));

    const { channelId } = await alice.client.createGroupChannel([bob.key], "team");
    const joinedBob = await until(
      () => events.find((e) => e.change === "joined" && hex(e.memberKey) === hex(bob.key)),
      "bob's joined event",
    );
    expect(hex(joinedBob.channelId)).toBe(hex(channelId));
    expect(hex(joinedBob.actorKey)).toBe(hex(alice.key));

    // Alice adds carol: bob's connection hears it with no call of its own.
    expect((await updateGroup(alice.client, channelId, { addMembers: [carol.key] })).map(hex)).toEqual([
      hex(carol.key),
    ]);
    await until(() => events.find((e) => e.change === "joined" && hex(e.memberKey) === hex(carol.key)), "carol joined");
    // on_group_join fired for carol, added by alice.
    const join = await until(
      () => hooks().find((h) => h.hook === "on_group_join" && h.event.member === hex(carol.key))?.event,
      "on_group_join for carol",
    );
    expect(join).toMatchObject({ channelId: hex(channelId), actor: hex(alice.key) });

    // Bob is a plain member: he may not remove carol, and she stays. (on_group_leave runs before
    // the edge decides, so it saw bob's attempt too, with bob as the actor.)
    expect(await statusOf(bob.client.removeMember(channelId, carol.key))).toBe(Status.Forbidden);
    expect((await listGroupMembers(bob.client, channelId)).members.map((m) => hex(m.identityKey))).toContain(
      hex(carol.key),
    );

    // Alice removes carol: bob hears it, and on_group_leave fires with alice as the actor.
    await alice.client.removeMember(channelId, carol.key);
    await until(() => events.find((e) => e.change === "removed" && hex(e.memberKey) === hex(carol.key)), "removal");
    const leave = await until(
      () =>
        hooks().find(
          (h) => h.hook === "on_group_leave" && h.event.member === hex(carol.key) && h.event.actor === hex(alice.key),
        )?.event,
      "on_group_leave for carol",
    );
    expect(leave).toMatchObject({ channelId: hex(channelId), actor: hex(alice.key) });

    await rotateKeys(alice.client, channelId, 2);
    const rotated = await until(() => events.find((e) => e.change === "keys_rotated"), "keys_rotated");
    expect(rotated.epoch).toBe(2);
  });

  it("the group's default TTL expires a message that carried none", async () => {
    const alice = await user("ttl-a");
    const bob = await user("ttl-b");
    const { channelId } = await alice.client.createGroupChannel([bob.key]);
    expect(await statusOf(updateGroup(bob.client, channelId, { defaultTtlSecs: 1 }))).toBe(Status.Forbidden);
    await updateGroup(alice.client, channelId, { defaultTtlSecs: 1 });
    expect((await listGroupMembers(bob.client, channelId)).defaultTtlSecs).toBe(1);

    const other = crypto.getRandomValues(new Uint8Array(16));
    // Stored (a seq), with no TTL of its own.
    expect(
      Number((await alice.client.enqueue({ recipientKey: bob.key, channelId, payload: Uint8Array.of(1) })).seq),
    ).toBeGreaterThan(0);
    await alice.client.enqueue({ recipientKey: bob.key, channelId: other, payload: Uint8Array.of(2) });
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await bob.client.fetch({ channelId })).toEqual([]);
    expect(await bob.client.fetch({ channelId: other })).toHaveLength(1);
  });
});
