//! Stored sync filters (`/user/{userId}/filter`).

use myelin_storage::{Batch, Database, Table};
use ruma::UserId;
use serde_json::Value;

use crate::error::Result;

const FILTERS: Table<(String, u64), Value> = Table::new("userid_filterid_filter");

#[derive(Clone)]
pub struct Filters {
    db: Database,
}

impl Filters {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Stores a filter and returns its ID. IDs come from a durable counter, so they are never
    /// reused even after a restart.
    pub async fn create(&self, user_id: &UserId, filter: &Value) -> Result<String> {
        let id = self.db.next_id("filter_id")?;
        let mut batch = Batch::new();
        FILTERS.put(&mut batch, &(user_id.to_string(), id), filter)?;
        self.db.write_async(batch).await?;
        Ok(id.to_string())
    }

    pub fn get(&self, user_id: &UserId, filter_id: &str) -> Result<Option<Value>> {
        let Ok(id) = filter_id.parse::<u64>() else { return Ok(None) };
        Ok(FILTERS.get(&self.db, &(user_id.to_string(), id))?)
    }
}
