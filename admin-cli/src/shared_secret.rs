//! The MAC of Synapse-compatible shared-secret registration.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::error::{Error, Result};

/// `hex(HMAC-SHA1(shared_secret, nonce \0 username \0 password \0 admin|notadmin))`,
/// exactly what `register_new_matrix_user` sends.
pub fn registration_mac(
    shared_secret: &str,
    nonce: &str,
    username: &str,
    password: &str,
    admin: bool,
) -> Result<String> {
    let mut mac = Hmac::<Sha1>::new_from_slice(shared_secret.as_bytes())
        .map_err(|err| Error::Usage(format!("unusable registration shared secret: {err}")))?;
    let role: &[u8] = if admin { b"admin" } else { b"notadmin" };
    let fields: [&[u8]; 4] = [
        nonce.as_bytes(),
        username.as_bytes(),
        password.as_bytes(),
        role,
    ];
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            mac.update(b"\0");
        }
        mac.update(field);
    }
    Ok(hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently with Python:
    //   hmac.new(b"s3cret", b"abc123\x00alice\x00wonderland\x00admin", hashlib.sha1).hexdigest()
    #[test]
    fn matches_independently_computed_vectors() {
        assert_eq!(
            registration_mac("s3cret", "abc123", "alice", "wonderland", true).unwrap(),
            "038b37d5639e432cc2e7fb5c25d14e416c33602d"
        );
        assert_eq!(
            registration_mac("s3cret", "abc123", "alice", "wonderland", false).unwrap(),
            "ee801c5d148ae1bcbd99ddb68ecbfa1cbb98c541"
        );
    }
}
