//! Myelin's WASM plugin host. A placeholder today: see README.md for what it will hold.
//!
//! The one thing fixed now is the capability vocabulary, because the config crate and the
//! homeserver will both name it when plugins land.

/// What a plugin may be granted. Each must be switched on per plugin in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    SendAsBot,
    Redact,
    Moderate,
    ReadState,
    KeyValue,
    Http,
    Timers,
}

impl Capability {
    /// The name used in configuration files.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::SendAsBot => "send_as_bot",
            Self::Redact => "redact",
            Self::Moderate => "moderate",
            Self::ReadState => "read_state",
            Self::KeyValue => "key_value",
            Self::Http => "http",
            Self::Timers => "timers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Capability;

    #[test]
    fn config_names_are_distinct() {
        let all = [
            Capability::SendAsBot,
            Capability::Redact,
            Capability::Moderate,
            Capability::ReadState,
            Capability::KeyValue,
            Capability::Http,
            Capability::Timers,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.config_name()).collect();
        assert_eq!(names.len(), all.len());
    }
}
