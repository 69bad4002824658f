// One timer structure for the whole driver: a binary min-heap of deadlines behind a single
// Node timer armed for the earliest. Connections (quiche's timeout) and streams (transfer
// deadlines) schedule here instead of owning a timer object each. Cancelled entries are
// skipped lazily when they reach the top.

export interface TimerEntry {
  readonly at: number;
  /** False once fired or cancelled. */
  active: boolean;
  readonly fire: () => void;
}

export class TimerHeap {
  private readonly heap: TimerEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;
  /** Cancelled entries still in the heap; compacted away when they are the majority. */
  private cancelled = 0;
  private readonly now: () => number;
  /** Called after a batch of timers fired (the driver flushes what they produced). */
  private readonly afterFire: () => void;

  constructor(afterFire: () => void = () => {}, now: () => number = () => performance.now()) {
    this.afterFire = afterFire;
    this.now = now;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Calls `fire` once, `ms` from now, unless cancelled first. */
  after(ms: number, fire: () => void): TimerEntry {
    const entry: TimerEntry = { at: this.now() + Math.max(0, ms), active: true, fire };
    this.push(entry);
    if (entry.at < this.armedAt) this.arm();
    return entry;
  }

  cancel(entry: TimerEntry | undefined): void {
    if (!entry?.active) return;
    entry.active = false;
    if (++this.cancelled > 64 && this.cancelled > this.heap.length / 2) this.compact();
  }

  /** Stops the Node timer; pending entries stay but never fire. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    this.heap.length = 0;
    this.cancelled = 0;
  }

  private compact(): void {
    const live = this.heap.filter((e) => e.active);
    this.heap.length = 0;
    this.cancelled = 0;
    for (const e of live) this.push(e);
  }

  private arm(): void {
    while (this.heap.length > 0 && !this.heap[0].active) {
      this.pop();
      this.cancelled = Math.max(0, this.cancelled - 1);
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    const top = this.heap[0];
    if (!top) return;
    this.armedAt = top.at;
    this.timer = setTimeout(() => this.run(), Math.max(0, Math.ceil(top.at - this.now())));
    this.timer.unref();
  }

  private run(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = this.now();
    let fired = 0;
    while (this.heap.length > 0 && this.heap[0].at <= now + 0.5) {
      const e = this.pop();
      if (!e.active) {
        this.cancelled = Math.max(0, this.cancelled - 1);
        continue;
      }
      e.active = false;
      fired++;
      try {
        e.fire();
      } catch {
        // A timer's owner handles its own errors; one failing must not stop the others.
      }
    }
    if (fired > 0) this.afterFire();
    this.arm();
  }

  private push(e: TimerEntry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].at <= e.at) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = e;
  }

  private pop(): TimerEntry {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r].at < h[l].at ? r : l;
        if (h[c].at >= last.at) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
