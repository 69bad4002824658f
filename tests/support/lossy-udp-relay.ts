// A UDP relay on loopback that damages traffic both ways: it drops, duplicates and reorders
// (delays) a share of datagrams, from a seeded generator so a failure can be replayed. Each
// client address gets its own upstream socket, so the server sees one stable peer per client.
import dgram from "node:dgram";

export interface LossyRelayOptions {
  /** The server to relay to. */
  target: { host: string; port: number };
  /** Shares of datagrams (0..1) dropped, sent twice, and held back 5–30 ms behind later ones. */
  drop: number;
  duplicate: number;
  reorder: number;
  seed?: number;
}

export interface LossyRelay {
  port: number;
  /** Datagrams seen, dropped, duplicated and reordered so far (both directions). */
  readonly counts: { seen: number; dropped: number; duplicated: number; reordered: number };
  close(): Promise<void>;
}

/** mulberry32: small, seeded, good enough to pick which datagrams to damage. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startLossyRelay(opts: LossyRelayOptions): Promise<LossyRelay> {
  const rand = random(opts.seed ?? 1);
  const counts = { seen: 0, dropped: 0, duplicated: 0, reordered: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const front = dgram.createSocket("udp4");
  const upstreams = new Map<string, dgram.Socket>();

  const damage = (data: Buffer, send: (d: Buffer) => void) => {
    counts.seen++;
    const r = rand();
    if (r < opts.drop) {
      counts.dropped++;
      return;
    }
    if (r < opts.drop + opts.reorder) {
      counts.reordered++;
      const t = setTimeout(
        () => {
          timers.delete(t);
          send(data);
        },
        5 + Math.floor(rand() * 25),
      );
      timers.add(t);
      return;
    }
    send(data);
    if (r < opts.drop + opts.reorder + opts.duplicate) {
      counts.duplicated++;
      send(Buffer.from(data));
    }
  };

  front.on("message", (data, client) => {
    const key = `${client.address}:${client.port}`;
    let up = upstreams.get(key);
    if (!up) {
      const socket = dgram.createSocket("udp4");
      socket.on("message", (reply) => damage(reply, (d) => front.send(d, client.port, client.address)));
      socket.on("error", () => {});
      socket.bind(0, "127.0.0.1");
      upstreams.set(key, socket);
      up = socket;
    }
    const socket = up;
    damage(data, (d) => socket.send(d, opts.target.port, opts.target.host));
  });
  front.on("error", () => {});
  await new Promise<void>((resolve) => front.bind(0, "127.0.0.1", resolve));
  return {
    port: front.address().port,
    counts,
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of upstreams.values()) s.close();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}
