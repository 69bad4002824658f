// A Clock that moves only when the test says so: deadlines fire in order during advance().
import type { Clock, Timer } from "../../../quic-front/clock.ts";

interface Pending {
  at: number;
  order: number;
  fn: () => void;
  live: boolean;
}

export class ManualClock implements Clock {
  private t: number;
  private order = 0;
  private timers: Pending[] = [];

  constructor(start = Date.now()) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), order: this.order++, fn, live: true };
    this.timers.push(p);
    return { cancel: () => void (p.live = false) };
  }

  /** Timers armed and not yet fired or cancelled. */
  get armed(): number {
    return this.timers.filter((p) => p.live).length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, earliest first. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((p) => p.live);
      const due = this.timers.filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      due.live = false;
      due.fn();
    }
    this.t = end;
  }
}
