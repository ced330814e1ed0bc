/// The one error type of the protocol core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stored or supplied signing key could not be parsed.
    #[error("invalid signing key: {0}")]
    InvalidKey(String),
    /// The object could not be turned into canonical JSON or signed.
    #[error("cannot sign or canonicalise JSON: {0}")]
    Json(String),
    /// A signature did not verify.
    #[error("signature verification failed: {0}")]
    Verification(String),
    /// The room version is unknown to ruma or not one this server implements.
    #[error("unsupported room version: {0}")]
    UnsupportedRoomVersion(String),
    /// A PDU (or a template for one) is malformed for its room version.
    #[error("invalid PDU: {0}")]
    InvalidPdu(String),
    /// The event failed the authorization rules. The text is ruma's reason, suitable for the
    /// message of an `M_FORBIDDEN` error (e.g. "sender does not have enough power to send event
    /// of type `m.room.name`").
    #[error("{0}")]
    Auth(String),
    /// A federation request's X-Matrix authorization is missing, malformed, for another
    /// destination, or its signature does not verify. The homeserver answers
    /// `401 M_UNAUTHORIZED` with this text.
    #[error("{0}")]
    Unauthorized(String),
    /// State resolution could not run (missing events, malformed state events).
    #[error("state resolution failed: {0}")]
    StateResolution(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
