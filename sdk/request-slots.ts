// Flow control shared by the SDK transports: at most `maxInFlight` requests on the wire, the rest
// wait in a bounded first-come, first-served queue. Every failure is a TransportError, so a
// caller sees a rejected promise and never an exception thrown elsewhere. No Node-only APIs.

/** A request failed below the qpq protocol: connection, stream, deadline or local limits. */
export class TransportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TransportError";
  }
}

export interface SlotOptions {
  /** Requests on the wire at once. */
  maxInFlight: number;
  /** Requests waiting for a slot; beyond this, a request is refused at once. */
  maxQueued: number;
  /**
   * Whether the connection can take one more request right now (for QUIC: the peer still grants
   * a stream). While it says no, queued requests are retried every `recheckMs`.
   */
  canStart?: () => boolean;
  recheckMs?: number;
}

interface Waiter {
  /** Runs when a slot is free; returns false if starting failed (the slot is then free again). */
  grant(): boolean;
  fail(err: Error): void;
}

/** A request that holds a slot: what `start` returned, and the function that frees the slot. */
export interface Slot<T> {
  value: T;
  release(): void;
}

export class RequestSlots {
  private readonly opts: Required<SlotOptions>;
  private active = 0;
  private readonly queue: Waiter[] = [];
  private recheck: ReturnType<typeof setTimeout> | undefined;
  private closedWith: Error | undefined;

  constructor(opts: SlotOptions) {
    for (const [name, value] of [
      ["maxInFlight", opts.maxInFlight],
      ["maxQueued", opts.maxQueued],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < (name === "maxQueued" ? 0 : 1))
        throw new RangeError(`${name} out of range: ${value}`);
    }
    this.opts = { canStart: () => true, recheckMs: 5, ...opts };
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.queue.length;
  }

  /**
   * Waits for a slot, then calls `start` at once (synchronously, so what it opens is counted
   * before the next request checks `canStart`). Resolves with its result and the function that
   * frees the slot (call it exactly once). Rejects with a TransportError when the queue is full,
   * `signal` aborts, or `close` was called, and with what `start` throws (the slot is then freed).
   */
  acquire<T>(start: () => T, signal?: AbortSignal): Promise<Slot<T>> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.queue.length === 0 && this.startable()) {
      try {
        return Promise.resolve(this.take(start));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.queue.length >= this.opts.maxQueued) {
      return Promise.reject(new TransportError(`too many requests waiting (${this.opts.maxQueued}); try again later`));
    }
    return new Promise<Slot<T>>((resolve, reject) => {
      const onAbort = () => {
        this.remove(waiter);
        reject(abortError(signal as AbortSignal));
      };
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          try {
            resolve(this.take(start));
            return true;
          } catch (err) {
            reject(err);
            return false;
          }
        },
        fail: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
      this.pump();
    });
  }

  /** Refuses all queued and future requests with `err` (the connection is gone). */
  close(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    clearTimeout(this.recheck);
    for (const w of this.queue.splice(0)) w.fail(err);
  }

  private startable(): boolean {
    if (this.active >= this.opts.maxInFlight) return false;
    try {
      return this.opts.canStart();
    } catch {
      return true; // no information: rely on maxInFlight alone
    }
  }

  /** Occupies a slot and starts the request in it; frees the slot again if starting throws. */
  private take<T>(start: () => T): Slot<T> {
    const value = start();
    this.active++;
    let released = false;
    return {
      value,
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        this.pump();
      },
    };
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closedWith && this.startable()) (this.queue.shift() as Waiter).grant();
    // Below maxInFlight but the peer grants no stream yet: its credit returns without an event.
    if (
      this.queue.length > 0 &&
      !this.closedWith &&
      this.active < this.opts.maxInFlight &&
      this.recheck === undefined
    ) {
      this.recheck = setTimeout(() => {
        this.recheck = undefined;
        this.pump();
      }, this.opts.recheckMs);
    }
  }

  private remove(waiter: Waiter): void {
    const at = this.queue.indexOf(waiter);
    if (at >= 0) this.queue.splice(at, 1);
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new TransportError("request aborted");
}
