// address-filter: accepts or refuses connections by client address (IPv4/IPv6, CIDR prefixes).
//
// A connection is refused when its address matches a DENY entry, or when ALLOW is not empty and
// the address matches no ALLOW entry. Refused connections are closed right after the handshake
// with the reason below. IPv4-mapped IPv6 addresses (::ffff:192.0.2.1) count as IPv4.
//
// Configure: edit DENY and ALLOW (plain addresses or CIDR prefixes). A malformed entry makes the
// plugin fail to load, and the error is logged — with a watched directory, the previous version
// keeps running until the file is fixed.

const DENY = ["192.0.2.0/24", "198.51.100.7", "2001:db8:bad::/48"];
const ALLOW = []; // e.g. ["10.0.0.0/8", "127.0.0.1", "::1"]; empty = everyone not denied

export const manifest = {
  name: "address-filter",
  version: "1.0.0",
  hooks: ["on_connect"],
};

function parseIPv4(s) {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const bytes = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    bytes.push(Number(p));
  }
  return bytes;
}

function parseIPv6(s) {
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  let tail = [];
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    // embedded IPv4 in the last 32 bits
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (!v4) return null;
    tail = v4;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (h) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const bytes = [];
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    const n = parseInt(g, 16);
    bytes.push(n >> 8, n & 255);
  }
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** Address bytes: 4 for IPv4 (and IPv4-mapped IPv6), 16 for IPv6; null if not an address. */
function parseAddress(s) {
  const v4 = parseIPv4(s);
  if (v4) return v4;
  const v6 = s.includes(":") ? parseIPv6(s) : null;
  if (v6 && v6.slice(0, 10).every((b) => b === 0) && v6[10] === 255 && v6[11] === 255) return v6.slice(12);
  return v6;
}

function parseRule(rule) {
  const [addr, bitsText, extra] = rule.split("/");
  const bytes = parseAddress(addr);
  const max = bytes ? bytes.length * 8 : 0;
  const bits = bitsText === undefined ? max : /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
  if (!bytes || extra !== undefined || !(bits >= 0 && bits <= max))
    throw new Error(`address-filter: bad entry "${rule}"`);
  return { bytes, bits, rule };
}

function matches(addr, { bytes, bits }) {
  if (addr.length !== bytes.length) return false;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 255 : (0xff << (8 - bits)) & 255;
    if ((addr[i] & mask) !== (bytes[i] & mask)) return false;
  }
  return true;
}

/** "1.2.3.4:5678" → "1.2.3.4", "[2001:db8::1]:5678" → "2001:db8::1", bare addresses unchanged. */
function hostOf(clientAddress) {
  if (clientAddress.startsWith("[")) return clientAddress.slice(1, clientAddress.indexOf("]"));
  const colon = clientAddress.lastIndexOf(":");
  return colon > 0 && clientAddress.indexOf(":") === colon ? clientAddress.slice(0, colon) : clientAddress;
}

const deny = DENY.map(parseRule);
const allow = ALLOW.map(parseRule);

export function on_connect(event) {
  const addr = parseAddress(hostOf(event.clientAddress));
  if (!addr) return { reject: "connection refused: unrecognised client address" };
  if (deny.some((r) => matches(addr, r))) return { reject: "connection refused by address policy" };
  if (allow.length > 0 && !allow.some((r) => matches(addr, r)))
    return { reject: "connection refused by address policy" };
}
