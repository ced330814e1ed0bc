//! What other servers may read of a room: single events, state at an event, auth chains,
//! backfill and missing events, each checked against the requesting server's right to see it.
