// Federation domains: lower-case DNS names (localhost names included), at most 253 characters.
// Pure, shared by the edge and the local tooling.
const DOMAIN_RE = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function isDomain(value: string): boolean {
  return DOMAIN_RE.test(value);
}
