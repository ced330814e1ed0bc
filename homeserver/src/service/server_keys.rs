//! The server's signing key: generated on first start, kept in the database.

use std::sync::Arc;

use myelin_federation::ServerSigningKey;
use myelin_storage::{Batch, Database, Table};
use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Serialize, Deserialize)]
struct StoredKey {
    version: String,
    pkcs8: Vec<u8>,
}

const SIGNING_KEY: Table<String, StoredKey> = Table::new("server_signingkey");
const CURRENT: &str = "current";

/// Loads the signing key, generating and durably storing one on first start.
pub fn load_or_generate(db: &Database) -> Result<Arc<ServerSigningKey>> {
    if let Some(stored) = SIGNING_KEY.get(db, &CURRENT.to_owned())? {
        return Ok(Arc::new(ServerSigningKey::from_pkcs8(&stored.pkcs8, stored.version)?));
    }
    let key = ServerSigningKey::generate()?;
    let mut batch = Batch::new();
    SIGNING_KEY.put(
        &mut batch,
        &CURRENT.to_owned(),
        &StoredKey { version: key.version().to_owned(), pkcs8: key.pkcs8().to_vec() },
    )?;
    db.write(batch)?;
    tracing::info!(key_id = %key.key_id(), "generated the server signing key");
    Ok(Arc::new(key))
}
