//! `/keys/query` and `/keys/claim` across users: local users answered from the store, remote
//! users' servers asked over federation (`remote.rs`).

use std::{collections::BTreeMap, time::Duration};

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::Value;

use super::{
    E2ee,
    cross_signing::{MASTER, SELF_SIGNING, USER_SIGNING},
    keys::ClaimedKeys,
};
use crate::error::Result;

/// Looks up a device's display name (the sessions service knows them).
pub type DisplayNames<'a> = &'a (dyn Fn(&UserId, &DeviceId) -> Option<String> + Sync);

/// What `/keys/query` answers.
#[derive(Default)]
pub struct KeysAnswer {
    /// Server name → why its users' keys are missing.
    pub failures: BTreeMap<String, Value>,
    pub device_keys: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, Value>>,
    pub master_keys: BTreeMap<OwnedUserId, Value>,
    pub self_signing_keys: BTreeMap<OwnedUserId, Value>,
    pub user_signing_keys: BTreeMap<OwnedUserId, Value>,
}

/// What `/keys/claim` answers.
#[derive(Default)]
pub struct ClaimAnswer {
    pub failures: BTreeMap<String, Value>,
    pub one_time_keys: ClaimedKeys,
}

impl E2ee {
    /// The keys of the named users (all their devices when the list is empty), as `requester`
    /// may see them.
    pub async fn query_keys(
        &self,
        requester: &UserId,
        users: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
        timeout: Option<Duration>,
        display_names: DisplayNames<'_>,
    ) -> Result<KeysAnswer> {
        let mut answer = KeysAnswer::default();
        let (local, remote): (BTreeMap<_, _>, BTreeMap<_, _>) =
            users.iter().map(|(user, devices)| (user.clone(), devices.clone())).partition(|(user, _)| self.is_local(user));
        self.query_local(&mut answer, Some(requester), &local, display_names)?;
        let remote_users: Vec<OwnedUserId> = remote.keys().cloned().collect();
        self.query_remote(&mut answer, remote, timeout).await;
        // The requester's verifications of remote users are kept here, not on their servers.
        for user in remote_users {
            if let Some(master) = answer.master_keys.remove(&user) {
                answer.master_keys.insert(user.clone(), self.with_private_signatures(&user, requester, master)?);
            }
        }
        Ok(answer)
    }

    /// Local users' keys into `answer`. With no `requester` (a federation query) only what
    /// every server may see: no user-signing keys, no private signatures.
    pub fn query_local(
        &self,
        answer: &mut KeysAnswer,
        requester: Option<&UserId>,
        users: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
        display_names: DisplayNames<'_>,
    ) -> Result<()> {
        for (user, wanted) in users {
            let mut devices = BTreeMap::new();
            for (device, mut keys) in self.device_keys(user)? {
                if !wanted.is_empty() && !wanted.contains(&device) {
                    continue;
                }
                if let Some(name) = display_names(user, &device) {
                    keys["unsigned"] = serde_json::json!({ "device_display_name": name });
                }
                devices.insert(device, keys);
            }
            answer.device_keys.insert(user.clone(), devices);
            let master = match requester {
                Some(requester) => self.master_key_for(user, requester)?,
                None => self.cross_signing_key(user, MASTER)?,
            };
            if let Some(master) = master {
                answer.master_keys.insert(user.clone(), master);
            }
            if let Some(self_signing) = self.cross_signing_key(user, SELF_SIGNING)? {
                answer.self_signing_keys.insert(user.clone(), self_signing);
            }
            if requester == Some(user.as_ref())
                && let Some(user_signing) = self.cross_signing_key(user, USER_SIGNING)?
            {
                answer.user_signing_keys.insert(user.clone(), user_signing);
            }
        }
        Ok(())
    }

    /// One-time keys for the named devices: local ones claimed here, remote ones from their
    /// servers.
    pub async fn claim_keys(&self, requests: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>, timeout: Option<Duration>) -> Result<ClaimAnswer> {
        let mut answer = ClaimAnswer { one_time_keys: self.claim_local_keys(requests).await?, ..ClaimAnswer::default() };
        let remote: BTreeMap<_, _> = requests.iter().filter(|(user, _)| !self.is_local(user)).map(|(u, d)| (u.clone(), d.clone())).collect();
        self.claim_remote(&mut answer, remote, timeout).await;
        Ok(answer)
    }
}
