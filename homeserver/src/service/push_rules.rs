//! Push rules: the spec's server-default ruleset, changed per user and stored as the user's
//! `m.push_rules` account data (which is also how sync delivers them to clients).

use ruma::{UserId, push::Ruleset};
use serde_json::json;

pub use super::account_data::PUSH_RULES as EVENT_TYPE;
use super::account_data::AccountData;
use crate::error::Result;

#[derive(Clone)]
pub struct PushRules {
    account_data: AccountData,
}

impl PushRules {
    pub fn new(account_data: AccountData) -> Self {
        Self { account_data }
    }

    /// The user's ruleset: what they stored, or the server defaults.
    pub fn ruleset(&self, user: &UserId) -> Result<Ruleset> {
        Ok(self.account_data.push_settings(user)?.ruleset.clone())
    }

    pub async fn save(&self, user: &UserId, ruleset: &Ruleset) -> Result<()> {
        self.account_data.set(user, None, EVENT_TYPE, &json!({ "global": ruleset })).await
    }

    /// The `m.push_rules` account data event as sync shows it.
    pub fn account_data_event(&self, user: &UserId) -> Result<serde_json::Value> {
        Ok(json!({ "type": EVENT_TYPE, "content": { "global": self.ruleset(user)? } }))
    }
}
