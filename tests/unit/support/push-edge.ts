// Push for the test edge: accepts the gateway's /push WebSockets and lets a test send
// PushNewMessage events on them, drop them, or hold new ones back.
import { WebSocketServer, type WebSocket } from "ws";
import { RelayHeader, pb } from "../../../proto/index.ts";
import { gate, type TestEdge } from "./test-edge.ts";

export interface PushEdge {
  /** Push sockets accepted so far (open or not), in order. */
  readonly accepted: { ws: WebSocket; caller: string }[];
  /** Resolves once `count` push sockets have been accepted in total. */
  opened(count?: number): Promise<void>;
  /** Sends one PushNewMessage on every open push socket. */
  send(event: {
    recipientKey: Uint8Array;
    channelId?: Uint8Array;
    seq: number;
    size?: number;
    payload?: Uint8Array;
  }): void;
  /** Closes every push socket from the edge's side. */
  dropAll(): void;
  /** Holds new push sockets until `release`; `requested` resolves when one is being held. */
  hold(): { requested: Promise<void>; release: () => void };
  close(): Promise<void>;
}

export function acceptPush(edge: TestEdge): PushEdge {
  const wss = new WebSocketServer({ noServer: true });
  const accepted: { ws: WebSocket; caller: string }[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let held: { until: Promise<void>; requested: () => void } | undefined;

  edge.onUpgrade(async (req, socket, head) => {
    if (held) {
      held.requested();
      await held.until;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      accepted.push({ ws, caller: String(req.headers[RelayHeader.caller] ?? "") });
      for (const w of [...waiters]) {
        if (accepted.length >= w.count) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  });

  return {
    accepted,
    opened(count = 1) {
      if (accepted.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    send(event) {
      const bytes = pb.PushNewMessage.encode({ size: event.payload?.length ?? 0, ...event }).finish();
      for (const { ws } of accepted) if (ws.readyState === ws.OPEN) ws.send(bytes);
    },
    dropAll() {
      for (const { ws } of accepted) ws.close(1001, "edge restarting");
    },
    hold() {
      const until = gate<void>();
      const requested = gate<void>();
      held = { until: until.promise, requested: () => requested.open() };
      return {
        requested: requested.promise,
        release: () => {
          held = undefined;
          until.open();
        },
      };
    },
    async close() {
      for (const { ws } of accepted) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
