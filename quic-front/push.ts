// Push fan-out: for each identity with an authenticated connection on this front, one WebSocket
// to that identity's RecipientQueue (via the edge's /push route). Each event arrives once per
// front and is written to every connection of the identity as a push frame on a new uni stream.
// Push is a hint: a missed event never loses a message, Fetch/FetchWait stay authoritative.
// The same events wake the FetchWaits the gateway parks (fetch-wait.ts); a (re)opened socket
// wakes them all, since events sent while it was down are lost.
import { WebSocket } from "ws";
import {
  PushEvent,
  RelayHeader,
  encodePush,
  parseQueueEvent,
  parseSessionSignal,
  pb,
  type SessionSignal,
} from "../proto/index.ts";
import type { Logger } from "../proto/util/log.ts";
import { toHex } from "../proto/util/hex.ts";

export interface PushTarget {
  readonly id: string;
  /** Writes one push frame on a new unidirectional stream. */
  sendPush(frame: Uint8Array): Promise<void>;
}

interface Subscription {
  targets: Map<string, PushTarget>;
  socket: WebSocket | undefined;
  retryMs: number;
  timer: NodeJS.Timeout | undefined;
  /** Between the start of a connection attempt and its socket's creation (the assertion is awaited). */
  connecting: boolean;
  /** Supplies a fresh caller assertion for (re)connecting. */
  assertion: () => Promise<string | undefined>;
}

export interface PushHubOptions {
  edgeUrl: string;
  frontSecret: string;
  logger: Logger;
  /** Each event, with its channel (hex); `undefined` when the event could not be read. */
  onEvent?: (identityHex: string, channelHex: string | undefined) => void;
  /** The identity's socket opened: events may have been missed while it was not. */
  onOpen?: (identityHex: string) => void;
  /** The identity's queue revoked a device or deleted the account (protocol.md, "Devices"). */
  onSignal?: (identityHex: string, signal: SessionSignal) => void;
}

/** Events are PushNewMessage: keys, seq, size and at most 4 KiB inline; anything larger is refused. */
const MAX_EVENT_BYTES = 64 * 1024;

export class PushHub {
  private readonly subs = new Map<string, Subscription>();
  private readonly opts: PushHubOptions;
  private closed = false;

  constructor(opts: PushHubOptions) {
    this.opts = opts;
  }

  subscribe(identityHex: string, target: PushTarget, assertion: () => Promise<string | undefined>): void {
    let sub = this.subs.get(identityHex);
    if (!sub) {
      sub = { targets: new Map(), socket: undefined, retryMs: 250, timer: undefined, connecting: false, assertion };
      this.subs.set(identityHex, sub);
      sub.targets.set(target.id, target);
      this.connectSoon(identityHex, sub);
      return;
    }
    sub.assertion = assertion;
    sub.targets.set(target.id, target);
    // An earlier attempt may have given up (its session had ended): this subscriber has a session.
    if (!sub.socket && !sub.timer && !sub.connecting) this.connectSoon(identityHex, sub);
  }

  unsubscribe(identityHex: string, targetId: string): void {
    const sub = this.subs.get(identityHex);
    if (!sub) return;
    sub.targets.delete(targetId);
    if (sub.targets.size > 0) return;
    this.subs.delete(identityHex);
    clearTimeout(sub.timer);
    sub.socket?.close(1000, "no more subscribers");
  }

  close(): void {
    this.closed = true;
    for (const [id, sub] of this.subs) {
      clearTimeout(sub.timer);
      sub.socket?.close(1000, "front stopping");
      this.subs.delete(id);
    }
  }

  /** Connects in the background; a failure only schedules the next attempt. */
  private connectSoon(identityHex: string, sub: Subscription): void {
    sub.connecting = true;
    this.connect(identityHex, sub)
      .finally(() => (sub.connecting = false))
      .catch((err: unknown) => {
        this.opts.logger.warn("push subscription failed", {
          identity: identityHex.slice(0, 8),
          error: err instanceof Error ? err.message : String(err),
        });
        this.retry(identityHex, sub);
      });
  }

  private retry(identityHex: string, sub: Subscription): void {
    if (this.closed || this.subs.get(identityHex) !== sub || sub.socket) return;
    clearTimeout(sub.timer);
    // Reconnect with backoff while someone is listening.
    sub.timer = setTimeout(() => {
      sub.timer = undefined;
      this.connectSoon(identityHex, sub);
    }, sub.retryMs);
    sub.timer.unref();
    sub.retryMs = Math.min(sub.retryMs * 2, 10_000);
  }

  private async connect(identityHex: string, sub: Subscription): Promise<void> {
    if (this.closed || this.subs.get(identityHex) !== sub) return;
    const assertion = await sub.assertion();
    if (!assertion) return; // the session ended; the connection will be unsubscribed
    if (this.closed || this.subs.get(identityHex) !== sub) return;
    const url = this.opts.edgeUrl.replace(/^http/, "ws") + "/push";
    // No permessage-deflate: events are small and frequent, and inflating each one was the
    // largest CPU cost of the front that was its own.
    const ws = new WebSocket(url, {
      headers: { [RelayHeader.frontAuth]: this.opts.frontSecret, [RelayHeader.caller]: assertion },
      perMessageDeflate: false,
      maxPayload: MAX_EVENT_BYTES,
    });
    sub.socket = ws;
    ws.on("open", () => {
      sub.retryMs = 250;
      this.opts.onOpen?.(identityHex);
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const signal = parseSessionSignal(data.toString("utf8"));
        if (signal) this.signal(identityHex, signal);
        return;
      }
      // An exception thrown here would escape into ws's socket handler and end the process.
      try {
        this.deliver(identityHex, sub, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } catch (err) {
        this.opts.logger.error("push event failed", {
          identity: identityHex.slice(0, 8),
          error: err instanceof Error ? err.message : String(err),
        });
      }
    });
    ws.on("close", () => {
      if (sub.socket !== ws) return;
      sub.socket = undefined;
      this.retry(identityHex, sub);
    });
    ws.on("error", () => this.opts.logger.debug("push socket error", { identity: identityHex.slice(0, 8) }));
  }

  private signal(identityHex: string, signal: SessionSignal): void {
    try {
      this.opts.onSignal?.(identityHex, signal);
    } catch (err) {
      this.opts.logger.error("session signal failed", {
        identity: identityHex.slice(0, 8),
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  private deliver(identityHex: string, sub: Subscription, event: Uint8Array): void {
    // Typing, presence and membership events: forwarded as they are; they wake no FetchWait.
    const framed = parseQueueEvent(event);
    if (framed) {
      if (framed.eventId === PushEvent.NewMessage) return; // only ever sent bare
      this.forward(sub, encodePush(framed.eventId, framed.event));
      return;
    }
    let channelHex: string | undefined;
    try {
      channelHex = toHex(pb.PushNewMessage.decode(event).channelId);
    } catch {
      channelHex = undefined; // unreadable: wake every waiter of the identity, forward as before
    }
    this.opts.onEvent?.(identityHex, channelHex);
    this.forward(sub, encodePush(PushEvent.NewMessage, event));
  }

  private forward(sub: Subscription, frame: Uint8Array): void {
    for (const t of [...sub.targets.values()]) {
      t.sendPush(frame).catch((err: unknown) =>
        this.opts.logger.debug("push frame not delivered", {
          target: t.id,
          error: err instanceof Error ? err.message : String(err),
        }),
      );
    }
  }
}
