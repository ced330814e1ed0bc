//! Per-user wake-ups for long-polling `/sync`.
//!
//! Every user with a waiting sync has a `watch` channel carrying the latest stream position
//! that concerns them. Appends notify exactly the users who can see the event, so a waiting
//! sync wakes only when it has something to return, and nothing ever polls the database.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

#[derive(Clone, Default)]
pub struct Notifier {
    users: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Notifier {
    /// A receiver that changes whenever something new concerns `user_id`.
    pub fn subscribe(&self, user_id: &str) -> watch::Receiver<u64> {
        let Ok(mut users) = self.users.lock() else {
            // A poisoned map only costs wake-ups: the caller's timeout still ends the wait.
            return watch::channel(0).1;
        };
        users.entry(user_id.to_owned()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    pub fn notify<'a>(&self, user_ids: impl IntoIterator<Item = &'a str>, position: u64) {
        let Ok(users) = self.users.lock() else { return };
        for user_id in user_ids {
            if let Some(sender) = users.get(user_id) {
                sender.send_replace(position);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Notifier;

    #[tokio::test]
    async fn only_the_named_users_wake() {
        let notifier = Notifier::default();
        let mut alice = notifier.subscribe("@alice:x");
        let bob = notifier.subscribe("@bob:x");
        notifier.notify(["@alice:x"], 7);
        alice.changed().await.unwrap();
        assert_eq!(*alice.borrow(), 7);
        assert!(!bob.has_changed().unwrap());
    }
}
