//! Whose device list changed, on the global stream.
//!
//! A user's devices change when one uploads new keys, is deleted, or when the user uploads
//! cross-signing keys or signatures. Each change takes a stream position; the table keeps only
//! each user's latest, so "who changed since a token" is one range scan of at most one row
//! per user. Clients also need to hear of users they start or stop sharing a room with; that
//! comes from the membership index, whose entries carry their stream position (see
//! [`E2ee::device_list_changes`]). Users sharing any room count, as in Synapse: a superset of
//! the spec's "encrypted rooms" that costs clients nothing, since they track only the users
//! of their encrypted rooms.

use std::collections::BTreeSet;

use myelin_storage::{Batch, Direction, Table};
use ruma::{OwnedDeviceId, UserId};
use serde_json::{Value, json};

use super::E2ee;
use crate::{error::Result, service::rooms::timeline::StreamTicket};

pub const STREAM_TABLE: &str = "stream_devicelistuser";
pub const LATEST_TABLE: &str = "userid_devicelistposition";
/// stream position → the user whose device list changed then.
const CHANGES: Table<u64, String> = Table::new(STREAM_TABLE);
/// user → the position of their latest change (its row in [`CHANGES`]).
const LATEST: Table<String, u64> = Table::new(LATEST_TABLE);

impl E2ee {
    /// Stages a change of `user`'s device list at a new stream position. The result holds the
    /// position until the batch is written; hand both to [`E2ee::commit_device_list_change`].
    pub(super) fn stage_device_list_change(&self, batch: &mut Batch, user: &UserId, change: ListChange) -> Result<StagedListChange> {
        let ticket = self.rooms.stream.allocate()?;
        let previous = LATEST.get(&self.db, &user.to_string())?;
        if let Some(previous) = previous {
            CHANGES.delete(batch, &previous);
        }
        LATEST.put(batch, &user.to_string(), &ticket.position)?;
        CHANGES.put(batch, &ticket.position, &user.to_string())?;
        Ok(StagedListChange { ticket, previous, change })
    }

    /// Writes a batch carrying a device-list change and wakes everyone who must hear of it,
    /// here and on the servers of those who share a room with a local user.
    pub(super) async fn commit_device_list_change(&self, batch: Batch, user: &UserId, staged: StagedListChange) -> Result<()> {
        self.db.write_async(batch).await?;
        let StagedListChange { ticket, previous, change } = staged;
        let position = ticket.position;
        drop(ticket);
        let audience = self.users_sharing_rooms(user.as_str())?;
        self.rooms.notifier.notify(audience.iter().map(String::as_str), position);
        if self.is_local(user) {
            let edus = self.device_list_edus(user, position, previous, change)?;
            self.send_to_servers_of(&audience, &edus).await?;
        }
        Ok(())
    }

    /// The stream position of `user`'s latest device-list change (0 if none): the `stream_id`
    /// other servers order our updates by.
    pub fn device_list_position(&self, user: &UserId) -> Result<u64> {
        Ok(LATEST.get(&self.db, &user.to_string())?.unwrap_or_default())
    }

    /// Another server says one of its users' devices or cross-signing keys changed: our users
    /// who share a room with them hear of it and query the keys again (from that server, as
    /// remote keys are not cached here).
    pub async fn remote_device_list_changed(&self, user: &UserId) -> Result<()> {
        let mut batch = Batch::new();
        let staged = self.stage_device_list_change(&mut batch, user, ListChange::Remote)?;
        self.commit_device_list_change(batch, user, staged).await
    }

    /// `user` and everyone joined to a room `user` is joined to.
    pub fn users_sharing_rooms(&self, user: &str) -> Result<BTreeSet<String>> {
        let mut users = BTreeSet::from([user.to_owned()]);
        for (room_id, entry) in self.rooms.membership.rooms_of(user)? {
            if entry.membership == "join" {
                users.extend(joined(&self.rooms.membership.members(&room_id)?));
            }
        }
        Ok(users)
    }

    /// Users whose device lists changed in `(since, now]` and who share a room with `user`
    /// (`user` included), plus users who started sharing a room with `user` then (`changed`);
    /// and users who shared a room with `user` at `since` and share none now (`left`).
    pub fn device_list_changes(&self, user: &UserId, since: u64, now: u64) -> Result<(Vec<String>, Vec<String>)> {
        // Who shares a room with the user is only needed when some device list changed or
        // someone may have left: most incremental syncs have neither, and the set copies the
        // ID of every member of every room (a thousand per sync in a thousand-member room).
        let mut sharing: Option<BTreeSet<String>> = None;
        let mut changed = BTreeSet::new();
        let mut left_candidates = BTreeSet::new();
        for entry in CHANGES.iter_range(&self.db, Some(&(since + 1)), Some(&(now + 1)), Direction::Forward)? {
            let (_, changed_user) = entry?;
            if sharing.is_none() {
                sharing = Some(self.users_sharing_rooms(user.as_str())?);
            }
            if sharing.as_ref().is_some_and(|sharing| sharing.contains(&changed_user)) {
                changed.insert(changed_user);
            }
        }
        for (room_id, own) in self.rooms.membership.rooms_of(user.as_str())? {
            let own_changed = own.stream > since && own.stream <= now;
            let members = self.rooms.membership.members(&room_id)?;
            match own.membership.as_str() {
                // Joined since the token: everyone in the room is new to the user.
                "join" if own_changed => changed.extend(joined(&members)),
                "join" => {
                    for (member, entry) in members.iter().filter(|(_, entry)| entry.stream > since && entry.stream <= now) {
                        match entry.membership.as_str() {
                            "join" => changed.insert(member.clone()),
                            _ => left_candidates.insert(member.clone()),
                        };
                    }
                }
                // Left since the token: everyone there may be gone from the user's view.
                _ if own_changed => left_candidates.extend(joined(&members)),
                _ => {}
            }
        }
        changed.remove(user.as_str());
        // The user's own device changes still matter to their other devices.
        if self.own_change_since(user, since, now)? {
            changed.insert(user.to_string());
        }
        let sharing = match sharing {
            Some(sharing) => sharing,
            None if left_candidates.is_empty() => BTreeSet::new(),
            None => self.users_sharing_rooms(user.as_str())?,
        };
        let left = left_candidates.into_iter().filter(|member| !sharing.contains(member)).collect();
        Ok((changed.into_iter().collect(), left))
    }

    fn own_change_since(&self, user: &UserId, since: u64, now: u64) -> Result<bool> {
        Ok(LATEST.get(&self.db, &user.to_string())?.is_some_and(|position| position > since && position <= now))
    }
}

/// What changed in a device list, which decides what other servers are told.
pub enum ListChange {
    /// These devices uploaded (or got signatures on) their keys.
    Devices(Vec<OwnedDeviceId>),
    /// These devices were deleted.
    Deleted(Vec<OwnedDeviceId>),
    /// The user's cross-signing keys changed.
    CrossSigning,
    /// Another server's user: nothing to tell other servers.
    Remote,
}

/// A device-list change staged in a batch, holding its stream position until the write.
pub struct StagedListChange {
    ticket: StreamTicket,
    previous: Option<u64>,
    change: ListChange,
}

impl E2ee {
    /// The EDUs telling other servers of a change of our `user`'s devices. A single device's
    /// update names the previous position as `prev_id`, so a server that saw it applies the
    /// update as is; several at once carry none, which makes servers refetch the whole list
    /// with `/user/devices`. Cross-signing changes go out as `m.signing_key_update`.
    fn device_list_edus(&self, user: &UserId, position: u64, previous: Option<u64>, change: ListChange) -> Result<Vec<Value>> {
        let (devices, deleted) = match change {
            ListChange::Remote => return Ok(Vec::new()),
            ListChange::CrossSigning => {
                let mut content = json!({ "user_id": user });
                for (field, usage) in [("master_key", super::cross_signing::MASTER), ("self_signing_key", super::cross_signing::SELF_SIGNING)] {
                    if let Some(key) = self.cross_signing_key(user, usage)? {
                        content[field] = key;
                    }
                }
                return Ok(vec![json!({ "edu_type": "m.signing_key_update", "content": content })]);
            }
            ListChange::Devices(devices) => (devices, false),
            ListChange::Deleted(devices) => (devices, true),
        };
        let prev_id: Vec<u64> = if devices.len() == 1 { previous.into_iter().collect() } else { Vec::new() };
        let mut edus = Vec::new();
        for device in devices {
            let mut content = json!({ "user_id": user, "device_id": device, "stream_id": position, "prev_id": prev_id });
            if deleted {
                content["deleted"] = json!(true);
            } else if let Some(keys) = self.device_keys_of(user, &device)? {
                content["keys"] = keys;
            }
            edus.push(json!({ "edu_type": "m.device_list_update", "content": content }));
        }
        Ok(edus)
    }

    /// Queues `edus` for the servers (other than ours) of the users in `audience`.
    async fn send_to_servers_of(&self, audience: &BTreeSet<String>, edus: &[Value]) -> Result<()> {
        let servers: BTreeSet<ruma::OwnedServerName> = audience
            .iter()
            .filter_map(|member| UserId::parse(member.as_str()).ok())
            .map(|member| member.server_name().to_owned())
            .filter(|server| *server != self.server_name)
            .collect();
        for server in servers {
            for edu in edus {
                self.sender.enqueue_edu(server.clone(), edu.clone()).await?;
            }
        }
        Ok(())
    }
}

fn joined(members: &[(String, crate::service::rooms::MembershipEntry)]) -> impl Iterator<Item = String> + '_ {
    members.iter().filter(|(_, entry)| entry.membership == "join").map(|(member, _)| member.clone())
}
