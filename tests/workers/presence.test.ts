// PushTyping (1001) and PushPresence (1002) as requests: relayed to the channel's other members'
// push subscribers, never stored, never to anyone outside the channel.
import { describe, it, expect } from "vitest";
import { exports } from "cloudflare:workers";
import { Method, PushEvent, Status, pb, parseQueueEvent } from "../../proto/index.ts";
import { assertionFor, env, hex, ok, randomKey, registeredKey, rpc } from "./helpers.ts";

/** A front's push subscription to `who`'s queue, collecting framed events. */
async function subscribe(who: Uint8Array) {
  const res = await exports.default.fetch("https://edge/push", {
    headers: { Upgrade: "websocket", "x-qpq-front-auth": env.FRONT_SECRET, "x-qpq-caller": await assertionFor(who) },
  });
  const ws = res.webSocket!;
  ws.accept();
  const events: { eventId: number; event: Uint8Array }[] = [];
  ws.addEventListener("message", (e) => {
    const data = e.data as string | ArrayBuffer | Blob;
    if (typeof data === "string") return;
    const got = (bytes: Uint8Array) => {
      const framed = parseQueueEvent(bytes);
      if (framed) events.push({ eventId: framed.eventId, event: framed.event.slice() });
    };
    if (data instanceof Blob) void data.arrayBuffer().then((b) => got(new Uint8Array(b)));
    else got(new Uint8Array(data));
  });
  return { events, close: () => ws.close(1000, "done") };
}

async function until(cond: () => boolean) {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
}

function typing(caller: Uint8Array, channelId: Uint8Array, on = true) {
  return rpc(Method.PushTyping, pb.PushTypingRequest.encode({ channelId, typing: on }).finish(), { caller });
}

describe("PushTyping and PushPresence", () => {
  it("reach the channel's other members, and never a non-member", async () => {
    const [alice, bob, outsider] = [await registeredKey(), await registeredKey(), await registeredKey()];
    const id = ok(
      await rpc(Method.CreateChannel, pb.CreateChannelRequest.encode({ memberKeys: [bob] }).finish(), {
        caller: alice,
      }),
      pb.CreateChannelResponse,
    ).channelId;
    const [bobPush, outsiderPush, alicePush] = [
      await subscribe(bob),
      await subscribe(outsider),
      await subscribe(alice),
    ];
    try {
      const sent = ok(await typing(alice, id), pb.PushTypingResponse);
      expect(sent.delivered).toBe(1);
      await until(() => bobPush.events.some((e) => e.eventId === PushEvent.Typing));
      const t = pb.PushTyping.decode(bobPush.events.find((e) => e.eventId === PushEvent.Typing)!.event);
      expect([hex(t.senderKey), hex(t.channelId), t.typing]).toEqual([hex(alice), hex(id), true]);

      ok(
        await rpc(Method.PushPresence, pb.PushPresenceRequest.encode({ channelId: id, online: true }).finish(), {
          caller: bob,
        }),
        pb.PushPresenceResponse,
      );
      await until(() => alicePush.events.some((e) => e.eventId === PushEvent.Presence));
      const p = pb.PushPresence.decode(alicePush.events.find((e) => e.eventId === PushEvent.Presence)!.event);
      expect([hex(p.identityKey), p.online, hex(p.channelId)]).toEqual([hex(bob), true, hex(id)]);

      // A non-member can neither send into the channel nor hear it.
      expect((await typing(outsider, id)).status).toBe(Status.Forbidden);
      // The sender does not hear itself; by now every relayed event has been handed over.
      ok(await typing(bob, id, false), pb.PushTypingResponse);
      await until(() => alicePush.events.filter((e) => e.eventId === PushEvent.Typing).length === 1);
      expect(outsiderPush.events).toEqual([]);
      expect(bobPush.events.filter((e) => e.eventId === PushEvent.Typing)).toHaveLength(1);
    } finally {
      for (const s of [bobPush, outsiderPush, alicePush]) s.close();
    }
  });

  it("validates the channel and needs a session", async () => {
    const a = randomKey();
    expect((await typing(a, new Uint8Array(0))).status).toBe(Status.BadRequest);
    expect((await typing(a, new Uint8Array(16))).status).toBe(Status.NotFound);
    const anon = await rpc(Method.PushTyping, pb.PushTypingRequest.encode({ channelId: new Uint8Array(16) }).finish());
    expect(anon.status).toBe(Status.Unauthorized);
  });
});
