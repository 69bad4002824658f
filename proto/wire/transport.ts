// How the frames travel (wire-protocol.md): QUIC with ALPN "qpq", or the WebSocket bridge at
// path /qpq with subprotocol "qpq". Over WebSocket each server message starts with one kind
// byte, because a response's status byte and a push's event type are ambiguous.

export const ALPN = "qpq";
export const WS_PATH = "/qpq";
export const WS_SUBPROTOCOL = "qpq";
/** First byte of every server message on the WebSocket bridge. */
export const WsKind = { Response: 0, Push: 1 } as const;
