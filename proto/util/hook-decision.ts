// What a plugin hook call decides, as the plugin host reports it to the front: allow, or reject
// with the reason (sent to the client) and the plugin that rejected.

export type HookDecision = { allow: true } | { allow: false; reason: string; plugin: string };

export const ALLOW: Readonly<{ allow: true }> = Object.freeze({ allow: true as const });
