//! Pagination and sync tokens.
//!
//! - `s<stream>`: a position in the global stream (sync's `next_batch`, and a valid `from` for
//!   `/messages`).
//! - `t<depth>_<stream>`: a position in one room's topological order (`/messages`' `end`,
//!   sync's `prev_batch`).

use ruma::RoomId;

use super::Rooms;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    Stream(u64),
    Topological { depth: u64, stream: u64 },
}

impl Token {
    pub fn parse(token: &str) -> Result<Self> {
        let invalid = || Error::invalid_param(format!("Invalid pagination token {token:?}"));
        if let Some(stream) = token.strip_prefix('s') {
            return stream.parse().map(Token::Stream).map_err(|_| invalid());
        }
        if let Some(rest) = token.strip_prefix('t') {
            let (depth, stream) = rest.split_once('_').ok_or_else(invalid)?;
            return Ok(Token::Topological {
                depth: depth.parse().map_err(|_| invalid())?,
                stream: stream.parse().map_err(|_| invalid())?,
            });
        }
        Err(invalid())
    }

    pub fn stream_position(self) -> u64 {
        match self {
            Token::Stream(stream) | Token::Topological { stream, .. } => stream,
        }
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Stream(stream) => write!(f, "s{stream}"),
            Token::Topological { depth, stream } => write!(f, "t{depth}_{stream}"),
        }
    }
}

impl Rooms {
    /// The room's state group as of a stream position: the state after the room's last event
    /// at or before it.
    pub fn state_group_at_stream(&self, room_short: u64, position: u64) -> Result<Option<u64>> {
        let Some((_, short)) = self.timeline.room_events_desc(room_short, 0, position, 1)?.into_iter().next() else {
            return Ok(None);
        };
        Ok(self.timeline.get(short)?.map(|event| event.state_after))
    }

    /// The room state at a token: after the last event before the token's gap.
    pub fn state_group_at_token(&self, room_id: &RoomId, token: &str) -> Result<u64> {
        let record = self.room(room_id)?;
        let gap = self.topological_gap(record.short, Token::parse(token)?)?;
        let before = self.timeline.room_topological(record.short, gap, myelin_storage::Direction::Reverse, 1)?;
        match before.first() {
            Some((_, short)) => Ok(self.timeline.get(*short)?.map_or(record.current_state_group, |event| event.state_after)),
            None => Ok(record.current_state_group),
        }
    }

    /// The gap in the room's topological order a token names (see `Timeline::room_topological`).
    /// A topological token is a gap already; a stream token is the gap after the room's last
    /// event at or before that stream position.
    pub fn topological_gap(&self, room_short: u64, token: Token) -> Result<(u64, u64)> {
        match token {
            Token::Topological { depth, stream } => Ok((depth, stream)),
            Token::Stream(position) => {
                let last = self.timeline.room_events_desc(room_short, 0, position, 1)?.into_iter().next();
                let Some((_, short)) = last else { return Ok((0, 0)) };
                let event = self.timeline.get(short)?.ok_or_else(|| Error::internal("indexed event is missing"))?;
                Ok((event.depth, event.stream + 1))
            }
        }
    }

    /// Forgets a room the user has left: it disappears from their sync and room lists.
    pub async fn forget(&self, room_id: &RoomId, user: &ruma::UserId) -> Result<()> {
        match self.membership.membership(room_id.as_str(), user.as_str())?.as_deref() {
            Some("join" | "invite" | "knock") => Err(Error::matrix(
                http::StatusCode::BAD_REQUEST,
                ruma::api::error::ErrorKind::Unknown,
                "The user has not left the room",
            )),
            None => Err(Error::not_found("You have never been in this room")),
            Some(_) => {
                let mut batch = myelin_storage::Batch::new();
                self.membership.forget(&mut batch, room_id.as_str(), user.as_str())?;
                Ok(self.db.write_async(batch).await?)
            }
        }
    }
}

impl Rooms {
    /// The visible event closest to `ts`: the first at or after it (forward) or the last at or
    /// before it (backward). Scans the room in topological order; fine for rooms of ordinary
    /// size, an index on timestamps can come when rooms grow large.
    pub fn event_near_timestamp(&self, room_id: &RoomId, user: &ruma::UserId, ts: u64, forward: bool) -> Result<(String, u64)> {
        let record = self.room(room_id)?;
        let membership = self.membership.membership(room_id.as_str(), user.as_str())?;
        if membership.is_none() && self.history_visibility(record.current_state_group)? != "world_readable" {
            return Err(Error::forbidden("You are not a member of this room"));
        }
        let viewer = self.viewer(room_id, user)?;
        let mut best: Option<(String, u64)> = None;
        let mut cursor = (0, 0);
        loop {
            let page = self.timeline.room_topological(record.short, cursor, myelin_storage::Direction::Forward, 500)?;
            let done = page.len() < 500;
            for (position, short) in page {
                cursor = super::timeline::gap_after(position, myelin_storage::Direction::Forward);
                let Some(event) = self.timeline.get(short)? else { continue };
                let event_ts = event.origin_server_ts();
                let fits = if forward { event_ts >= ts } else { event_ts <= ts };
                if !fits || !self.can_see_event(&viewer, &event)? {
                    continue;
                }
                let better = match &best {
                    None => true,
                    Some((_, best_ts)) => if forward { event_ts < *best_ts } else { event_ts >= *best_ts },
                };
                if better {
                    best = Some((event.event_id.clone(), event_ts));
                }
            }
            if done {
                break;
            }
        }
        best.ok_or_else(|| Error::not_found("No event found near that time"))
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn tokens_round_trip_and_garbage_is_invalid() {
        for token in [Token::Stream(42), Token::Topological { depth: 7, stream: 9 }] {
            assert_eq!(Token::parse(&token.to_string()).unwrap(), token);
        }
        for bad in ["", "x1", "s", "t5", "t_1", "s-1", "t1_x"] {
            assert_eq!(Token::parse(bad).unwrap_err().errcode(), "M_INVALID_PARAM", "{bad}");
        }
    }
}
