// Where the six plugin hooks meet the gateway: builds each event from what the gateway already
// has (decoding a payload only when some plugin exports that hook) and applies the decision.
// With no plugin exporting a hook, every method here returns at once: zero plugins cost nothing.
import { ALPN, GROUP_MEMBERS_MAX, Method, Status, directChannelId, pb, type RequestFrame } from "../proto/index.ts";
import type { HookName, HookEvent } from "../plugins/api/index.ts";
import type { HookDecision } from "../proto/util/hook-decision.ts";
import { fromHex, toHex } from "../proto/util/hex.ts";
import { errorResponse, type RelayResponse } from "./relay.ts";
import type { Logger } from "../proto/util/log.ts";

/** The part of the plugin host the gateway uses (plugins/host/index.ts implements it). */
export interface HookRunner {
  has(hook: HookName): boolean;
  call<H extends HookName>(hook: H, event: HookEvent<H>): Promise<HookDecision>;
}

export interface HookConnection {
  readonly id: string;
  readonly remoteAddr: string;
  readonly transport: "quic" | "websocket";
  readonly openedAt: number;
  /** Hex identity of the connection's session, if any. */
  identityHex(): string | undefined;
}

export class GatewayHooks {
  private readonly runner: HookRunner | undefined;
  private readonly logger: Logger;

  /** Sealed-sender mode: on_message_send carries no senderIdentity. */
  private readonly sealedSender: boolean;

  constructor(runner: HookRunner | undefined, logger: Logger, opts: { sealedSender?: boolean } = {}) {
    this.sealedSender = opts.sealedSender ?? false;
    this.runner = runner;
    this.logger = logger;
  }

  /** on_connect: undefined to admit, or the rejection reason. */
  async connect(conn: HookConnection): Promise<string | undefined> {
    if (!this.runner?.has("on_connect")) return undefined;
    const d = await this.runner.call("on_connect", {
      connectionId: conn.id,
      clientAddress: conn.remoteAddr,
      alpn: ALPN,
      transport: conn.transport,
      time: Date.now(),
    });
    return d.allow ? undefined : d.reason;
  }

  /** on_disconnect: observer, fire and forget. */
  disconnect(conn: HookConnection, reason: string): void {
    if (!this.runner?.has("on_disconnect")) return;
    const now = Date.now();
    this.observe(
      this.runner.call("on_disconnect", {
        connectionId: conn.id,
        clientAddress: conn.remoteAddr,
        transport: conn.transport,
        time: now,
        durationMs: now - conn.openedAt,
        reason,
      }),
    );
  }

  /**
   * Gates a request before it is relayed: on_message_send for Enqueue/BatchEnqueue,
   * on_group_join for CreateChannel and for UpdateGroupMetadata's added members, on_group_leave
   * for RemoveMember and a per-channel BanUser. Every membership change is one of these requests
   * (by whoever makes it), so the actor's front sees each one. Returns a Forbidden response when
   * a plugin rejects.
   */
  async gate(conn: HookConnection, frame: RequestFrame): Promise<RelayResponse | undefined> {
    const runner = this.runner;
    if (!runner) return undefined;
    const id = frame.methodId;
    let decision: HookDecision | undefined;
    if ((id === Method.Enqueue || id === Method.BatchEnqueue) && runner.has("on_message_send")) {
      const event = this.sendEvent(conn, frame);
      if (event) decision = await runner.call("on_message_send", event);
    } else if (id === Method.CreateChannel && runner.has("on_group_join")) {
      decision = await this.joins(runner, conn, frame);
    } else if (id === Method.UpdateGroupMetadata && runner.has("on_group_join")) {
      decision = await this.added(runner, conn, frame);
    } else if ((id === Method.RemoveMember || id === Method.BanUser) && runner.has("on_group_leave")) {
      decision = await this.leave(runner, conn, frame);
    }
    if (!decision || decision.allow) return undefined;
    return errorResponse(Status.Forbidden, decision.reason);
  }

  /** on_message_receive after a Fetch/FetchWait delivered messages: observer. */
  delivered(conn: HookConnection, frame: RequestFrame, res: RelayResponse): void {
    const runner = this.runner;
    if (!runner?.has("on_message_receive") || res.status !== Status.Ok) return;
    if (frame.methodId !== Method.Fetch && frame.methodId !== Method.FetchWait) return;
    try {
      const wait = frame.methodId === Method.FetchWait;
      const req = wait ? pb.FetchWaitRequest.decode(frame.payload) : pb.FetchRequest.decode(frame.payload);
      const out = wait ? pb.FetchWaitResponse.decode(res.payload) : pb.FetchResponse.decode(res.payload);
      if (out.payloads.length === 0) return;
      this.observe(
        runner.call("on_message_receive", {
          connectionId: conn.id,
          recipient: toHex(req.recipientKey),
          deviceId: toHex(req.deviceId),
          channelId: toHex(req.channelId),
          count: out.payloads.length,
          sizes: out.payloads.map((e) => e.data?.length ?? 0),
          wait,
          time: Date.now(),
        }),
      );
    } catch {
      /* the edge answered Ok, so this cannot happen short of a bug: skip the event */
    }
  }

  private sendEvent(conn: HookConnection, frame: RequestFrame): HookEvent<"on_message_send"> | undefined {
    try {
      const batch = frame.methodId === Method.BatchEnqueue;
      const req = batch ? pb.BatchEnqueueRequest.decode(frame.payload) : pb.EnqueueRequest.decode(frame.payload);
      const recipients = "recipientKeys" in req ? req.recipientKeys.map(toHex) : [toHex(req.recipientKey)];
      return {
        connectionId: conn.id,
        clientAddress: conn.remoteAddr,
        // Sealed-sender mode: no such field at all (docs/plugins.md).
        ...(this.sealedSender ? {} : { senderIdentity: conn.identityHex() }),
        recipients,
        channelId: toHex(req.channelId),
        payloadSize: req.payload.length,
        ttlSecs: req.ttlSecs,
        messageId: toHex(req.messageId),
        batch,
        time: Date.now(),
      };
    } catch {
      return undefined; // malformed: the edge answers BadRequest
    }
  }

  /** CreateChannel: one on_group_join per initial member other than the creator; first reject wins. */
  private async joins(runner: HookRunner, conn: HookConnection, frame: RequestFrame) {
    let req: ReturnType<typeof pb.CreateChannelRequest.decode>;
    try {
      req = pb.CreateChannelRequest.decode(frame.payload);
    } catch {
      return undefined;
    }
    const actor = conn.identityHex() ?? "";
    const time = Date.now();
    // A new group's id is assigned by the edge, so its join events carry channelId "".
    let channelId = "";
    let members = req.memberKeys;
    const actorKey = actor ? fromHex(actor) : null;
    if (req.peerKey.length === 32 && actorKey) {
      channelId = toHex(await directChannelId(actorKey, req.peerKey));
      members = [req.peerKey];
    }
    const decisions = await Promise.all(
      members
        .slice(0, GROUP_MEMBERS_MAX)
        .map((m) => runner.call("on_group_join", { channelId, member: toHex(m), actor, time })),
    );
    return decisions.find((d) => !d.allow) ?? decisions[0];
  }

  /** UpdateGroupMetadata adding members (by a creator or admin): one on_group_join per key. */
  private async added(runner: HookRunner, conn: HookConnection, frame: RequestFrame) {
    let req: ReturnType<typeof pb.UpdateGroupMetadataRequest.decode>;
    try {
      req = pb.UpdateGroupMetadataRequest.decode(frame.payload);
    } catch {
      return undefined; // malformed: the edge answers BadRequest
    }
    const actor = conn.identityHex() ?? "";
    const time = Date.now();
    const channelId = toHex(req.channelId);
    const decisions = await Promise.all(
      req.addMemberKeys
        .slice(0, GROUP_MEMBERS_MAX)
        .map((m) => runner.call("on_group_join", { channelId, member: toHex(m), actor, time })),
    );
    return decisions.find((d) => !d.allow) ?? decisions[0];
  }

  /** RemoveMember (leave or removal) and a per-channel BanUser (which removes the member). */
  private async leave(runner: HookRunner, conn: HookConnection, frame: RequestFrame) {
    let channelId: Uint8Array;
    let member: Uint8Array;
    try {
      if (frame.methodId === Method.BanUser) {
        const req = pb.BanUserRequest.decode(frame.payload);
        if (req.channelId.length === 0) return undefined; // a server-wide ban changes no membership
        [channelId, member] = [req.channelId, req.identityKey];
      } else {
        const req = pb.RemoveMemberRequest.decode(frame.payload);
        [channelId, member] = [req.channelId, req.memberKey];
      }
    } catch {
      return undefined; // malformed: the edge answers BadRequest
    }
    return runner.call("on_group_leave", {
      channelId: toHex(channelId),
      member: toHex(member),
      actor: conn.identityHex() ?? "",
      time: Date.now(),
    });
  }

  private observe(p: Promise<unknown>): void {
    p.catch((err) =>
      this.logger.warn("plugin observer failed", { error: err instanceof Error ? err.message : String(err) }),
    );
  }
}
