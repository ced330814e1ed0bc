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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
