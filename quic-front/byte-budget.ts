// A byte budget with first-come, first-served waiters. Each QUIC connection has one: a request
// stream reserves the payload length its header announces before the payload is read, so one
// connection's buffered requests stay bounded and bytes not yet read wait in QUIC flow control
// (which pushes back on the sender) instead of in memory. Pure: no I/O, no timers.

export class ByteBudget {
  readonly limit: number;
  private reserved = 0;
  private readonly waiters: { bytes: number; grant(): void }[] = [];

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`a byte budget needs a positive limit, got ${limit}`);
    this.limit = limit;
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.reserved;
  }

  /** Reservations waiting for bytes to be released. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Reserves `bytes` now if they fit and nobody waits ahead; false otherwise (nothing reserved). */
  tryAcquire(bytes: number): boolean {
    if (bytes > this.limit || this.waiters.length > 0 || this.reserved + bytes > this.limit) return false;
    this.reserved += bytes;
    return true;
  }

  /**
   * Reserves `bytes`, waiting behind earlier reservations until they fit. Resolves true once
   * reserved (the caller must `release` them), false when `signal` aborts first or when `bytes`
   * exceeds the whole limit (it could never fit).
   */
  acquire(bytes: number, signal?: AbortSignal): Promise<boolean> {
    if (bytes > this.limit || signal?.aborted) return Promise.resolve(false);
    if (this.waiters.length === 0 && this.reserved + bytes <= this.limit) {
      this.reserved += bytes;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const onAbort = () => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        resolve(false);
        // A large reservation at the head may have held back smaller ones that fit now.
        this.grantWaiting();
      };
      const waiter = {
        bytes,
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(true);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(bytes: number): void {
    if (bytes <= 0) return;
    this.reserved = Math.max(0, this.reserved - bytes);
    this.grantWaiting();
  }

  private grantWaiting(): void {
    for (let head = this.waiters[0]; head && this.reserved + head.bytes <= this.limit; head = this.waiters[0]) {
      this.waiters.shift();
      this.reserved += head.bytes;
      head.grant();
    }
  }
}
