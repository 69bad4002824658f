// The shared wire layer: frames, method ids, status codes, errors and protobuf messages.
// Imported by quic-front, edge and sdk alike.
export * from "./wire/frames.ts";
export * from "./wire/status.ts";
export * from "./wire/methods.ts";
export * from "./wire/errors.ts";
export * from "./wire/messages.ts";
export * from "./wire/relay.ts";
export * from "./wire/channels.ts";
export * from "./wire/envelopes.ts";
export * from "./wire/limits.ts";
export * from "./wire/transport.ts";
