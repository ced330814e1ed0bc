//! Device keys, one-time keys and fallback keys.
//!
//! Keys are kept as the JSON the client uploaded (a client verifies the signatures over exactly
//! that JSON), so no field a newer client adds is lost on the way through.

use std::collections::BTreeMap;

use myelin_storage::{Batch, Direction, Table};
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId, encryption::DeviceKeys};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{E2ee, device_lists::ListChange, signatures};
use crate::error::{Error, Result};

pub const DEVICE_KEYS_TABLE: &str = "userid_deviceid_devicekeys";
pub const ONE_TIME_KEYS_TABLE: &str = "userid_deviceid_keyid_onetimekey";
pub const FALLBACK_KEYS_TABLE: &str = "userid_deviceid_algorithm_fallbackkey";
/// (user, device) → the device keys as uploaded, with the signatures added since.
const DEVICE_KEYS: Table<(String, String), Value> = Table::new(DEVICE_KEYS_TABLE);
/// (user, device, `algorithm:name`) → a one-time key not yet claimed.
const ONE_TIME_KEYS: Table<(String, String, String), Value> = Table::new(ONE_TIME_KEYS_TABLE);
/// (user, device, algorithm) → the device's fallback key for that algorithm.
const FALLBACK_KEYS: Table<(String, String, String), FallbackKey> = Table::new(FALLBACK_KEYS_TABLE);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FallbackKey {
    key_id: String,
    key: Value,
    /// Handed out by a claim since it was uploaded: clients upload a new one when they see it
    /// missing from `device_unused_fallback_key_types`.
    used: bool,
}

/// The one-time key algorithm every client uses; sync always reports its count, zero
/// included, so clients know to upload keys.
pub const SIGNED_CURVE25519: &str = "signed_curve25519";

/// What a client uploads to `/keys/upload`.
#[derive(Default)]
pub struct KeyUpload {
    pub device_keys: Option<Value>,
    pub one_time_keys: BTreeMap<String, Value>,
    pub fallback_keys: BTreeMap<String, Value>,
}

/// The keys a claim hands out: user → device → `algorithm:name` → key.
pub type ClaimedKeys = BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, BTreeMap<String, Value>>>;

fn device_key(user: &UserId, device: &DeviceId) -> (String, String) {
    (user.to_string(), device.to_string())
}

/// The algorithm part of a key ID (`signed_curve25519:AAAAHg` → `signed_curve25519`).
fn algorithm_of(key_id: &str) -> Result<&str> {
    match key_id.split_once(':') {
        Some((algorithm, name)) if !algorithm.is_empty() && !name.is_empty() => Ok(algorithm),
        _ => Err(Error::invalid_param(format!("Key ID {key_id:?} is not of the form algorithm:name"))),
    }
}

/// The device's own ed25519 key, from its device keys.
fn device_ed25519(device_keys: &Value, device: &str) -> Option<String> {
    device_keys.get("keys")?.get(format!("ed25519:{device}"))?.as_str().map(str::to_owned)
}

impl E2ee {
    /// Stores what `/keys/upload` carries for the sender's device and answers its one-time
    /// key counts. New or changed device keys are a device-list change for everyone sharing a
    /// room with the user.
    #[tracing::instrument(skip(self, upload))]
    pub async fn upload_keys(&self, user: &UserId, device: &DeviceId, upload: KeyUpload) -> Result<BTreeMap<String, u64>> {
        let _guard = self.lock_user(user).await;
        let key = device_key(user, device);
        let stored = DEVICE_KEYS.get(&self.db, &key)?;
        let mut batch = Batch::new();
        let mut changed = false;
        let new_device_keys = match upload.device_keys {
            Some(device_keys) => Some(validate_device_keys(user, device, device_keys)?),
            None => None,
        };
        // The key one-time keys are signed with: the one just uploaded, or the stored one.
        let signing_key =
            new_device_keys.as_ref().or(stored.as_ref()).and_then(|keys| device_ed25519(keys, device.as_str()));
        if let Some(new) = new_device_keys {
            let merged = match &stored {
                Some(old) if signatures::unsigned_part(old) == signatures::unsigned_part(&new) => merge_signatures(old.clone(), &new),
                _ => {
                    changed = true;
                    new
                }
            };
            if stored.as_ref() != Some(&merged) {
                DEVICE_KEYS.put(&mut batch, &key, &merged)?;
            }
        }
        for (key_id, one_time_key) in &upload.one_time_keys {
            algorithm_of(key_id)?;
            check_key_signature(user, device, signing_key.as_deref(), key_id, one_time_key)?;
            let row = (key.0.clone(), key.1.clone(), key_id.clone());
            match ONE_TIME_KEYS.get(&self.db, &row)? {
                Some(existing) if existing == *one_time_key => {}
                Some(_) => return Err(Error::invalid_param(format!("One-time key {key_id} already exists with other contents"))),
                None => ONE_TIME_KEYS.put(&mut batch, &row, one_time_key)?,
            }
        }
        for (key_id, fallback_key) in &upload.fallback_keys {
            let algorithm = algorithm_of(key_id)?;
            check_key_signature(user, device, signing_key.as_deref(), key_id, fallback_key)?;
            let row = (key.0.clone(), key.1.clone(), algorithm.to_owned());
            let same = FALLBACK_KEYS.get(&self.db, &row)?.is_some_and(|old| old.key_id == *key_id && old.key == *fallback_key);
            // Uploading the same fallback key again keeps its `used` mark.
            if !same {
                FALLBACK_KEYS.put(&mut batch, &row, &FallbackKey { key_id: key_id.clone(), key: fallback_key.clone(), used: false })?;
            }
        }
        if changed {
            let staged = self.stage_device_list_change(&mut batch, user, ListChange::Devices(vec![device.to_owned()]))?;
            self.commit_device_list_change(batch, user, staged).await?;
        } else if !batch.is_empty() {
            self.db.write_async(batch).await?;
        }
        self.one_time_key_counts(user, device)
    }

    /// How many unclaimed one-time keys the device has, per algorithm
    /// (`signed_curve25519` always present).
    pub fn one_time_key_counts(&self, user: &UserId, device: &DeviceId) -> Result<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::from([(SIGNED_CURVE25519.to_owned(), 0)]);
        for entry in ONE_TIME_KEYS.iter_prefix(&self.db, &device_key(user, device), Direction::Forward)? {
            let ((_, _, key_id), _) = entry?;
            if let Some((algorithm, _)) = key_id.split_once(':') {
                *counts.entry(algorithm.to_owned()).or_default() += 1;
            }
        }
        Ok(counts)
    }

    /// The algorithms for which the device has a fallback key no claim has used yet.
    pub fn unused_fallback_key_types(&self, user: &UserId, device: &DeviceId) -> Result<Vec<String>> {
        let mut types = Vec::new();
        for entry in FALLBACK_KEYS.iter_prefix(&self.db, &device_key(user, device), Direction::Forward)? {
            let ((_, _, algorithm), fallback) = entry?;
            if !fallback.used {
                types.push(algorithm);
            }
        }
        Ok(types)
    }

    /// The device keys of every device of `user` that uploaded some.
    pub fn device_keys(&self, user: &UserId) -> Result<Vec<(OwnedDeviceId, Value)>> {
        let mut devices = Vec::new();
        for entry in DEVICE_KEYS.iter_prefix(&self.db, &user.to_string(), Direction::Forward)? {
            let ((_, device), keys) = entry?;
            devices.push((device.into(), keys));
        }
        Ok(devices)
    }

    pub fn device_keys_of(&self, user: &UserId, device: &DeviceId) -> Result<Option<Value>> {
        Ok(DEVICE_KEYS.get(&self.db, &device_key(user, device))?)
    }

    /// Stores a new version of a device's keys (with signatures added); no device-list change
    /// of its own, the caller stages it.
    pub(super) fn stage_device_keys(&self, batch: &mut Batch, user: &UserId, device: &DeviceId, keys: &Value) -> Result<()> {
        Ok(DEVICE_KEYS.put(batch, &device_key(user, device), keys)?)
    }

    /// Hands out one one-time key per requested device (removing it), or the device's fallback
    /// key when none is left (marking it used). Each user's keys are claimed under their lock
    /// and removed in one durable write before the answer, so no key is ever handed out twice.
    #[tracing::instrument(skip(self, requests))]
    pub async fn claim_local_keys(&self, requests: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>) -> Result<ClaimedKeys> {
        let mut claimed = ClaimedKeys::new();
        for (user, devices) in requests {
            if !self.is_local(user) {
                continue;
            }
            let _guard = self.lock_user(user).await;
            let mut batch = Batch::new();
            let mut user_keys = BTreeMap::new();
            for (device, algorithm) in devices {
                let key = device_key(user, device);
                let mut prefix = myelin_storage::prefix_of(&key);
                prefix.extend_from_slice(format!("{algorithm}:").as_bytes());
                let first = ONE_TIME_KEYS.iter_prefix_bytes(&self.db, &prefix, Direction::Forward)?.next().transpose()?;
                if let Some((row, one_time_key)) = first {
                    ONE_TIME_KEYS.delete(&mut batch, &row);
                    user_keys.insert(device.clone(), BTreeMap::from([(row.2, one_time_key)]));
                    continue;
                }
                let fallback_row = (key.0, key.1, algorithm.clone());
                if let Some(mut fallback) = FALLBACK_KEYS.get(&self.db, &fallback_row)? {
                    let key_id = fallback.key_id.clone();
                    user_keys.insert(device.clone(), BTreeMap::from([(key_id, fallback.key.clone())]));
                    if !fallback.used {
                        fallback.used = true;
                        FALLBACK_KEYS.put(&mut batch, &fallback_row, &fallback)?;
                    }
                }
            }
            if !batch.is_empty() {
                self.db.write_async(batch).await?;
            }
            if !user_keys.is_empty() {
                claimed.insert(user.clone(), user_keys);
            }
        }
        Ok(claimed)
    }

    /// Stages the removal of everything a deleted device had published.
    pub(super) fn stage_device_keys_removal(&self, batch: &mut Batch, user: &UserId, device: &DeviceId) -> Result<()> {
        let key = device_key(user, device);
        DEVICE_KEYS.delete(batch, &key);
        for entry in ONE_TIME_KEYS.iter_prefix(&self.db, &key, Direction::Forward)? {
            ONE_TIME_KEYS.delete(batch, &entry?.0);
        }
        for entry in FALLBACK_KEYS.iter_prefix(&self.db, &key, Direction::Forward)? {
            FALLBACK_KEYS.delete(batch, &entry?.0);
        }
        Ok(())
    }
}

/// Checks uploaded device keys: well formed, for the sender's own device, self-signed.
/// Returns them without `unsigned` (the server fills that in when it answers).
fn validate_device_keys(user: &UserId, device: &DeviceId, mut device_keys: Value) -> Result<Value> {
    let typed: DeviceKeys =
        serde_json::from_value(device_keys.clone()).map_err(|e| Error::bad_json(format!("device_keys: {e}")))?;
    if typed.user_id != user || typed.device_id != device {
        return Err(Error::invalid_param("device_keys are for another user or device than the access token's"));
    }
    let key_id = format!("ed25519:{device}");
    let public_key = device_ed25519(&device_keys, device.as_str())
        .ok_or_else(|| Error::invalid_param(format!("device_keys has no {key_id} key")))?;
    signatures::verify(&device_keys, user.as_str(), &key_id, &public_key)
        .map_err(|e| Error::invalid_param(format!("device_keys self-signature: {e:?}")))?;
    if let Some(object) = device_keys.as_object_mut() {
        object.remove("unsigned");
    }
    Ok(device_keys)
}

/// A signed one-time or fallback key must carry a valid signature by its device.
fn check_key_signature(user: &UserId, device: &DeviceId, signing_key: Option<&str>, key_id: &str, key: &Value) -> Result<()> {
    match key {
        Value::String(_) => Ok(()),
        Value::Object(_) => {
            let Some(public_key) = signing_key else {
                return Err(Error::invalid_param(format!("{key_id}: signed keys need the device's keys uploaded first")));
            };
            signatures::verify(key, user.as_str(), &format!("ed25519:{device}"), public_key)
                .map_err(|e| Error::invalid_param(format!("{key_id}: bad signature ({e:?})")))
        }
        _ => Err(Error::bad_json(format!("{key_id}: a key is a string or a signed object"))),
    }
}

/// `stored` with every signature of `new` added (a re-upload may carry new signatures of the
/// same keys; the ones already stored stay).
pub(super) fn merge_signatures(mut stored: Value, new: &Value) -> Value {
    let Some(new_signatures) = new.get("signatures").and_then(Value::as_object) else { return stored };
    if !stored.get("signatures").is_some_and(Value::is_object) {
        stored["signatures"] = json!({});
    }
    for (signer, by_key) in new_signatures {
        let Some(by_key) = by_key.as_object() else { continue };
        let slot = &mut stored["signatures"][signer];
        if !slot.is_object() {
            *slot = json!({});
        }
        for (key_id, signature) in by_key {
            slot[key_id] = signature.clone();
        }
    }
    stored
}
