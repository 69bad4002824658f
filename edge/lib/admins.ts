// Server administrators (moderation): named in configuration by identity key, so checking one
// costs nothing. QPQ_ADMIN_IDENTITIES is a comma- or space-separated list of 64-hex-digit keys.
import { ConfigError } from "../../proto/util/config-error.ts";

export function parseAdmins(value: string | undefined): ReadonlySet<string> {
  const out = new Set<string>();
  for (const item of (value ?? "").split(/[\s,]+/)) {
    if (item === "") continue;
    const hex = item.toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex))
      throw new ConfigError("QPQ_ADMIN_IDENTITIES must list 32-byte identity keys as 64 hex digits");
    out.add(hex);
  }
  return out;
}
