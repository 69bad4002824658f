// Typing and presence end to end over QUIC: relayed to the channel's members' connections as
// pushes, never stored, never delivered to a non-member (who may not send them either).
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { PushEvent, Status } from "../../proto/index.ts";
import { QpqCallError, QpqClient } from "../../sdk/client.ts";
import { onMembership, onPresence, onTyping, sendPresence, sendTyping, updateGroup } from "../../sdk/groups.ts";
import { startTestSystem, type TestSystem } from "../support/system.ts";
import { registerAndLogin } from "../support/users.ts";
import { pushLive, until } from "../support/push.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("typing and presence over QUIC", () => {
  let sys: TestSystem;
  const opened: QpqClient[] = [];

  beforeAll(async () => {
    sys = await startTestSystem({ env: { QPQ_AUTH_PER_MINUTE: "6000", QPQ_WS_LISTEN: "127.0.0.1:0" } });
  });

  afterAll(async () => {
    await Promise.allSettled(opened.map((c) => c.close()));
    await sys?.stop();
  });

  async function user(prefix: string, over: "quic" | "websocket" = "quic") {
    const client =
      over === "quic" ? await sys.connect() : await QpqClient.connectWebSocket(sys.system.front.wsUrl as string);
    if (over === "websocket") opened.push(client);
    return registerAndLogin(client, prefix);
  }

  it("typing reaches a member, not a non-member; nothing is stored", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const carol = await user("carol");
    await pushLive(bob, alice.client);
    await pushLive(carol, alice.client);
    const carolFrames: number[] = [];
    carol.client.transport.onPush((f) => carolFrames.push(f.eventType));

    const { channelId } = await alice.client.createGroupChannel([bob.key]);
    const typed: { sender: string; typing: boolean }[] = [];
    onTyping(bob.client, (e) => typed.push({ sender: hex(e.senderKey), typing: e.typing }));
    const online: string[] = [];
    onPresence(alice.client, (e) => online.push(hex(e.identityKey)));

    expect(await sendTyping(alice.client, channelId, true)).toBe(1);
    await until(() => (typed.length > 0 ? true : undefined), "bob hears alice typing");
    expect(typed[0]).toEqual({ sender: hex(alice.key), typing: true });
    await sendPresence(bob.client, channelId, true);
    await until(() => (online.includes(hex(bob.key)) ? true : undefined), "alice hears bob online");

    // Carol is not a member: she cannot send into the channel...
    let refused: unknown;
    await sendTyping(carol.client, channelId).catch((e: unknown) => (refused = e));
    expect(refused).toBeInstanceOf(QpqCallError);
    expect((refused as QpqCallError).status).toBe(Status.Forbidden);
    // ...and, once a later push has reached her connection, she has heard no typing at all.
    await pushLive(carol, alice.client);
    expect(carolFrames.filter((t) => t === PushEvent.Typing || t === PushEvent.Presence)).toEqual([]);
    // Never stored: bob's queue on the channel is empty.
    expect(await bob.client.fetch({ channelId })).toEqual([]);
  });

  it("reaches a member connected through the WebSocket bridge, membership changes included", async () => {
    const alice = await user("ws-alice");
    const bob = await user("ws-bob", "websocket");
    await pushLive(bob, alice.client);
    const { channelId } = await alice.client.createGroupChannel([bob.key]);
    const typed: boolean[] = [];
    onTyping(bob.client, (e) => typed.push(e.typing));
    const changes: string[] = [];
    onMembership(bob.client, (e) => changes.push(e.change));
    await sendTyping(alice.client, channelId, true);
    await until(() => (typed.length > 0 ? true : undefined), "typing over the bridge");
    await updateGroup(alice.client, channelId, { name: "renamed" });
    await until(() => (changes.includes("metadata_changed") ? true : undefined), "membership over the bridge");
  });
});
