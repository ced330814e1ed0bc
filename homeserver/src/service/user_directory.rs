//! The user directory (`POST /user_directory/search`).
//!
//! Two tables make users findable by the words of their user ID and display name:
//! `word → user` (one row per word, prefix-scanned) and `user → profile`. Local users enter
//! them when their account is created or its profile changes (`Users`, in the batch that
//! stores the account); remote users when we store an event making them a member of a room
//! (`Rooms::commit`, and the room state a remote join hands us), with the profile of that
//! member event.
//!
//! Who may be found is decided when searching, from the membership index: users who share a
//! room with the searcher, or who are in a room whose join rule is `public` (or, with
//! `user_directory.search_all_users`, any local user). So joins, leaves and join-rule changes
//! need no directory upkeep at all, and a user who left every shared room is no longer found.
//! Rows are only ever replaced by newer profiles; a word row left behind by a race between
//! two rooms updating one remote user only adds a candidate, which is checked against the
//! stored profile before it is returned.

use std::collections::{BTreeSet, HashMap, HashSet};

use myelin_storage::{Batch, Database, Direction, Table};
use ruma::{OwnedUserId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    rooms::{Rooms, StoredEvent},
    users::{ACCOUNTS, Account},
};
use crate::{error::Result, util::words::words};

/// user → the profile the directory shows and matches.
const PROFILES: Table<String, DirectoryProfile> = Table::new("userid_directoryprofile");
/// (word, user): the words a user is found by.
const WORDS: Table<(String, String), ()> = Table::new("word_userid");

/// `BUILT` is set once the local accounts stored before the directory existed are in it.
const META: Table<String, ()> = Table::new("userdirectory_meta");
const BUILT: &str = "built";

pub const TABLES: &[&str] = &["userid_directoryprofile", "word_userid", "userdirectory_meta"];

/// The most users one search examines: a one-letter term on a large server matches many.
const MAX_CANDIDATES: usize = 5000;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub displayname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

impl DirectoryProfile {
    /// What the directory shows of a local account: nothing once it is deactivated.
    pub fn of_account(account: &Account) -> Option<Self> {
        (!account.deactivated).then(|| Self { displayname: account.displayname.clone(), avatar_url: account.avatar_url.clone() })
    }
}

/// A user found, with what the directory knows of their profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryUser {
    pub user_id: OwnedUserId,
    pub profile: DirectoryProfile,
}

/// The words a user is found by: those of the localpart and of the display name, and the
/// whole user ID (lower-cased) for searches that start with `@`.
fn words_of(user_id: &str, profile: &DirectoryProfile) -> BTreeSet<String> {
    let localpart = user_id.strip_prefix('@').and_then(|rest| rest.split_once(':')).map_or(user_id, |(localpart, _)| localpart);
    let mut out: BTreeSet<String> = words(localpart).into_iter().collect();
    out.extend(profile.displayname.iter().flat_map(|name| words(name)));
    out.insert(user_id.to_lowercase());
    out
}

/// Stages the rows that make `user_id` findable with `profile`, or unfindable with `None`
/// (a deactivated account).
pub fn stage_profile(db: &Database, batch: &mut Batch, user_id: &UserId, profile: Option<&DirectoryProfile>) -> Result<()> {
    let user = user_id.as_str().to_owned();
    let previous = PROFILES.get(db, &user)?;
    if previous.as_ref() == profile {
        return Ok(());
    }
    let old_words = previous.as_ref().map(|p| words_of(&user, p)).unwrap_or_default();
    let new_words = profile.map(|p| words_of(&user, p)).unwrap_or_default();
    for word in old_words.difference(&new_words) {
        WORDS.delete(batch, &(word.clone(), user.clone()));
    }
    for word in new_words.difference(&old_words) {
        WORDS.put(batch, &(word.clone(), user.clone()), &())?;
    }
    match profile {
        Some(profile) => PROFILES.put(batch, &user, profile)?,
        None => PROFILES.delete(batch, &user),
    }
    Ok(())
}

/// Stages a remote user's directory entry from a member event that makes them join a room:
/// their profile is what that event says. Local users' entries follow their accounts instead
/// (a member event may carry a per-room name).
pub fn stage_member(db: &Database, batch: &mut Batch, local: &ServerName, state_key: &str, content: &Value) -> Result<()> {
    let Ok(user_id) = UserId::parse(state_key) else { return Ok(()) };
    if user_id.server_name() == local || content.get("membership").and_then(Value::as_str) != Some("join") {
        return Ok(());
    }
    let text = |field: &str| content.get(field).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let profile = DirectoryProfile { displayname: text("displayname"), avatar_url: text("avatar_url") };
    stage_profile(db, batch, &user_id, Some(&profile))
}

/// [`stage_member`] for a stored event, if it is a membership event.
pub fn stage_member_event(db: &Database, batch: &mut Batch, local: &ServerName, event: &StoredEvent) -> Result<()> {
    match (event.event_type(), event.state_key()) {
        ("m.room.member", Some(state_key)) => stage_member(db, batch, local, state_key, event.content()),
        _ => Ok(()),
    }
}

/// How well a user matches the whole search term; lower ranks first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// The term is the display name, the localpart or the user ID.
    Exact,
    /// The display name begins with the term.
    DisplayNamePrefix,
    /// The localpart or user ID begins with the term.
    IdPrefix,
    /// Every word of the term begins some word of the user's.
    Words,
}

#[derive(Clone)]
pub struct UserDirectory {
    db: Database,
    rooms: Rooms,
    search_all_users: bool,
}

impl UserDirectory {
    pub fn new(db: Database, rooms: Rooms, search_all_users: bool) -> Self {
        Self { db, rooms, search_all_users }
    }

    /// Enters the local accounts of a database from before the directory existed: once, at
    /// start-up before any request, and marked done.
    pub fn build(&self) -> Result<()> {
        if META.get(&self.db, &BUILT.to_owned())?.is_some() {
            return Ok(());
        }
        let mut batch = Batch::new();
        for entry in ACCOUNTS.iter_all(&self.db)? {
            let (user, account) = entry?;
            let Ok(user_id) = UserId::parse(&user) else { continue };
            stage_profile(&self.db, &mut batch, &user_id, DirectoryProfile::of_account(&account).as_ref())?;
        }
        META.put(&mut batch, &BUILT.to_owned(), &())?;
        Ok(self.db.write(batch)?)
    }

    /// Up to `limit` users matching `term` that `searcher` may find, best first, and whether
    /// more matched.
    #[tracing::instrument(skip(self))]
    pub fn search(&self, searcher: &UserId, term: &str, limit: usize) -> Result<(Vec<DirectoryUser>, bool)> {
        let term_words: BTreeSet<String> = words(term).into_iter().collect();
        let whole = term.trim().to_lowercase();
        let mut candidates: Option<BTreeSet<String>> = None;
        for word in &term_words {
            let users = self.users_with_word_prefix(word)?;
            candidates = Some(match candidates {
                None => users,
                Some(so_far) => so_far.intersection(&users).cloned().collect(),
            });
        }
        let mut candidates = candidates.unwrap_or_default();
        if whole.starts_with('@') {
            candidates.extend(self.users_with_word_prefix(&whole)?);
        }
        let shared: HashSet<String> =
            self.rooms.membership.rooms_of(searcher.as_str())?.into_iter().filter(|(_, entry)| entry.membership == "join").map(|(room, _)| room).collect();
        let mut public_rooms: HashMap<String, bool> = HashMap::new();
        let mut found: Vec<(Rank, DirectoryUser)> = Vec::new();
        for user in candidates.into_iter().take(MAX_CANDIDATES) {
            let Some(profile) = PROFILES.get(&self.db, &user)? else { continue };
            let Some(rank) = rank(&user, &profile, &term_words, &whole) else { continue };
            let Ok(user_id) = UserId::parse(&user) else { continue };
            if !self.may_find(&user_id, &shared, &mut public_rooms)? {
                continue;
            }
            found.push((rank, DirectoryUser { user_id, profile }));
        }
        found.sort_by(|(rank_a, a), (rank_b, b)| {
            let name = |user: &DirectoryUser| user.profile.displayname.as_deref().unwrap_or(user.user_id.localpart()).to_lowercase();
            rank_a.cmp(rank_b).then_with(|| name(a).cmp(&name(b))).then_with(|| a.user_id.cmp(&b.user_id))
        });
        let limited = found.len() > limit;
        Ok((found.into_iter().take(limit).map(|(_, user)| user).collect(), limited))
    }

    fn users_with_word_prefix(&self, prefix: &str) -> Result<BTreeSet<String>> {
        // The word without its terminator: every word that begins with it.
        let mut bytes = myelin_storage::prefix_of(&prefix.to_owned());
        bytes.pop();
        let mut users = BTreeSet::new();
        for entry in WORDS.iter_prefix_bytes(&self.db, &bytes, Direction::Forward)? {
            let ((_, user), ()) = entry?;
            users.insert(user);
            if users.len() >= MAX_CANDIDATES {
                break;
            }
        }
        Ok(users)
    }

    /// Whether the searcher may find `user`: a room in common, a user in a public room, or
    /// any local user when the server says so.
    fn may_find(&self, user: &UserId, shared: &HashSet<String>, public_rooms: &mut HashMap<String, bool>) -> Result<bool> {
        if self.search_all_users && user.server_name() == self.rooms.server_name() {
            return Ok(true);
        }
        for (room, entry) in self.rooms.membership.rooms_of(user.as_str())? {
            if entry.membership != "join" {
                continue;
            }
            if shared.contains(&room) {
                return Ok(true);
            }
            let public = match public_rooms.get(&room) {
                Some(public) => *public,
                None => {
                    let public = self.is_public(&room)?;
                    public_rooms.insert(room, public);
                    public
                }
            };
            if public {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn is_public(&self, room_id: &str) -> Result<bool> {
        let Some(record) = self.rooms.records.room(room_id)? else { return Ok(false) };
        let rules = self.rooms.state_event_shared(record.current_state_group, "m.room.join_rules", "")?;
        Ok(rules.is_some_and(|event| event.content().get("join_rule").and_then(Value::as_str) == Some("public")))
    }
}

/// How `user` matches: every word of the term must begin one of the user's words (or, for
/// a term starting with `@`, the user ID must begin with it).
fn rank(user: &str, profile: &DirectoryProfile, term_words: &BTreeSet<String>, whole: &str) -> Option<Rank> {
    let user_lower = user.to_lowercase();
    let localpart = user_lower.strip_prefix('@').and_then(|rest| rest.split_once(':')).map_or(user_lower.as_str(), |(localpart, _)| localpart);
    let name = profile.displayname.as_deref().map(str::to_lowercase);
    let their_words = words_of(user, profile);
    let by_words = !term_words.is_empty() && term_words.iter().all(|word| their_words.iter().any(|theirs| theirs.starts_with(word.as_str())));
    let by_id = whole.starts_with('@') && user_lower.starts_with(whole);
    if !(by_words || by_id) {
        return None;
    }
    Some(if name.as_deref() == Some(whole) || localpart == whole || user_lower == whole {
        Rank::Exact
    } else if name.as_deref().is_some_and(|name| name.starts_with(whole)) {
        Rank::DisplayNamePrefix
    } else if localpart.starts_with(whole) || user_lower.starts_with(whole) {
        Rank::IdPrefix
    } else {
        Rank::Words
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{DirectoryProfile, Rank, rank};

    fn profile(name: &str) -> DirectoryProfile {
        DirectoryProfile { displayname: Some(name.to_owned()), avatar_url: None }
    }

    fn term(text: &str) -> (BTreeSet<String>, String) {
        (crate::util::words::words(text).into_iter().collect(), text.trim().to_lowercase())
    }

    #[test]
    fn ranks_exact_then_name_prefix_then_id_prefix_then_words() {
        let alice = profile("Alice Smith");
        let (words, whole) = term("alice smith");
        assert_eq!(rank("@al:x", &alice, &words, &whole), Some(Rank::Exact));
        let (words, whole) = term("ali");
        assert_eq!(rank("@al:x", &alice, &words, &whole), Some(Rank::DisplayNamePrefix));
        assert_eq!(rank("@alison:x", &profile("Zed"), &words, &whole), Some(Rank::IdPrefix));
        let (words, whole) = term("smi");
        assert_eq!(rank("@al:x", &alice, &words, &whole), Some(Rank::Words));
        let (words, whole) = term("ÉMILE");
        assert_eq!(rank("@e:x", &profile("Émile Zola"), &words, &whole), Some(Rank::DisplayNamePrefix));
        let (words, whole) = term("bob");
        assert_eq!(rank("@al:x", &alice, &words, &whole), None);
        let (words, whole) = term("@al:x");
        assert_eq!(rank("@al:x", &alice, &words, &whole), Some(Rank::Exact));
    }
}
