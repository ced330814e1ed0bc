//! Global (per-user) account data. Room account data comes with rooms.

use myelin_storage::{Batch, Database, Table};
use ruma::UserId;
use serde_json::Value;

use crate::error::Result;

const GLOBAL: Table<(String, String), Value> = Table::new("userid_type_accountdata");

#[derive(Clone)]
pub struct AccountData {
    db: Database,
}

impl AccountData {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn get_global(&self, user_id: &UserId, event_type: &str) -> Result<Option<Value>> {
        Ok(GLOBAL.get(&self.db, &(user_id.to_string(), event_type.to_owned()))?)
    }

    pub async fn set_global(&self, user_id: &UserId, event_type: &str, content: &Value) -> Result<()> {
        let mut batch = Batch::new();
        GLOBAL.put(&mut batch, &(user_id.to_string(), event_type.to_owned()), content)?;
        Ok(self.db.write_async(batch).await?)
    }
}
