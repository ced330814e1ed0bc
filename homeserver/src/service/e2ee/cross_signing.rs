//! Cross-signing keys (master, self-signing, user-signing) and the signatures clients upload
//! to bind devices and users together.
//!
//! Who sees which signature (spec, "Cross-signing"): a user's own signatures (their master key
//! on their self-signing and user-signing keys, their self-signing key on their devices, their
//! devices on their master key) are public. A signature another user's user-signing key made
//! on a master key is private to that signer: it says whom *they* verified. So own
//! signatures are merged into the stored keys, and other users' are kept apart, per signer,
//! and added only to the signer's own queries. The user-signing key itself is shown only to
//! its owner.

use std::collections::BTreeMap;

use myelin_storage::{Batch, Direction, Table};
use ruma::{OwnedUserId, UserId, encryption::CrossSigningKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{E2ee, device_lists::ListChange, keys::merge_signatures, signatures};
use crate::error::{Error, Result};

pub const CROSS_SIGNING_KEYS_TABLE: &str = "userid_usage_crosssigningkey";
pub const FOREIGN_SIGNATURES_TABLE: &str = "userid_signer_mastersignatures";
/// (user, usage: `master` | `self_signing` | `user_signing`) → the key as uploaded, with the
/// user's own signatures added since.
const CROSS_SIGNING_KEYS: Table<(String, String), Value> = Table::new(CROSS_SIGNING_KEYS_TABLE);
/// (user, signer) → the signatures another user's user-signing key made on the user's master
/// key.
const FOREIGN_SIGNATURES: Table<(String, String), ForeignSignatures> = Table::new(FOREIGN_SIGNATURES_TABLE);

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ForeignSignatures {
    /// The master key they sign (a new master key voids them).
    master_key_id: String,
    /// Signer key ID → signature.
    signatures: BTreeMap<String, String>,
}

pub const MASTER: &str = "master";
pub const SELF_SIGNING: &str = "self_signing";
pub const USER_SIGNING: &str = "user_signing";

/// What `/keys/device_signing/upload` carries.
#[derive(Default)]
pub struct CrossSigningUpload {
    pub master: Option<Value>,
    pub self_signing: Option<Value>,
    pub user_signing: Option<Value>,
}

/// Why one uploaded signature was refused (`/keys/signatures/upload`'s `failures`).
pub struct SignatureFailure {
    pub errcode: &'static str,
    pub error: String,
}

/// Which kind of key an accepted signature was on.
enum SignedKey {
    Device(ruma::OwnedDeviceId),
    CrossSigning,
}

fn failure(errcode: &'static str, error: impl Into<String>) -> SignatureFailure {
    SignatureFailure { errcode, error: error.into() }
}

fn cs_key(user: &UserId, usage: &str) -> (String, String) {
    (user.to_string(), usage.to_owned())
}

impl E2ee {
    /// One of `user`'s cross-signing keys, as everyone may see it.
    pub fn cross_signing_key(&self, user: &UserId, usage: &str) -> Result<Option<Value>> {
        Ok(CROSS_SIGNING_KEYS.get(&self.db, &cs_key(user, usage))?)
    }

    /// `user`'s master key as `requester` sees it: with the signatures the requester's own
    /// user-signing key made on it.
    pub fn master_key_for(&self, user: &UserId, requester: &UserId) -> Result<Option<Value>> {
        let Some(master) = self.cross_signing_key(user, MASTER)? else { return Ok(None) };
        Ok(Some(self.with_private_signatures(user, requester, master)?))
    }

    /// `master`, `user`'s master key (local, or as their server answered), with the
    /// signatures `requester`'s user-signing key made on it.
    pub fn with_private_signatures(&self, user: &UserId, requester: &UserId, master: Value) -> Result<Value> {
        if user != requester
            && let Some(foreign) = FOREIGN_SIGNATURES.get(&self.db, &(user.to_string(), requester.to_string()))?
            && signatures::cross_signing_public_key(&master).is_some_and(|(key_id, _)| key_id == foreign.master_key_id)
        {
            return Ok(merge_signatures(master, &json!({ "signatures": { requester.as_str(): foreign.signatures } })));
        }
        Ok(master)
    }

    /// Whether an upload must be confirmed with the password: replacing existing keys must,
    /// the first upload need not (the spec allows it, and a fresh client sets up cross-signing
    /// right after login), nor may re-sending the very keys already stored.
    pub fn cross_signing_upload_needs_auth(&self, user: &UserId, upload: &CrossSigningUpload) -> Result<bool> {
        if self.cross_signing_key(user, MASTER)?.is_none() {
            return Ok(false);
        }
        for (usage, key) in upload.parts() {
            let stored = self.cross_signing_key(user, usage)?;
            if stored.as_ref().map(signatures::unsigned_part) != Some(signatures::unsigned_part(key)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stores new cross-signing keys after checking them: each for the uploader, of its
    /// usage, with one ed25519 key; self-signing and user-signing keys signed by the master
    /// key (the one uploaded alongside, or the stored one).
    #[tracing::instrument(skip(self, upload))]
    pub async fn upload_cross_signing_keys(&self, user: &UserId, upload: CrossSigningUpload) -> Result<()> {
        let _guard = self.lock_user(user).await;
        let master = match &upload.master {
            Some(master) => master.clone(),
            None => self.cross_signing_key(user, MASTER)?.ok_or_else(|| Error::invalid_param("No master key uploaded yet"))?,
        };
        for (usage, key) in upload.parts() {
            let typed: CrossSigningKey = serde_json::from_value(key.clone()).map_err(|e| Error::bad_json(format!("{usage}_key: {e}")))?;
            if typed.user_id != user {
                return Err(Error::invalid_param(format!("{usage}_key is for another user")));
            }
            if !typed.usage.iter().any(|u| u.as_str() == usage) {
                return Err(Error::invalid_param(format!("{usage}_key lacks the usage {usage}")));
            }
            if signatures::cross_signing_public_key(key).is_none() {
                return Err(Error::invalid_param(format!("{usage}_key must hold exactly one ed25519 key, named after itself")));
            }
            if usage != MASTER {
                let (master_id, master_public) = signatures::cross_signing_public_key(&master)
                    .ok_or_else(|| Error::invalid_param("The master key must hold exactly one ed25519 key"))?;
                signatures::verify(key, user.as_str(), &master_id, &master_public)
                    .map_err(|e| Error::invalid_param(format!("{usage}_key is not signed by the master key ({e:?})")))?;
            }
        }
        let mut batch = Batch::new();
        let mut changed = false;
        for (usage, key) in upload.parts() {
            let stored = self.cross_signing_key(user, usage)?;
            if stored.as_ref().map(signatures::unsigned_part) == Some(signatures::unsigned_part(key)) {
                continue;
            }
            changed = true;
            let mut key = key.clone();
            if let Some(object) = key.as_object_mut() {
                object.remove("unsigned");
            }
            CROSS_SIGNING_KEYS.put(&mut batch, &cs_key(user, usage), &key)?;
        }
        if upload.master.is_some() && changed {
            // Others' signatures were on the old master key.
            for entry in FOREIGN_SIGNATURES.iter_prefix(&self.db, &user.to_string(), Direction::Forward)? {
                FOREIGN_SIGNATURES.delete(&mut batch, &entry?.0);
            }
        }
        if !changed {
            return Ok(());
        }
        let staged = self.stage_device_list_change(&mut batch, user, ListChange::CrossSigning)?;
        self.commit_device_list_change(batch, user, staged).await
    }

    /// Adds uploaded signatures after verifying each: the sender's self-signing key on their
    /// devices, their devices (or master key) on their master key, their user-signing key on
    /// another user's master key. Each refused signature is reported, the rest are stored.
    #[tracing::instrument(skip(self, signed))]
    pub async fn upload_signatures(
        &self,
        sender: &UserId,
        signed: BTreeMap<OwnedUserId, BTreeMap<String, Value>>,
    ) -> Result<BTreeMap<OwnedUserId, BTreeMap<String, SignatureFailure>>> {
        let mut failures: BTreeMap<OwnedUserId, BTreeMap<String, SignatureFailure>> = BTreeMap::new();
        for (target, objects) in signed {
            let _guard = self.lock_user(&target).await;
            let mut batch = Batch::new();
            let mut changed = false;
            let mut signed_devices = Vec::new();
            for (key_id, object) in objects {
                let outcome = if target == sender {
                    self.add_own_signatures(&mut batch, sender, &key_id, &object)
                } else {
                    self.add_foreign_signatures(&mut batch, sender, &target, &key_id, &object)
                };
                match outcome {
                    Ok(SignedKey::Device(device)) => {
                        changed = true;
                        signed_devices.push(device);
                    }
                    Ok(SignedKey::CrossSigning) => changed = true,
                    Err(refused) => {
                        failures.entry(target.clone()).or_default().insert(key_id, refused);
                    }
                }
            }
            if !changed {
                continue;
            }
            // Own signatures change what everyone sees of the user; a signature on another
            // user's key only what the signer's other devices see.
            let announced = if target == sender { target.as_ref() } else { sender };
            let change = if signed_devices.is_empty() { ListChange::CrossSigning } else { ListChange::Devices(signed_devices) };
            let staged = self.stage_device_list_change(&mut batch, announced, change)?;
            self.commit_device_list_change(batch, announced, staged).await?;
        }
        Ok(failures)
    }

    /// A signature by the user on one of their own devices or on their master key.
    fn add_own_signatures(&self, batch: &mut Batch, user: &UserId, key_id: &str, object: &Value) -> Result<SignedKey, SignatureFailure> {
        let stored_failure = |e: Error| failure("M_UNKNOWN", e.to_string());
        let master = self.cross_signing_key(user, MASTER).map_err(stored_failure)?;
        if let Some(master) = master.filter(|m| signatures::cross_signing_public_key(m).is_some_and(|(_, public)| public == key_id)) {
            // Devices (or other keys of the user) signing the master key.
            let new_signatures = verified_signatures(user, object, &master, |signer_key_id| {
                let device = signer_key_id.strip_prefix("ed25519:")?;
                let device_id: &ruma::DeviceId = device.into();
                let keys = self.device_keys_of(user, device_id).ok()??;
                keys.get("keys")?.get(signer_key_id)?.as_str().map(str::to_owned)
            })?;
            let merged = merge_signatures(master, &new_signatures);
            CROSS_SIGNING_KEYS.put(batch, &cs_key(user, MASTER), &merged).map_err(|e| failure("M_UNKNOWN", e.to_string()))?;
            return Ok(SignedKey::CrossSigning);
        }
        let device_id: &ruma::DeviceId = key_id.into();
        let device_keys = self
            .device_keys_of(user, device_id)
            .map_err(stored_failure)?
            .ok_or_else(|| failure("M_NOT_FOUND", format!("No key {key_id} of {user}")))?;
        let self_signing = self.signing_key(user, SELF_SIGNING)?;
        let new_signatures = verified_signatures(user, object, &device_keys, |signer_key_id| {
            (signer_key_id == self_signing.0).then(|| self_signing.1.clone())
        })?;
        let merged = merge_signatures(device_keys, &new_signatures);
        self.stage_device_keys(batch, user, device_id, &merged).map_err(|e| failure("M_UNKNOWN", e.to_string()))?;
        Ok(SignedKey::Device(device_id.to_owned()))
    }

    /// The (key ID, public key) of `user`'s self-signing or user-signing key, which signs.
    fn signing_key(&self, user: &UserId, usage: &str) -> Result<(String, String), SignatureFailure> {
        self.cross_signing_key(user, usage)
            .map_err(|e| failure("M_UNKNOWN", e.to_string()))?
            .and_then(|key| signatures::cross_signing_public_key(&key))
            .ok_or_else(|| failure("M_INVALID_SIGNATURE", format!("{user} has no {usage} key to sign with")))
    }

    /// A signature by `signer`'s user-signing key on `target`'s master key.
    fn add_foreign_signatures(
        &self,
        batch: &mut Batch,
        signer: &UserId,
        target: &UserId,
        key_id: &str,
        object: &Value,
    ) -> Result<SignedKey, SignatureFailure> {
        let stored_failure = |e: Error| failure("M_UNKNOWN", e.to_string());
        let is_master_key = |key: &Value| signatures::cross_signing_public_key(key).is_some_and(|(_, public)| public == key_id);
        let master = if self.is_local(target) {
            self.cross_signing_key(target, MASTER).map_err(stored_failure)?.filter(is_master_key)
        } else {
            // A remote user's master key lives on their server; the signature is the signer's
            // private record of whom they verified, kept here and shown with the key their
            // server serves. Verifying against the object the client signed is what matters:
            // a key it does not match later is never shown with the signature.
            remote_master_key(target, object).filter(is_master_key)
        }
        .ok_or_else(|| failure("M_NOT_FOUND", format!("{key_id} is not the master key of {target}")))?;
        let user_signing = self.signing_key(signer, USER_SIGNING)?;
        let new_signatures = verified_signatures(signer, object, &master, |signer_key_id| {
            (signer_key_id == user_signing.0).then(|| user_signing.1.clone())
        })?;
        let master_key_id = format!("ed25519:{key_id}");
        let signatures: BTreeMap<String, String> = new_signatures["signatures"][signer.as_str()]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(id, signature)| Some((id.clone(), signature.as_str()?.to_owned())))
            .collect();
        FOREIGN_SIGNATURES
            .put(batch, &(target.to_string(), signer.to_string()), &ForeignSignatures { master_key_id, signatures })
            .map_err(|e| failure("M_UNKNOWN", e.to_string()))?;
        Ok(SignedKey::CrossSigning)
    }
}

/// The master key of remote `user` as a client signed it: the object without the signatures
/// being added, if it is a well-formed master key of that user.
fn remote_master_key(user: &UserId, object: &Value) -> Option<Value> {
    let key: CrossSigningKey = serde_json::from_value(object.clone()).ok()?;
    if key.user_id != user || !key.usage.iter().any(|usage| usage.as_str() == MASTER) {
        return None;
    }
    Some(signatures::unsigned_part(object))
}

/// The signatures by `signer` on `object` that verify with the keys `public_key_of`
/// names, as `{"signatures": {signer: {key_id: sig}}}`. The object must be the stored key
/// (signatures aside); signatures already stored are skipped, any other must verify.
fn verified_signatures(
    signer: &UserId,
    object: &Value,
    stored: &Value,
    public_key_of: impl Fn(&str) -> Option<String>,
) -> Result<Value, SignatureFailure> {
    if signatures::unsigned_part(object) != signatures::unsigned_part(stored) {
        return Err(failure("M_INVALID_SIGNATURE", "The signed object differs from the stored key"));
    }
    let offered = object["signatures"][signer.as_str()].as_object().cloned().unwrap_or_default();
    let mut valid = serde_json::Map::new();
    for (signer_key_id, signature) in offered {
        if stored["signatures"][signer.as_str()].get(&signer_key_id) == Some(&signature) {
            continue;
        }
        let Some(public_key) = public_key_of(&signer_key_id) else {
            return Err(failure("M_INVALID_SIGNATURE", format!("Unknown signing key {signer_key_id}")));
        };
        signatures::verify(object, signer.as_str(), &signer_key_id, &public_key)
            .map_err(|e| failure("M_INVALID_SIGNATURE", format!("{signer_key_id}: {e:?}")))?;
        valid.insert(signer_key_id, signature);
    }
    Ok(json!({ "signatures": { signer.as_str(): valid } }))
}

impl CrossSigningUpload {
    fn parts(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        [(MASTER, &self.master), (SELF_SIGNING, &self.self_signing), (USER_SIGNING, &self.user_signing)]
            .into_iter()
            .filter_map(|(usage, key)| Some((usage, key.as_ref()?)))
    }
}
