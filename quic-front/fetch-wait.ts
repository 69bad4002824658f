// FetchWait served at the front: instead of holding an HTTP request to the edge open for up to
// a minute (which let long-polls occupy the relay's whole connection pool), the gateway reads
// without waiting and parks a Waiter here. The push subscription the front already holds for the
// identity wakes the waiters of a channel when a message arrives; the gateway then reads again.
// Pure bookkeeping: no I/O, time only through the Clock passed in.
import type { Clock } from "./clock.ts";

/** How a wait ended: a wake-up (read again), the timeout, or cancellation (drain, close). */
export type WaitEnd = "woken" | "timeout" | "cancelled";

export class Waiter {
  readonly connectionId: string;
  readonly identityHex: string;
  readonly channelHex: string;
  /** A wake-up that arrived while nobody was waiting (for example during a read): not lost. */
  private pending = false;
  private cancelled = false;
  private settle: ((end: WaitEnd) => void) | undefined;

  constructor(connectionId: string, identityHex: string, channelHex: string) {
    this.connectionId = connectionId;
    this.identityHex = identityHex;
    this.channelHex = channelHex;
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  wake(): void {
    if (this.settle) this.settle("woken");
    else this.pending = true;
  }

  cancel(): void {
    this.cancelled = true;
    this.settle?.("cancelled");
  }

  /** Resolves at the next wake-up (or one already latched), at cancellation, or after `ms`. */
  next(clock: Clock, ms: number): Promise<WaitEnd> {
    if (this.cancelled) return Promise.resolve("cancelled");
    if (this.pending) {
      this.pending = false;
      return Promise.resolve("woken");
    }
    return new Promise<WaitEnd>((resolve) => {
      const timer = clock.after(ms, () => done("timeout"));
      const done = (end: WaitEnd) => {
        timer.cancel();
        this.settle = undefined;
        resolve(end);
      };
      this.settle = done;
    });
  }
}

export interface WaitLimits {
  /** Concurrent FetchWaits one connection may hold. */
  perConnection: number;
  /** Concurrent FetchWaits one identity may hold on this front, over all its connections. */
  perIdentity: number;
}

export type WaitRefusal = { refused: "connection" | "identity"; limit: number };

export class FetchWaits {
  private readonly limits: WaitLimits;
  private readonly byIdentity = new Map<string, Set<Waiter>>();
  private readonly byConnection = new Map<string, Set<Waiter>>();
  private count = 0;

  constructor(limits: WaitLimits) {
    this.limits = limits;
  }

  /** Waiters currently registered. */
  get size(): number {
    return this.count;
  }

  /** Registers a waiter, or says which cap refuses it. */
  add(connectionId: string, identityHex: string, channelHex: string): Waiter | WaitRefusal {
    const ofConn = this.byConnection.get(connectionId);
    if ((ofConn?.size ?? 0) >= this.limits.perConnection)
      return { refused: "connection", limit: this.limits.perConnection };
    const ofIdentity = this.byIdentity.get(identityHex);
    if ((ofIdentity?.size ?? 0) >= this.limits.perIdentity)
      return { refused: "identity", limit: this.limits.perIdentity };
    const w = new Waiter(connectionId, identityHex, channelHex);
    setOf(this.byConnection, connectionId).add(w);
    setOf(this.byIdentity, identityHex).add(w);
    this.count++;
    return w;
  }

  remove(w: Waiter): void {
    const ofConn = this.byConnection.get(w.connectionId);
    if (!ofConn?.delete(w)) return;
    if (ofConn.size === 0) this.byConnection.delete(w.connectionId);
    const ofIdentity = this.byIdentity.get(w.identityHex);
    ofIdentity?.delete(w);
    if (ofIdentity?.size === 0) this.byIdentity.delete(w.identityHex);
    this.count--;
  }

  /** A message arrived for (identity, channel); `undefined` channel wakes all of the identity's. */
  notify(identityHex: string, channelHex: string | undefined): void {
    for (const w of this.byIdentity.get(identityHex) ?? []) {
      if (channelHex === undefined || w.channelHex === channelHex) w.wake();
    }
  }

  /** Ends the waits of one connection (it closed). */
  cancelConnection(connectionId: string): void {
    for (const w of this.byConnection.get(connectionId) ?? []) w.cancel();
  }

  /** Ends every wait (drain, stop). */
  cancelAll(): void {
    for (const set of this.byConnection.values()) for (const w of set) w.cancel();
  }
}

function setOf<K, V>(map: Map<K, Set<V>>, key: K): Set<V> {
  let s = map.get(key);
  if (!s) map.set(key, (s = new Set()));
  return s;
}
