// At most one log line per interval for an event that can repeat thousands of times a second
// (every hook call while the plugin host process is down); the line says how many it stands for.

export class ThrottledLog {
  private readonly intervalMs: number;
  private last = 0;
  private count = 0;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** Counts one occurrence; calls `write` with the occurrences since the last line when the interval has passed. */
  note(write: (count: number) => void, now = Date.now()): void {
    this.count++;
    if (now - this.last < this.intervalMs) return;
    write(this.count);
    this.last = now;
    this.count = 0;
  }
}
