// Push fan-out: for each identity with an authenticated connection on this front, one WebSocket
// to that identity's RecipientQueue (via the edge's /push route). Each event arrives once per
// front and is written to every connection of the identity as a push frame on a new uni stream.
// Push is a hint: a missed event never loses a message, Fetch/FetchWait stay authoritative.
import { WebSocket } from "ws";
import { PushEvent, RelayHeader, encodePush } from "../proto/index.ts";
import type { Logger } from "./log.ts";

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
  /** Supplies a fresh caller assertion for (re)connecting. */
  assertion: () => Promise<string | undefined>;
}

export interface PushHubOptions {
  edgeUrl: string;
  frontSecret: string;
  logger: Logger;
  onEvent?: () => void;
}

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
      sub = { targets: new Map(), socket: undefined, retryMs: 250, timer: undefined, assertion };
      this.subs.set(identityHex, sub);
      sub.targets.set(target.id, target);
      void this.connect(identityHex, sub);
      return;
    }
    sub.assertion = assertion;
    sub.targets.set(target.id, target);
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

  private async connect(identityHex: string, sub: Subscription): Promise<void> {
    if (this.closed || this.subs.get(identityHex) !== sub) return;
    const assertion = await sub.assertion();
    if (!assertion) return; // the session ended; the connection will be unsubscribed
    const url = this.opts.edgeUrl.replace(/^http/, "ws") + "/push";
    // No permessage-deflate: events are small and frequent, and inflating each one was the
    // largest CPU cost of the front that was its own.
    const ws = new WebSocket(url, {
      headers: { [RelayHeader.frontAuth]: this.opts.frontSecret, [RelayHeader.caller]: assertion },
      perMessageDeflate: false,
    });
    sub.socket = ws;
    ws.on("open", () => (sub.retryMs = 250));
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      this.opts.onEvent?.();
      const frame = encodePush(PushEvent.NewMessage, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      for (const t of sub.targets.values()) void t.sendPush(frame).catch(() => {});
    });
    ws.on("close", () => {
      if (sub.socket !== ws) return;
      sub.socket = undefined;
      if (this.closed || this.subs.get(identityHex) !== sub) return;
      // Reconnect with backoff while someone is listening.
      sub.timer = setTimeout(() => void this.connect(identityHex, sub), sub.retryMs);
      sub.timer.unref();
      sub.retryMs = Math.min(sub.retryMs * 2, 10_000);
    });
    ws.on("error", () => this.opts.logger.debug("push socket error", { identity: identityHex.slice(0, 8) }));
  }
}
