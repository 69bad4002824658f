// The key of per-address limits (connections, auth attempts). An IPv4 client is one address; an
// IPv6 client is its /64, because one subscriber usually gets a whole /64 and could otherwise
// pick a fresh address for every connection. IPv4-mapped IPv6 counts as the IPv4 address.

/** Client host without the port ("[::1]:5" → "::1", "1.2.3.4:5" → "1.2.3.4"). */
export function hostOf(addr: string): string {
  return addr.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
}

/** The per-address limit key of a "host:port" remote address. */
export function addressKey(remoteAddr: string): string {
  const host = hostOf(remoteAddr).replace(/%.*$/, "").toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(host);
  if (mapped) return mapped[1] as string;
  if (!host.includes(":")) return host;
  const groups = ipv6Groups(host);
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : host;
}

/** The eight 16-bit groups of an IPv6 address (hex, no leading zeros), or undefined. */
function ipv6Groups(host: string): string[] | undefined {
  let text = host;
  // A trailing dotted quad ("64:ff9b::1.2.3.4") stands for the last two groups.
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (quad) {
    const b = quad.slice(1).map(Number);
    if (b.some((x) => x > 255)) return undefined;
    text = text.slice(0, quad.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => parseInt(g, 16).toString(16));
}
