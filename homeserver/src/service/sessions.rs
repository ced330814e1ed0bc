//! Devices and their tokens.
//!
//! Each device owns at most one access token and one refresh token. Tokens are stored only as
//! SHA-256 digests, so a copy of the database does not hand out live sessions.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use myelin_config::SessionConfig;
use myelin_storage::{Batch, Database, Direction, Table};
use rand::{Rng, distributions::Alphanumeric};
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::e2ee::E2ee;
use crate::{
    error::{Error, Result},
    util::now_millis,
};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub display_name: Option<String>,
    pub created_ts: u64,
    #[serde(default)]
    pub access_token_hash: Option<String>,
    #[serde(default)]
    pub refresh_token_hash: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum TokenKind {
    Access,
    Refresh,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TokenRecord {
    user_id: String,
    device_id: String,
    kind: TokenKind,
    expires_at: Option<u64>,
}

const DEVICES: Table<(String, String), Device> = Table::new("userid_deviceid_device");
const TOKENS: Table<String, TokenRecord> = Table::new("tokenhash_session");
/// OpenID tokens (by hash) a user asked for to prove their identity to a third party, which
/// checks them with our `/federation/v1/openid/userinfo`: (user, expiry in ms).
const OPENID_TOKENS: Table<String, (String, u64)> = Table::new("openidtokenhash_user");

/// How long an OpenID token proves its user's identity.
pub const OPENID_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

/// Who made an authenticated request.
#[derive(Clone, Debug)]
pub struct AuthedUser {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
}

/// What a login, registration or refresh hands to the client.
#[derive(Debug)]
pub struct NewSession {
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

/// When and where a device was last seen. Kept in memory: writing on every request would cost
/// a disk write per call for a field that only feeds the device list.
#[derive(Clone, Copy, Debug)]
pub struct LastSeen {
    pub ts: u64,
    pub ip: IpAddr,
}

#[derive(Clone)]
pub struct Sessions {
    db: Database,
    config: SessionConfig,
    last_seen: Arc<Mutex<HashMap<(OwnedUserId, OwnedDeviceId), LastSeen>>>,
    /// Serialises device read-modify-write, so a refresh and a logout cannot interleave.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// A deleted device's keys and to-device queue go with it, in the same write.
    e2ee: E2ee,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_string(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

fn device_key(user_id: &UserId, device_id: &DeviceId) -> (String, String) {
    (user_id.to_string(), device_id.to_string())
}

impl Sessions {
    /// Issues an OpenID token for `user`, valid for [`OPENID_TOKEN_LIFETIME`].
    pub async fn issue_openid_token(&self, user: &UserId) -> Result<String> {
        let token = random_string(32);
        let expires = crate::util::now_millis() + OPENID_TOKEN_LIFETIME.as_millis() as u64;
        let mut batch = Batch::new();
        OPENID_TOKENS.put(&mut batch, &digest(&token), &(user.to_string(), expires))?;
        self.db.write_async(batch).await?;
        Ok(token)
    }

    /// The user an unexpired OpenID token was issued to.
    pub fn openid_user(&self, token: &str) -> Result<Option<OwnedUserId>> {
        let Some((user, expires)) = OPENID_TOKENS.get(&self.db, &digest(token))? else { return Ok(None) };
        if expires <= crate::util::now_millis() {
            return Ok(None);
        }
        Ok(UserId::parse(user).ok())
    }

    pub fn new(db: Database, config: SessionConfig, e2ee: E2ee) -> Self {
        Self {
            db,
            config,
            last_seen: Arc::default(),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            e2ee,
        }
    }

    /// Resolves an access token. An expired token answers `M_UNKNOWN_TOKEN` with
    /// `soft_logout: true`, so the client refreshes or re-logs-in on the same device.
    pub fn authenticate(&self, token: &str, ip: IpAddr) -> Result<AuthedUser> {
        let record = TOKENS.get(&self.db, &digest(token))?.ok_or_else(|| Error::unknown_token(false))?;
        if record.kind != TokenKind::Access {
            return Err(Error::unknown_token(false));
        }
        if record.expires_at.is_some_and(|at| at <= now_millis()) {
            return Err(Error::unknown_token(true));
        }
        let user_id = UserId::parse(&record.user_id).map_err(|e| Error::internal(e.to_string()))?;
        let device_id: OwnedDeviceId = record.device_id.into();
        if let Ok(mut seen) = self.last_seen.lock() {
            seen.insert((user_id.clone(), device_id.clone()), LastSeen { ts: now_millis(), ip });
        }
        Ok(AuthedUser { user_id, device_id })
    }

    /// Creates or takes over a device and issues fresh tokens for it. Logging in again with an
    /// existing device ID invalidates that device's previous tokens, as the spec requires.
    #[tracing::instrument(skip(self))]
    pub async fn create_session(
        &self,
        user_id: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        with_refresh_token: bool,
    ) -> Result<NewSession> {
        let _guard = self.write_lock.lock().await;
        let device_id = device_id.unwrap_or_else(|| random_string(10).to_uppercase().into());
        let key = device_key(user_id, &device_id);
        let mut batch = Batch::new();
        let mut device = match DEVICES.get(&self.db, &key)? {
            Some(existing) => {
                self.revoke_tokens(&mut batch, &existing);
                Device { display_name: display_name.or(existing.display_name), ..existing }
            }
            None => Device { display_name, created_ts: now_millis(), ..Device::default() },
        };
        let session = self.issue_tokens(&mut batch, user_id, &device_id, &mut device, with_refresh_token)?;
        DEVICES.put(&mut batch, &key, &device)?;
        self.db.write_async(batch).await?;
        Ok(session)
    }

    /// Creates a device without tokens (a dehydrated device: no client holds it until one
    /// rehydrates it). An existing device of that ID keeps its tokens and gets the new name.
    pub async fn create_device_without_token(&self, user_id: &UserId, device_id: &DeviceId, display_name: Option<String>) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let key = device_key(user_id, device_id);
        let device = match DEVICES.get(&self.db, &key)? {
            Some(existing) => Device { display_name: display_name.or(existing.display_name), ..existing },
            None => Device { display_name, created_ts: now_millis(), ..Device::default() },
        };
        let mut batch = Batch::new();
        DEVICES.put(&mut batch, &key, &device)?;
        Ok(self.db.write_async(batch).await?)
    }

    fn issue_tokens(
        &self,
        batch: &mut Batch,
        user_id: &UserId,
        device_id: &DeviceId,
        device: &mut Device,
        with_refresh_token: bool,
    ) -> Result<NewSession> {
        let now = now_millis();
        let lifetime = if with_refresh_token {
            Some(self.config.refreshable_access_token_lifetime_ms)
        } else {
            self.config.nonrefreshable_access_token_lifetime_ms
        };
        let access_token = format!("myl_{}", random_string(40));
        let access_hash = digest(&access_token);
        TOKENS.put(
            batch,
            &access_hash,
            &TokenRecord {
                user_id: user_id.to_string(),
                device_id: device_id.to_string(),
                kind: TokenKind::Access,
                expires_at: lifetime.map(|ms| now + ms),
            },
        )?;
        device.access_token_hash = Some(access_hash);

        let refresh_token = if with_refresh_token {
            let token = format!("mylr_{}", random_string(40));
            let hash = digest(&token);
            TOKENS.put(
                batch,
                &hash,
                &TokenRecord {
                    user_id: user_id.to_string(),
                    device_id: device_id.to_string(),
                    kind: TokenKind::Refresh,
                    expires_at: self.config.refresh_token_lifetime_ms.map(|ms| now + ms),
                },
            )?;
            device.refresh_token_hash = Some(hash);
            Some(token)
        } else {
            device.refresh_token_hash = None;
            None
        };
        Ok(NewSession {
            device_id: device_id.to_owned(),
            access_token,
            refresh_token,
            expires_in: lifetime.map(Duration::from_millis),
        })
    }

    fn revoke_tokens(&self, batch: &mut Batch, device: &Device) {
        for hash in [&device.access_token_hash, &device.refresh_token_hash].into_iter().flatten() {
            TOKENS.delete(batch, hash);
        }
    }

    /// Exchanges a refresh token for a new access and refresh token; the old pair dies.
    pub async fn refresh(&self, refresh_token: &str) -> Result<NewSession> {
        let _guard = self.write_lock.lock().await;
        let record = TOKENS
            .get(&self.db, &digest(refresh_token))?
            .filter(|record| record.kind == TokenKind::Refresh)
            .ok_or_else(|| Error::unknown_token(false))?;
        if record.expires_at.is_some_and(|at| at <= now_millis()) {
            return Err(Error::unknown_token(false));
        }
        let user_id = UserId::parse(&record.user_id).map_err(|e| Error::internal(e.to_string()))?;
        let device_id: OwnedDeviceId = record.device_id.clone().into();
        let key = device_key(&user_id, &device_id);
        let mut device = DEVICES.get(&self.db, &key)?.ok_or_else(|| Error::unknown_token(false))?;
        let mut batch = Batch::new();
        self.revoke_tokens(&mut batch, &device);
        let session = self.issue_tokens(&mut batch, &user_id, &device_id, &mut device, true)?;
        DEVICES.put(&mut batch, &key, &device)?;
        self.db.write_async(batch).await?;
        Ok(session)
    }

    pub fn devices(&self, user_id: &UserId) -> Result<Vec<(OwnedDeviceId, Device)>> {
        let mut devices = Vec::new();
        for entry in DEVICES.iter_prefix(&self.db, &user_id.to_string(), Direction::Forward)? {
            let ((_, device_id), device) = entry?;
            devices.push((device_id.into(), device));
        }
        Ok(devices)
    }

    pub fn device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<Device>> {
        Ok(DEVICES.get(&self.db, &device_key(user_id, device_id))?)
    }

    pub fn last_seen(&self, user_id: &UserId, device_id: &DeviceId) -> Option<LastSeen> {
        let seen = self.last_seen.lock().ok()?;
        seen.get(&(user_id.to_owned(), device_id.to_owned())).copied()
    }

    pub async fn rename_device(&self, user_id: &UserId, device_id: &DeviceId, name: Option<String>) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let key = device_key(user_id, device_id);
        let mut device = DEVICES.get(&self.db, &key)?.ok_or_else(|| Error::not_found("Device not found"))?;
        device.display_name = name;
        let mut batch = Batch::new();
        DEVICES.put(&mut batch, &key, &device)?;
        self.db.write_async(batch).await?;
        Ok(())
    }

    /// Deletes devices, their tokens, their keys and their to-device queues; the user's device
    /// list changes. Unknown device IDs are skipped, as the spec asks for `/delete_devices`.
    pub async fn delete_devices(&self, user_id: &UserId, device_ids: &[OwnedDeviceId]) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let mut batch = Batch::new();
        let mut deleted = Vec::new();
        for device_id in device_ids {
            let key = device_key(user_id, device_id);
            if let Some(device) = DEVICES.get(&self.db, &key)? {
                self.revoke_tokens(&mut batch, &device);
                DEVICES.delete(&mut batch, &key);
                deleted.push(device_id.clone());
            }
        }
        if deleted.is_empty() {
            return Ok(());
        }
        let removal = self.e2ee.stage_device_removal(&mut batch, user_id, &deleted)?;
        self.e2ee.commit_device_removal(batch, user_id, removal).await?;
        if let Ok(mut seen) = self.last_seen.lock() {
            for device_id in device_ids {
                seen.remove(&(user_id.to_owned(), device_id.clone()));
            }
        }
        Ok(())
    }

    /// Deletes every device of the user except `keep` (if given).
    pub async fn delete_all_devices(&self, user_id: &UserId, keep: Option<&DeviceId>) -> Result<()> {
        let doomed: Vec<OwnedDeviceId> = self
            .devices(user_id)?
            .into_iter()
            .map(|(device_id, _)| device_id)
            .filter(|device_id| Some(device_id.as_ref()) != keep)
            .collect();
        self.delete_devices(user_id, &doomed).await
    }
}
