//! Reports of events and rooms that users send to this server's admins.

use myelin_storage::{Batch, Database, Direction, Table};
use serde::{Deserialize, Serialize};

use crate::{error::Result, util::now_millis};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub id: u64,
    pub received_ts: u64,
    pub room_id: String,
    /// `None` for a report of a whole room.
    pub event_id: Option<String>,
    /// The reporter.
    pub user_id: String,
    pub reason: Option<String>,
    /// The reported event's sender, when known.
    pub sender: Option<String>,
}

const REPORTS: Table<u64, Report> = Table::new("reportid_report");
pub const TABLES: &[&str] = &["reportid_report"];

#[derive(Clone)]
pub struct Reports {
    db: Database,
}

impl Reports {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Stores a report durably and returns its ID.
    pub async fn file(&self, room_id: &str, event_id: Option<&str>, reporter: &str, reason: Option<String>, sender: Option<String>) -> Result<u64> {
        let id = self.db.next_id("report")?;
        let report = Report {
            id,
            received_ts: now_millis(),
            room_id: room_id.to_owned(),
            event_id: event_id.map(ToOwned::to_owned),
            user_id: reporter.to_owned(),
            reason,
            sender,
        };
        let mut batch = Batch::new();
        REPORTS.put(&mut batch, &id, &report)?;
        self.db.write_async(batch).await?;
        Ok(id)
    }

    /// Reports matching `keep`, newest first when `newest_first`: the page after skipping
    /// `from`, at most `limit`, and how many match in all.
    pub fn list(&self, keep: impl Fn(&Report) -> bool, newest_first: bool, from: usize, limit: usize) -> Result<(Vec<Report>, usize)> {
        let direction = if newest_first { Direction::Reverse } else { Direction::Forward };
        let mut total = 0;
        let mut page = Vec::new();
        for entry in REPORTS.iter_range(&self.db, None, None, direction)? {
            let (_, report) = entry?;
            if !keep(&report) {
                continue;
            }
            if total >= from && page.len() < limit {
                page.push(report);
            }
            total += 1;
        }
        Ok((page, total))
    }

    pub fn get(&self, id: u64) -> Result<Option<Report>> {
        Ok(REPORTS.get(&self.db, &id)?)
    }

    /// Deletes a report; whether it existed.
    pub async fn delete(&self, id: u64) -> Result<bool> {
        if REPORTS.get(&self.db, &id)?.is_none() {
            return Ok(false);
        }
        let mut batch = Batch::new();
        REPORTS.delete(&mut batch, &id);
        self.db.write_async(batch).await?;
        Ok(true)
    }
}
