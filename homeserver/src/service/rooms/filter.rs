//! Matching events against a client's `RoomEventFilter`.

use ruma::api::client::filter::{RoomEventFilter, UrlFilter};
use serde_json::Value;

use super::StoredEvent;

/// `*` matches any run of characters, as the spec allows in type filters.
fn type_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == event_type,
        Some((prefix, rest)) => {
            event_type.starts_with(prefix)
                && (rest.is_empty() || (0..=event_type.len() - prefix.len()).any(|i| {
                    event_type.is_char_boundary(prefix.len() + i) && type_matches(rest, &event_type[prefix.len() + i..])
                }))
        }
    }
}

pub fn event_matches(filter: &RoomEventFilter, event: &StoredEvent) -> bool {
    fields_match(filter, event.event_type(), event.sender(), event.content().get("url").is_some_and(Value::is_string))
}

/// The filter's checks on what they read of an event: its type, its sender and whether its
/// content has a `url`. The search index keeps these per event instead of loading it.
pub fn fields_match(filter: &RoomEventFilter, event_type: &str, sender: &str, has_url: bool) -> bool {
    if filter.not_types.iter().any(|pattern| type_matches(pattern, event_type)) {
        return false;
    }
    if let Some(types) = &filter.types
        && !types.iter().any(|pattern| type_matches(pattern, event_type))
    {
        return false;
    }
    if filter.not_senders.iter().any(|s| s.as_str() == sender) {
        return false;
    }
    if let Some(senders) = &filter.senders
        && !senders.iter().any(|s| s.as_str() == sender)
    {
        return false;
    }
    match filter.url_filter {
        Some(UrlFilter::EventsWithUrl) => has_url,
        Some(UrlFilter::EventsWithoutUrl) => !has_url,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::type_matches;

    #[test]
    fn wildcards() {
        assert!(type_matches("m.room.*", "m.room.message"));
        assert!(type_matches("*", "anything"));
        assert!(type_matches("m.*.message", "m.room.message"));
        assert!(!type_matches("m.room.*", "m.reaction"));
        assert!(type_matches("m.room.message", "m.room.message"));
        assert!(!type_matches("m.room.message", "m.room.messages"));
    }
}
