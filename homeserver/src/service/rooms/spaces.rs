//! Room previews: the summary of one room (MSC3266, spec v1.15 `room_summary`) and the
//! hierarchy of a space (`/hierarchy`), for rooms held here.

use std::collections::{HashSet, VecDeque};

use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::{Value, json};

use super::Rooms;
use crate::error::{Error, Result};

/// The deepest a hierarchy walk goes, and the most rooms one walk visits, whatever is asked.
const MAX_HIERARCHY_DEPTH: usize = 10;
const MAX_HIERARCHY_ROOMS: usize = 1000;

impl Rooms {
    /// A room's summary as `user` (or an anonymous caller) may preview it, with their
    /// membership; 404 for rooms they may not preview, as for rooms that do not exist.
    pub fn room_summary(&self, room_id: &RoomId, user: Option<&UserId>) -> Result<(Value, Option<String>)> {
        let not_found = || Error::not_found("Room not found, or not previewable");
        if self.records.room(room_id.as_str())?.is_none() {
            return Err(not_found());
        }
        let membership = match user {
            Some(user) => self.membership.membership(room_id.as_str(), user.as_str())?,
            None => None,
        };
        if !self.may_preview(room_id, user, membership.as_deref())? {
            return Err(not_found());
        }
        Ok((self.summary_chunk(room_id)?, membership))
    }

    /// Whether a room can be previewed: by its members (past invites and knocks included),
    /// or by anyone when it is world-readable or joinable without an invite.
    fn may_preview(&self, room_id: &RoomId, user: Option<&UserId>, membership: Option<&str>) -> Result<bool> {
        if matches!(membership, Some("join" | "invite" | "knock")) {
            return Ok(true);
        }
        let chunk = self.public_chunk(room_id)?;
        let join_rule = chunk["join_rule"].as_str().unwrap_or("invite");
        let joinable = match join_rule {
            "public" | "knock" => true,
            "restricted" | "knock_restricted" => user.is_some_and(|user| self.in_allowed_room(&chunk, user)),
            _ => false,
        };
        Ok(joinable || chunk["world_readable"] == true)
    }

    fn in_allowed_room(&self, chunk: &Value, user: &UserId) -> bool {
        chunk["allowed_room_ids"].as_array().into_iter().flatten().filter_map(Value::as_str).any(|room| {
            self.membership.membership(room, user.as_str()).ok().flatten().as_deref() == Some("join")
        })
    }

    /// The summary fields of a room: the directory's, plus version, encryption and the rooms
    /// a restricted join rule names.
    fn summary_chunk(&self, room_id: &RoomId) -> Result<Value> {
        let record = self.room(room_id)?;
        let mut chunk = self.public_chunk(room_id)?;
        chunk["room_version"] = json!(record.version);
        if let Some(encryption) = self.state_event(record.current_state_group, "m.room.encryption", "")? {
            chunk["encryption"] = encryption.content().get("algorithm").cloned().unwrap_or(Value::Null);
        }
        if let Some(rules) = self.state_event(record.current_state_group, "m.room.join_rules", "")? {
            let allowed: Vec<Value> = rules
                .content()
                .get("allow")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|rule| rule.get("type").and_then(Value::as_str) == Some("m.room_membership"))
                .filter_map(|rule| rule.get("room_id").cloned())
                .collect();
            if !allowed.is_empty() {
                chunk["allowed_room_ids"] = Value::Array(allowed);
            }
        }
        Ok(chunk)
    }

    /// The space hierarchy below `root` as `user` may see it, breadth first: each room's
    /// summary with its `m.space.child` events (stripped). Children we do not hold, or may not
    /// preview, are left out. `from` is the number of rooms already returned.
    pub fn hierarchy(&self, root: &RoomId, user: &UserId, max_depth: Option<usize>, suggested_only: bool, from: usize, limit: usize) -> Result<(Vec<Value>, Option<usize>)> {
        self.room_summary(root, Some(user)).map_err(|_| Error::forbidden("You may not preview this space"))?;
        let max_depth = max_depth.unwrap_or(MAX_HIERARCHY_DEPTH).min(MAX_HIERARCHY_DEPTH);
        let mut queue: VecDeque<(OwnedRoomId, usize)> = VecDeque::from([(root.to_owned(), 0)]);
        let mut seen: HashSet<OwnedRoomId> = HashSet::from([root.to_owned()]);
        let mut rooms = Vec::new();
        let mut visited = 0;
        while let Some((room_id, depth)) = queue.pop_front() {
            if visited >= MAX_HIERARCHY_ROOMS {
                break;
            }
            let Ok((mut chunk, _)) = self.room_summary(&room_id, Some(user)) else { continue };
            visited += 1;
            let children = self.space_children(&room_id, suggested_only)?;
            chunk["children_state"] = Value::Array(children.iter().map(|(_, event)| event.clone()).collect());
            if depth < max_depth {
                for (child, _) in children {
                    if seen.insert(child.clone()) {
                        queue.push_back((child, depth + 1));
                    }
                }
            }
            rooms.push(chunk);
        }
        let page: Vec<Value> = rooms.iter().skip(from).take(limit).cloned().collect();
        let next = (from + page.len() < rooms.len()).then_some(from + page.len());
        Ok((page, next))
    }

    /// A space's children: its `m.space.child` state events with a non-empty `via`, as
    /// stripped events with their `origin_server_ts`.
    fn space_children(&self, space: &RoomId, suggested_only: bool) -> Result<Vec<(OwnedRoomId, Value)>> {
        let record = self.room(space)?;
        let mut children = Vec::new();
        for ((event_type, state_key), event_id) in self.state_map(record.current_state_group)? {
            if event_type != "m.space.child" {
                continue;
            }
            let Ok(child) = RoomId::parse(&state_key) else { continue };
            let Some((_, event)) = self.event_shared(&event_id)? else { continue };
            let content = event.content();
            let has_via = content.get("via").and_then(Value::as_array).is_some_and(|via| !via.is_empty());
            let suggested = content.get("suggested").and_then(Value::as_bool).unwrap_or(false);
            if !has_via || (suggested_only && !suggested) {
                continue;
            }
            let mut stripped = Self::stripped_event(&event);
            stripped["origin_server_ts"] = json!(event.origin_server_ts());
            children.push((child, stripped));
        }
        // The spec orders children by `order`, then by when they were added.
        children.sort_by(|(_, a), (_, b)| {
            let order = |e: &Value| e["content"]["order"].as_str().map(ToOwned::to_owned);
            (order(a).is_none(), order(a), a["origin_server_ts"].as_u64()).cmp(&(order(b).is_none(), order(b), b["origin_server_ts"].as_u64()))
        });
        Ok(children)
    }
}
