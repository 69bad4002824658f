// Room held in one queue for BatchEnqueue messages between reserve and commit. Pure: time is a
// parameter, so expiry is tested without clocks. A reservation nobody commits or releases (the
// batch's worker died) frees its room once it expires; it never holds a seq, so committing late
// cannot put a message behind a cursor that has already moved past it.

export interface Hold {
  sender: string;
  size: number;
  expiresAt: number;
}

export class Reservations {
  private readonly holds = new Map<string, Hold>();
  private heldBytes = 0;
  private nextExpiry = Infinity;

  hold(id: string, sender: string, size: number, expiresAt: number): void {
    this.holds.set(id, { sender, size, expiresAt });
    this.heldBytes += size;
    this.nextExpiry = Math.min(this.nextExpiry, expiresAt);
  }

  /** Removes and returns a live reservation; undefined when unknown or expired. */
  take(id: string, now: number): Hold | undefined {
    this.sweep(now);
    const h = this.holds.get(id);
    if (!h) return undefined;
    this.holds.delete(id);
    this.heldBytes -= h.size;
    return h;
  }

  /** Drops expired reservations; cheap until the earliest one is due. */
  sweep(now: number): void {
    if (now < this.nextExpiry) return;
    let next = Infinity;
    for (const [id, h] of this.holds) {
      if (h.expiresAt <= now) {
        this.holds.delete(id);
        this.heldBytes -= h.size;
      } else {
        next = Math.min(next, h.expiresAt);
      }
    }
    this.nextExpiry = next;
  }

  get count(): number {
    return this.holds.size;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  /** Messages and bytes one sender holds in reservations. */
  heldBy(sender: string): { count: number; bytes: number } {
    let count = 0;
    let bytes = 0;
    for (const h of this.holds.values()) {
      if (h.sender === sender) {
        count++;
        bytes += h.size;
      }
    }
    return { count, bytes };
  }
}
