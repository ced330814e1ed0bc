//! Local accounts: creation, passwords, profile fields, admin flags, deactivation.

use std::sync::Arc;

use myelin_storage::{Batch, Database, Table};
use rand::Rng;
use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{password::Passwords, user_directory::{self, DirectoryProfile}};
use crate::{
    error::{Error, Result},
    util::now_millis,
};

/// One local account, keyed by its full user ID.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub password_hash: Option<String>,
    pub created_ts: u64,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub deactivated: bool,
    #[serde(default)]
    pub erased: bool,
    #[serde(default)]
    pub displayname: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub locked: bool,
    /// Extended profile fields (MSC4133) other than displayname and avatar_url.
    #[serde(default)]
    pub profile_fields: std::collections::BTreeMap<String, serde_json::Value>,
}

pub(crate) const ACCOUNTS: Table<String, Account> = Table::new("userid_account");

/// Filters for the admin listing.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub name_contains: Option<String>,
    pub include_deactivated: bool,
}

#[derive(Clone)]
pub struct Users {
    db: Database,
    server_name: ruma::OwnedServerName,
    passwords: Passwords,
    /// Serialises read-modify-write of accounts, so two concurrent edits never lose one.
    write_lock: Arc<Mutex<()>>,
}

impl Users {
    pub fn new(db: Database, server_name: ruma::OwnedServerName, passwords: Passwords) -> Self {
        Self { db, server_name, passwords, write_lock: Arc::new(Mutex::new(())) }
    }

    pub fn server_name(&self) -> &ruma::ServerName {
        &self.server_name
    }

    pub fn is_local(&self, user_id: &UserId) -> bool {
        user_id.server_name() == self.server_name
    }

    /// Turns a requested username into a user ID, applying the spec's rules for new
    /// localparts (`a-z 0-9 . _ = - / +`), and the 255-byte limit on the whole ID.
    pub fn user_id_for_registration(&self, username: &str) -> Result<OwnedUserId> {
        let localpart = username.strip_prefix('@').map_or(username, |rest| {
            rest.split_once(':').map_or(rest, |(localpart, _)| localpart)
        });
        if username.starts_with('@') && !username.ends_with(&format!(":{}", self.server_name)) {
            return Err(invalid_username("User ID does not belong to this server"));
        }
        if localpart.is_empty() {
            return Err(invalid_username("Username cannot be empty"));
        }
        if !localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+')) {
            return Err(invalid_username(
                "Username may only contain a-z, 0-9, and the characters . _ = - / +",
            ));
        }
        let user_id = UserId::parse(format!("@{localpart}:{}", self.server_name))
            .map_err(|e| invalid_username(format!("Invalid username: {e}")))?;
        if user_id.as_str().len() > 255 {
            return Err(invalid_username("User ID is longer than 255 bytes"));
        }
        Ok(user_id)
    }

    /// Resolves a login identifier (localpart or full ID, any case) to a local user ID.
    pub fn user_id_for_login(&self, user: &str) -> Result<OwnedUserId> {
        let full = if user.starts_with('@') { user.to_owned() } else { format!("@{user}:{}", self.server_name) };
        let user_id = UserId::parse(full.to_lowercase()).map_err(|_| Error::forbidden("Invalid username or password"))?;
        if !self.is_local(&user_id) {
            return Err(Error::forbidden("Invalid username or password"));
        }
        Ok(user_id)
    }

    /// A fresh numeric localpart for registrations that named none.
    pub fn generate_user_id(&self) -> Result<OwnedUserId> {
        loop {
            let localpart: u64 = rand::thread_rng().gen_range(1_000_000..10_000_000_000);
            let user_id = self.user_id_for_registration(&localpart.to_string())?;
            if !self.exists(&user_id)? {
                return Ok(user_id);
            }
        }
    }

    pub fn get(&self, user_id: &UserId) -> Result<Option<Account>> {
        Ok(ACCOUNTS.get(&self.db, &user_id.to_string())?)
    }

    pub fn exists(&self, user_id: &UserId) -> Result<bool> {
        Ok(self.get(user_id)?.is_some())
    }

    pub fn is_admin(&self, user_id: &UserId) -> Result<bool> {
        Ok(self.get(user_id)?.is_some_and(|account| account.admin && !account.deactivated))
    }

    /// Creates an account; `M_USER_IN_USE` if the ID is taken (deactivated IDs stay taken).
    #[tracing::instrument(skip(self, password))]
    pub async fn create(
        &self,
        user_id: &UserId,
        password: Option<&str>,
        admin: bool,
        displayname: Option<String>,
    ) -> Result<Account> {
        let password_hash = match password {
            Some(password) => Some(self.passwords.hash(password).await?),
            None => None,
        };
        let _guard = self.write_lock.lock().await;
        if self.exists(user_id)? {
            return Err(Error::matrix(
                http::StatusCode::BAD_REQUEST,
                ruma::api::error::ErrorKind::UserInUse,
                "User ID already taken",
            ));
        }
        let account = Account {
            password_hash,
            created_ts: now_millis(),
            admin,
            displayname: Some(displayname.unwrap_or_else(|| user_id.localpart().to_owned())),
            ..Account::default()
        };
        let mut batch = Batch::new();
        ACCOUNTS.put(&mut batch, &user_id.to_string(), &account)?;
        user_directory::stage_profile(&self.db, &mut batch, user_id, DirectoryProfile::of_account(&account).as_ref())?;
        self.db.write_async(batch).await?;
        Ok(account)
    }

    /// Applies `change` to an existing account and persists it durably.
    pub async fn update(&self, user_id: &UserId, change: impl FnOnce(&mut Account)) -> Result<Account> {
        let _guard = self.write_lock.lock().await;
        let mut account = self.get(user_id)?.ok_or_else(|| Error::not_found("User not found"))?;
        change(&mut account);
        let mut batch = Batch::new();
        ACCOUNTS.put(&mut batch, &user_id.to_string(), &account)?;
        user_directory::stage_profile(&self.db, &mut batch, user_id, DirectoryProfile::of_account(&account).as_ref())?;
        self.db.write_async(batch).await?;
        Ok(account)
    }

    pub async fn set_password(&self, user_id: &UserId, password: &str) -> Result<()> {
        let hash = self.passwords.hash(password).await?;
        self.update(user_id, |account| account.password_hash = Some(hash)).await?;
        Ok(())
    }

    /// True when the account exists, is active, and the password matches.
    pub async fn check_password(&self, user_id: &UserId, password: &str) -> Result<bool> {
        let Some(account) = self.get(user_id)? else { return Ok(false) };
        let Some(hash) = account.password_hash else { return Ok(false) };
        self.passwords.verify(password, &hash).await
    }

    /// Marks the account deactivated; with `erase`, its profile is wiped too.
    pub async fn deactivate(&self, user_id: &UserId, erase: bool) -> Result<Account> {
        self.update(user_id, |account| {
            account.deactivated = true;
            account.password_hash = None;
            if erase {
                account.erased = true;
                account.displayname = None;
                account.avatar_url = None;
                account.profile_fields.clear();
            }
        })
        .await
    }

    /// One page of accounts ordered by user ID, and the total that match the filter.
    pub fn list(&self, filter: &ListFilter, from: usize, limit: usize) -> Result<(Vec<(OwnedUserId, Account)>, usize)> {
        let mut total = 0;
        let mut page = Vec::new();
        for entry in ACCOUNTS.iter_all(&self.db)? {
            let (user_id, account) = entry?;
            if account.deactivated && !filter.include_deactivated {
                continue;
            }
            if let Some(needle) = &filter.name_contains {
                let needle = needle.to_lowercase();
                let in_name = user_id.to_lowercase().contains(&needle);
                let in_display = account.displayname.as_ref().is_some_and(|d| d.to_lowercase().contains(&needle));
                if !in_name && !in_display {
                    continue;
                }
            }
            if total >= from
                && page.len() < limit
                && let Ok(user_id) = UserId::parse(&user_id)
            {
                page.push((user_id, account));
            }
            total += 1;
        }
        Ok((page, total))
    }
}

fn invalid_username(message: impl Into<String>) -> Error {
    Error::matrix(http::StatusCode::BAD_REQUEST, ruma::api::error::ErrorKind::InvalidUsername, message)
}
