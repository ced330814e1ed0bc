//! The persisted outbound federation queue: PDUs and EDUs for other servers are stored durably
//! before `enqueue_*` returns, then delivered by one worker per destination in transactions
//! (`PUT /_matrix/federation/v1/send/{txnId}`), retried with exponential backoff while the
//! destination cannot be reached, and picked up again after a restart.
//!
//! Storage: each PDU's JSON is stored once (`queueseq_pdu`), with one empty row per
//! destination that still has to receive it (`destination_queueseq_pdu`, prefix-scanned in
//! queue order by that destination's worker) and the reverse index (`queueseq_destination`)
//! that tells when the last destination is done with it. EDUs go to one destination each and
//! are stored in their row (`destination_queueseq_edu`). Queue sequence numbers come from one
//! counter, so they order PDUs and EDUs together and are never reused.

use std::{
    collections::{BTreeSet, HashMap, hash_map::Entry},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use myelin_storage::{Batch, Database, Direction, Raw, Table};
use rand::Rng as _;
use ruma::{
    CanonicalJsonObject, MilliSecondsSinceUnixEpoch, OwnedServerName, OwnedTransactionId, ServerName,
    api::federation::transactions::{edu::Edu, send_transaction_message},
    serde::Raw as RawJson,
};
use serde_json::value::RawValue as RawJsonValue;
use sha2::{Digest as _, Sha256};
use tokio::{sync::watch, task::JoinHandle};

use super::federation_client::FederationClient;
use crate::error::{Error, Result};

/// PDU JSON by queue sequence number, shared by every destination it goes to.
const PDUS: Table<u64, Vec<u8>, Raw> = Table::new("queueseq_pdu");
/// One row per PDU a destination still has to receive.
const DESTINATION_PDUS: Table<(String, u64), (), Raw> = Table::new("destination_queueseq_pdu");
/// The reverse of `DESTINATION_PDUS`: which destinations still need a stored PDU.
const PDU_DESTINATIONS: Table<(u64, String), (), Raw> = Table::new("queueseq_destination");
/// EDU JSON per destination.
const DESTINATION_EDUS: Table<(String, u64), Vec<u8>, Raw> = Table::new("destination_queueseq_edu");
pub const TABLES: &[&str] =
    &["queueseq_pdu", "destination_queueseq_pdu", "queueseq_destination", "destination_queueseq_edu"];

const QUEUE_COUNTER: &str = "federation_queue";

/// The spec's limits for one transaction.
const MAX_PDUS_PER_TRANSACTION: usize = 50;
const MAX_EDUS_PER_TRANSACTION: usize = 100;

/// Delivers queued PDUs and EDUs to other servers. Cheap to clone: all clones share the same
/// workers.
#[derive(Clone)]
pub struct FederationSender {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    client: FederationClient,
    own_name: OwnedServerName,
    retry_initial: Duration,
    retry_max: Duration,
    /// The destinations that have a worker running. An entry is removed by its worker only.
    workers: Mutex<HashMap<OwnedServerName, WorkerSlot>>,
    /// Set by `shutdown`: workers stop and no new ones are spawned.
    stop: watch::Sender<bool>,
}

struct WorkerSlot {
    /// Rows were queued since the worker last read its queue: it must read again before it
    /// may exit, or those rows would wait for the next enqueue.
    pending: bool,
    /// Signalled by `peer_is_back`: the worker resets its backoff and retries at once.
    back: watch::Sender<()>,
    /// Taken by `shutdown` to wait for the worker.
    task: Option<JoinHandle<()>>,
}

/// One transaction's worth of queued rows, read in queue order.
struct Transaction {
    /// Derived from the rows it carries, so a retry of the same rows reuses it and the peer
    /// can recognise the repeat, while other rows never get it.
    id: OwnedTransactionId,
    /// Every row this transaction accounts for, including unreadable ones that are dropped.
    pdu_seqs: Vec<u64>,
    edu_seqs: Vec<u64>,
    pdus: Vec<Box<RawJsonValue>>,
    edus: Vec<RawJson<Edu>>,
}

impl Transaction {
    fn is_empty(&self) -> bool {
        self.pdu_seqs.is_empty() && self.edu_seqs.is_empty()
    }

    fn has_payload(&self) -> bool {
        !self.pdus.is_empty() || !self.edus.is_empty()
    }
}

impl FederationSender {
    pub fn new(
        db: Database,
        client: FederationClient,
        own_name: OwnedServerName,
        retry_initial: Duration,
        retry_max: Duration,
    ) -> Self {
        // A zero delay would turn an unreachable destination into a busy loop.
        let retry_initial = retry_initial.max(Duration::from_millis(1));
        let retry_max = retry_max.max(retry_initial);
        let (stop, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                db,
                client,
                own_name,
                retry_initial,
                retry_max,
                workers: Mutex::new(HashMap::new()),
                stop,
            }),
        }
    }

    /// Queues `pdu` (its JSON exactly as it goes over federation) for each of `destinations`
    /// other than this server. It is stored durably before this returns.
    pub async fn enqueue_pdu(
        &self,
        destinations: impl IntoIterator<Item = OwnedServerName>,
        pdu: &CanonicalJsonObject,
    ) -> Result<()> {
        let destinations: BTreeSet<OwnedServerName> =
            destinations.into_iter().filter(|destination| *destination != self.inner.own_name).collect();
        if destinations.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec(pdu).map_err(|e| Error::internal(format!("cannot serialise a PDU: {e}")))?;
        let seq = self.inner.db.next_id(QUEUE_COUNTER)?;
        let mut batch = Batch::new();
        PDUS.put(&mut batch, &seq, &json)?;
        for destination in &destinations {
            DESTINATION_PDUS.put(&mut batch, &(destination.to_string(), seq), &())?;
            PDU_DESTINATIONS.put(&mut batch, &(seq, destination.to_string()), &())?;
        }
        self.inner.db.write_async(batch).await?;
        for destination in destinations {
            self.inner.wake(destination);
        }
        Ok(())
    }

    /// Queues an EDU (`{"edu_type": …, "content": …}`) for `destination`, unless that is this
    /// server. It is stored durably before this returns.
    pub async fn enqueue_edu(&self, destination: OwnedServerName, edu: serde_json::Value) -> Result<()> {
        if destination == self.inner.own_name {
            return Ok(());
        }
        if !edu.is_object() {
            return Err(Error::internal("an EDU must be a JSON object"));
        }
        let json = serde_json::to_vec(&edu).map_err(|e| Error::internal(format!("cannot serialise an EDU: {e}")))?;
        let seq = self.inner.db.next_id(QUEUE_COUNTER)?;
        let mut batch = Batch::new();
        DESTINATION_EDUS.put(&mut batch, &(destination.to_string(), seq), &json)?;
        self.inner.db.write_async(batch).await?;
        self.inner.wake(destination);
        Ok(())
    }

    /// `server` has just shown it is up (it sent us a request): forget its backoff and retry
    /// its queue now.
    pub fn peer_is_back(&self, server: &ServerName) {
        if let Some(slot) = lock(&self.inner.workers).get(server) {
            slot.back.send_replace(());
        }
    }

    /// Starts a worker for every destination with queued rows (left over from before a
    /// restart), after removing PDU JSON no destination needs any more. Call once, inside the
    /// runtime, after start-up.
    pub fn start(&self) {
        match self.inner.remove_orphaned_pdus() {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "removed queued PDUs no destination needs"),
            Err(error) => tracing::warn!(%error, "cannot clean up the federation queue"),
        }
        match self.inner.queued_destinations() {
            Ok(destinations) => {
                if !destinations.is_empty() {
                    tracing::info!(destinations = destinations.len(), "resuming the federation queue");
                }
                for destination in destinations {
                    self.inner.wake(destination);
                }
            }
            Err(error) => tracing::error!(%error, "cannot read the federation queue; it resumes with the next event"),
        }
    }

    /// Stops every worker and waits for them. Queued rows stay stored for the next start;
    /// an interrupted transaction is sent again then.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> =
            lock(&self.inner.workers).values_mut().filter_map(|slot| slot.task.take()).collect();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "a federation sender worker failed");
            }
        }
    }
}

impl Inner {
    /// Makes sure `destination`'s worker will read its queue: tells a running worker, or
    /// spawns one.
    fn wake(self: &Arc<Self>, destination: OwnedServerName) {
        let mut workers = lock(&self.workers);
        // Checked under the lock that `shutdown` takes after setting it, so no worker is
        // spawned that `shutdown` would not wait for.
        if *self.stop.borrow() {
            return;
        }
        match workers.entry(destination) {
            Entry::Occupied(mut slot) => slot.get_mut().pending = true,
            Entry::Vacant(slot) => {
                let (back, back_seen) = watch::channel(());
                let worker = Worker { inner: self.clone(), destination: slot.key().clone(), retiring: false };
                let task = tokio::spawn(worker.run(back_seen));
                slot.insert(WorkerSlot { pending: false, back, task: Some(task) });
            }
        }
    }

    /// Every destination with queued rows, found with one seek per destination.
    fn queued_destinations(&self) -> Result<BTreeSet<OwnedServerName>> {
        let mut destinations = BTreeSet::new();
        for table in [DESTINATION_PDUS.name(), DESTINATION_EDUS.name()] {
            // Both tables have (String, u64) keys; only the keys are decoded.
            let keys: Table<(String, u64), (), Raw> = Table::new(table);
            let mut next = keys.iter_all(&self.db)?.next().transpose()?;
            while let Some(((destination, _), ())) = next {
                // The largest key of this destination, so the next entry is another one's.
                let after = (destination.clone(), u64::MAX);
                next = keys.iter_from(&self.db, &after, Direction::Forward)?.find(|entry| {
                    !matches!(entry, Ok(((other, _), ())) if *other == destination)
                }).transpose()?;
                match OwnedServerName::try_from(destination.as_str()) {
                    Ok(name) => {
                        destinations.insert(name);
                    }
                    Err(error) => tracing::error!(%destination, %error, "invalid destination in the federation queue"),
                }
            }
        }
        Ok(destinations)
    }

    /// Removes stored PDU JSON that no destination needs: left behind when the process
    /// stopped between a delivery and the clean-up after it.
    fn remove_orphaned_pdus(&self) -> Result<usize> {
        let mut batch = Batch::new();
        for entry in PDUS.iter_all(&self.db)? {
            let (seq, _) = entry?;
            if PDU_DESTINATIONS.iter_prefix(&self.db, &seq, Direction::Forward)?.next().transpose()?.is_none() {
                PDUS.delete(&mut batch, &seq);
            }
        }
        let removed = batch.len();
        if removed > 0 {
            self.db.write_buffered(batch)?;
        }
        Ok(removed)
    }

    /// The next transaction for `destination`: its oldest PDUs and EDUs, up to the spec's
    /// limits, in queue order.
    fn next_transaction(&self, destination: &ServerName) -> Result<Transaction> {
        let prefix = destination.to_string();
        let pdu_seqs: Vec<u64> = DESTINATION_PDUS
            .iter_prefix(&self.db, &prefix, Direction::Forward)?
            .take(MAX_PDUS_PER_TRANSACTION)
            .map(|entry| entry.map(|((_, seq), ())| seq))
            .collect::<Result<_, _>>()?;
        let mut pdus = Vec::with_capacity(pdu_seqs.len());
        for (seq, json) in pdu_seqs.iter().zip(PDUS.multi_get(&self.db, &pdu_seqs)?) {
            match json.map(raw_json).transpose() {
                Ok(Some(pdu)) => pdus.push(pdu),
                // Dropped with the rest of the transaction: it could never be sent.
                Ok(None) => tracing::error!(%destination, seq, "queued PDU has no stored JSON; dropped"),
                Err(error) => tracing::error!(%destination, seq, %error, "queued PDU is not JSON; dropped"),
            }
        }
        let mut edu_seqs = Vec::new();
        let mut edus = Vec::new();
        for entry in DESTINATION_EDUS.iter_prefix(&self.db, &prefix, Direction::Forward)?.take(MAX_EDUS_PER_TRANSACTION) {
            let ((_, seq), json) = entry?;
            edu_seqs.push(seq);
            match raw_json(json) {
                Ok(edu) => edus.push(RawJson::from_json(edu)),
                Err(error) => tracing::error!(%destination, seq, %error, "queued EDU is not JSON; dropped"),
            }
        }
        Ok(Transaction { id: transaction_id(&pdu_seqs, &edu_seqs), pdu_seqs, edu_seqs, pdus, edus })
    }

    /// Sends `transaction` to `destination`; `Ok` once the peer accepted it (2xx).
    async fn send(&self, destination: &ServerName, transaction: &Transaction) -> Result<()> {
        let mut request = send_transaction_message::v1::Request::new(
            transaction.id.clone(),
            self.own_name.clone(),
            MilliSecondsSinceUnixEpoch::now(),
        );
        request.pdus = transaction.pdus.clone();
        request.edus = transaction.edus.clone();
        let response = self.client.send(destination, request).await?;
        // The spec says a PDU the peer refused is not sent again.
        for (event_id, result) in response.pdus {
            if let Err(error) = result {
                tracing::debug!(%destination, %event_id, %error, "peer refused a PDU");
            }
        }
        Ok(())
    }

    /// Removes the rows `transaction` delivered, durably, then the JSON of PDUs no other
    /// destination needs.
    async fn remove_delivered(&self, destination: &ServerName, transaction: &Transaction) -> Result<()> {
        let destination = destination.to_string();
        let mut batch = Batch::new();
        for &seq in &transaction.pdu_seqs {
            DESTINATION_PDUS.delete(&mut batch, &(destination.clone(), seq));
            PDU_DESTINATIONS.delete(&mut batch, &(seq, destination.clone()));
        }
        for &seq in &transaction.edu_seqs {
            DESTINATION_EDUS.delete(&mut batch, &(destination.clone(), seq));
        }
        self.db.write_async(batch).await?;
        // Checked only after our own deletion committed: of two destinations finishing with
        // the same PDU at once, the later one to commit sees both deletions (both may remove
        // the JSON; removing it twice is harmless). The write need not be durable: what a
        // crash leaves behind, `start` removes.
        let mut orphans = Batch::new();
        for &seq in &transaction.pdu_seqs {
            if PDU_DESTINATIONS.iter_prefix(&self.db, &seq, Direction::Forward)?.next().transpose()?.is_none() {
                PDUS.delete(&mut orphans, &seq);
            }
        }
        if !orphans.is_empty() {
            self.db.write_buffered(orphans)?;
        }
        Ok(())
    }

    /// Whether the wait until the next retry is over (`false`: stop now).
    async fn wait(&self, delay: Duration, back: &mut watch::Receiver<()>) -> Wait {
        let mut stop = self.stop.subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => Wait::Elapsed,
            Ok(()) = back.changed() => Wait::PeerIsBack,
            _ = stop.wait_for(|stop| *stop) => Wait::Stop,
        }
    }

    /// Runs `future` unless `shutdown` comes first (`None`).
    async fn unless_stopped<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let mut stop = self.stop.subscribe();
        tokio::select! {
            output = future => Some(output),
            _ = stop.wait_for(|stop| *stop) => None,
        }
    }
}

enum Wait {
    Elapsed,
    PeerIsBack,
    Stop,
}

/// One destination's worker: delivers its queue, then exits. Removes its slot when it ends,
/// however it ends (even by a panic or the runtime shutting down), so the next enqueue spawns
/// a new one.
struct Worker {
    inner: Arc<Inner>,
    destination: OwnedServerName,
    /// Set once the worker has removed its slot itself.
    retiring: bool,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.retiring {
            lock(&self.inner.workers).remove(&self.destination);
        }
    }
}

impl Worker {
    async fn run(mut self, mut back: watch::Receiver<()>) {
        let inner = self.inner.clone();
        let destination = self.destination.clone();
        let mut failures: u32 = 0;
        let mut down = false;
        loop {
            if let Some(slot) = lock(&inner.workers).get_mut(&destination) {
                slot.pending = false;
            }
            let transaction = match inner.next_transaction(&destination) {
                Ok(transaction) => transaction,
                Err(error) => {
                    tracing::error!(%destination, %error, "cannot read the federation queue");
                    match inner.wait(inner.retry_initial, &mut back).await {
                        Wait::Stop => return,
                        Wait::Elapsed | Wait::PeerIsBack => continue,
                    }
                }
            };
            if transaction.is_empty() {
                if self.retire_if_idle() {
                    return;
                }
                continue;
            }
            // Retries send the same transaction (same rows, same ID) until the peer takes it.
            while transaction.has_payload() {
                // A `peer_is_back` from here on cuts the next backoff short.
                back.borrow_and_update();
                let Some(sent) = inner.unless_stopped(inner.send(&destination, &transaction)).await else { return };
                match sent {
                    Ok(()) => {
                        if down {
                            tracing::info!(%destination, "destination is reachable again; sending its queue");
                        }
                        down = false;
                        failures = 0;
                        break;
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        let delay = backoff(inner.retry_initial, inner.retry_max, failures);
                        if down {
                            tracing::debug!(%destination, %error, failures, ?delay, "transaction failed again");
                        } else {
                            tracing::info!(%destination, %error, ?delay, "destination is unreachable; retrying with backoff");
                            down = true;
                        }
                        match inner.wait(delay, &mut back).await {
                            Wait::Stop => return,
                            Wait::PeerIsBack => failures = 0,
                            Wait::Elapsed => {}
                        }
                    }
                }
            }
            while let Err(error) = inner.remove_delivered(&destination, &transaction).await {
                // Until this works the rows would be sent again; the peer ignores a repeated
                // transaction ID, so it is safe either way.
                tracing::error!(%destination, %error, "cannot remove delivered rows from the federation queue");
                if let Wait::Stop = inner.wait(inner.retry_initial, &mut back).await {
                    return;
                }
            }
        }
    }

    /// Removes the worker's slot unless rows were queued since it last read its queue.
    fn retire_if_idle(&mut self) -> bool {
        let mut workers = lock(&self.inner.workers);
        match workers.get_mut(&self.destination) {
            Some(slot) if slot.pending => false,
            _ => {
                workers.remove(&self.destination);
                self.retiring = true;
                true
            }
        }
    }
}

/// `initial`, doubled for each failure after the first, capped at `max`, ±10% jitter so that
/// destinations that failed together do not retry together.
fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let delay = initial.checked_mul(1 << doublings).unwrap_or(max).min(max);
    delay.mul_f64(rand::thread_rng().gen_range(0.9..=1.1))
}

/// A transaction ID unique to the rows it carries: the first and last sequence numbers for
/// people reading logs, and a digest of all of them, since a row committed late can join a
/// batch with the same ends.
fn transaction_id(pdu_seqs: &[u64], edu_seqs: &[u64]) -> OwnedTransactionId {
    let mut digest = Sha256::new();
    for seq in pdu_seqs {
        digest.update(b"p");
        digest.update(seq.to_be_bytes());
    }
    for seq in edu_seqs {
        digest.update(b"e");
        digest.update(seq.to_be_bytes());
    }
    let digest = digest.finalize();
    let first = pdu_seqs.iter().chain(edu_seqs).min().copied().unwrap_or(0);
    let last = pdu_seqs.iter().chain(edu_seqs).max().copied().unwrap_or(0);
    format!("{first}-{last}-{}", hex::encode(&digest[..8])).into()
}

fn raw_json(bytes: Vec<u8>) -> Result<Box<RawJsonValue>> {
    let json = String::from_utf8(bytes).map_err(|e| Error::internal(e.to_string()))?;
    RawJsonValue::from_string(json).map_err(|e| Error::internal(e.to_string()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent at every step, so a panic elsewhere leaves them usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
