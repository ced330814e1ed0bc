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
use ruma::UserId;

use super::E2ee;
use crate::{error::Result, service::rooms::timeline::StreamTicket};

pub const STREAM_TABLE: &str = "stream_devicelistuser";
pub const LATEST_TABLE: &str = "userid_devicelistposition";
/// stream position → the user whose device list changed then.
const CHANGES: Table<u64, String> = Table::new(STREAM_TABLE);
/// user → the position of their latest change (its row in [`CHANGES`]).
const LATEST: Table<String, u64> = Table::new(LATEST_TABLE);

impl E2ee {
    /// Stages a change of `user`'s device list at a new stream position. The ticket must live
    /// until the batch is written; hand both to [`E2ee::commit_device_list_change`].
    pub(super) fn stage_device_list_change(&self, batch: &mut Batch, user: &UserId) -> Result<StreamTicket> {
        let ticket = self.rooms.stream.allocate()?;
        if let Some(previous) = LATEST.get(&self.db, &user.to_string())? {
            CHANGES.delete(batch, &previous);
        }
        LATEST.put(batch, &user.to_string(), &ticket.position)?;
        CHANGES.put(batch, &ticket.position, &user.to_string())?;
        Ok(ticket)
    }

    /// Writes a batch carrying a device-list change and wakes everyone who must hear of it.
    pub(super) async fn commit_device_list_change(&self, batch: Batch, user: &UserId, ticket: StreamTicket) -> Result<()> {
        self.db.write_async(batch).await?;
        let position = ticket.position;
        drop(ticket);
        let audience = self.users_sharing_rooms(user.as_str())?;
        self.rooms.notifier.notify(audience.iter().map(String::as_str), position);
        if self.is_local(user) {
            self.send_device_list_update(user, position, &audience).await?;
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
        let ticket = self.stage_device_list_change(&mut batch, user)?;
        self.commit_device_list_change(batch, user, ticket).await
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
        let sharing = self.users_sharing_rooms(user.as_str())?;
        let mut changed = BTreeSet::new();
        let mut left_candidates = BTreeSet::new();
        for entry in CHANGES.iter_range(&self.db, Some(&(since + 1)), Some(&(now + 1)), Direction::Forward)? {
            let (_, changed_user) = entry?;
            if sharing.contains(&changed_user) {
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
        let left = left_candidates.into_iter().filter(|member| !sharing.contains(member)).collect();
        Ok((changed.into_iter().collect(), left))
    }

    fn own_change_since(&self, user: &UserId, since: u64, now: u64) -> Result<bool> {
        Ok(LATEST.get(&self.db, &user.to_string())?.is_some_and(|position| position > since && position <= now))
    }
}

impl E2ee {
    /// Tells the servers of everyone sharing a room with our `user` that the user's devices
    /// changed (`m.device_list_update`, one per device, with its keys or `deleted`); they
    /// fetch the rest with `/user/devices` when they need it.
    async fn send_device_list_update(&self, user: &UserId, position: u64, audience: &BTreeSet<String>) -> Result<()> {
        let servers: BTreeSet<ruma::OwnedServerName> = audience
            .iter()
            .filter_map(|member| UserId::parse(member.as_str()).ok())
            .map(|member| member.server_name().to_owned())
            .filter(|server| *server != self.server_name)
            .collect();
        if servers.is_empty() {
            return Ok(());
        }
        let devices = self.device_keys(user)?;
        let edus: Vec<serde_json::Value> = if devices.is_empty() {
            // No device with keys left: one update without keys makes the others refetch.
            vec![serde_json::json!({ "user_id": user, "device_id": "", "stream_id": position, "deleted": true })]
        } else {
            devices
                .into_iter()
                .map(|(device, keys)| serde_json::json!({ "user_id": user, "device_id": device, "stream_id": position, "keys": keys }))
                .collect()
        };
        for server in servers {
            for content in &edus {
                self.sender.enqueue_edu(server.clone(), serde_json::json!({ "edu_type": "m.device_list_update", "content": content })).await?;
            }
        }
        Ok(())
    }
}

fn joined(members: &[(String, crate::service::rooms::MembershipEntry)]) -> impl Iterator<Item = String> + '_ {
    members.iter().filter(|(_, entry)| entry.membership == "join").map(|(member, _)| member.clone())
}
