//! Synapse-compatible shared-secret registration (`/_synapse/admin/v1/register`): single-use
//! nonces and the HMAC-SHA1 check that `register_new_matrix_user` computes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use rand::{Rng, distributions::Alphanumeric};
use sha1::Sha1;

/// Synapse gives a nonce 60 seconds.
const NONCE_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub struct SharedSecretRegistration {
    nonces: Arc<Mutex<HashMap<String, Instant>>>,
}

impl SharedSecretRegistration {
    pub fn new_nonce(&self) -> String {
        let nonce: String = rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect();
        if let Ok(mut nonces) = self.nonces.lock() {
            let now = Instant::now();
            nonces.retain(|_, issued| now.duration_since(*issued) < NONCE_LIFETIME);
            nonces.insert(nonce.clone(), now);
        }
        nonce
    }

    /// Consumes the nonce: true only once, and only within its lifetime.
    pub fn take_nonce(&self, nonce: &str) -> bool {
        let Ok(mut nonces) = self.nonces.lock() else { return false };
        nonces.remove(nonce).is_some_and(|issued| issued.elapsed() < NONCE_LIFETIME)
    }

    /// Checks `mac` (hex) against HMAC-SHA1(secret, nonce \0 user \0 password \0 admin|notadmin)
    /// in constant time.
    pub fn mac_is_valid(secret: &str, nonce: &str, username: &str, password: &str, admin: bool, mac: &str) -> bool {
        let Ok(given) = hex::decode(mac) else { return false };
        let Ok(mut hmac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else { return false };
        hmac.update(nonce.as_bytes());
        hmac.update(b"\0");
        hmac.update(username.as_bytes());
        hmac.update(b"\0");
        hmac.update(password.as_bytes());
        hmac.update(b"\0");
        hmac.update(if admin { b"admin" } else { b"notadmin" });
        hmac.verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(secret: &str, message: &[u8]) -> String {
        let mut hmac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        hmac.update(message);
        hex::encode(hmac.finalize().into_bytes())
    }

    #[test]
    fn accepts_the_mac_register_new_matrix_user_computes() {
        let good = mac("s3cret", b"abc\0alice\0pw\0admin");
        assert!(SharedSecretRegistration::mac_is_valid("s3cret", "abc", "alice", "pw", true, &good));
        assert!(!SharedSecretRegistration::mac_is_valid("s3cret", "abc", "alice", "pw", false, &good));
        assert!(!SharedSecretRegistration::mac_is_valid("other", "abc", "alice", "pw", true, &good));
        assert!(!SharedSecretRegistration::mac_is_valid("s3cret", "abc", "alice", "pw", true, "zz"));
    }

    #[test]
    fn a_nonce_works_once() {
        let registration = SharedSecretRegistration::default();
        let nonce = registration.new_nonce();
        assert!(registration.take_nonce(&nonce));
        assert!(!registration.take_nonce(&nonce));
        assert!(!registration.take_nonce("never-issued"));
    }
}
