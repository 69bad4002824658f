// Time as a dependency: the gateway's own deadlines (authentication, FetchWait waits, drain)
// go through a Clock, so tests can drive them without waiting or racing the wall clock.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Runs `fn` once after `ms`; the timer never keeps the process alive. */
  after(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};
