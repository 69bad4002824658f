// membership-audit: writes one audit line per group membership change through `log`, which
// the gateway's log carries as {"msg":"plugin log","plugin":"membership-audit","line":…}.
// It never refuses anything, and it is fail-open: a broken audit must not block membership.
// The hooks run when the change is requested, before the edge decides (docs/plugins.md): an
// attempt the edge then refuses (a plain member removing someone) is logged as well.
//
// Lines look like:
//   group-join channel=<hex> member=<hex> actor=<hex> at=2026-01-01T00:00:00.000Z
//   group-leave channel=<hex> member=<hex> actor=<hex> at=…  (actor = member when leaving)
//
// Note: plugin log lines are rate-limited (20/s, bursts of 50); beyond that lines are dropped
// and a "[N log lines dropped …]" line says so. For a complete record of a very busy
// deployment, audit at the edge instead.

export const manifest = {
  name: "membership-audit",
  version: "1.0.0",
  failPolicy: "open",
};

function line(kind, event) {
  return `${kind} channel=${event.channelId} member=${event.member} actor=${event.actor} at=${new Date(event.time).toISOString()}`;
}

export function on_group_join(event) {
  log(line("group-join", event));
}

export function on_group_leave(event) {
  log(line("group-leave", event));
}
