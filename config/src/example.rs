//! The example configuration file, rendered from the field metadata (doc
//! comments, defaults, examples) so it cannot drift from the code.

use std::fmt::Write as _;

use crate::model::Config;
use crate::schema::{FieldDoc, ValueKind, join_key};

const HEADER: &str = "\
# Myelin homeserver configuration.
#
# This file is generated from the documentation comments in the myelin-config
# crate; regenerate it with
#   cargo run -p myelin -- generate-config > config/myelin.example.toml
#
# Every key is optional. Each key is shown with its default value; keys that
# are unset by default are commented out.
#
# Load order (later wins): built-in defaults, then this file (given with
# `--config FILE` or MYELIN_CONFIG=FILE), then environment variables named
# MYELIN_<KEY> with \"__\" between nesting levels, for example
# MYELIN_SERVER_NAME=example.org or MYELIN_LOG__FORMAT=json.
# Unknown keys are reported as warnings at startup and otherwise ignored.
";

impl Config {
    /// The example configuration file: every key with its doc comment (as
    /// `#` lines) and its default value; keys unset by default appear
    /// commented out with an example value. Parsing it yields
    /// `Config::default()`.
    pub fn example_toml() -> String {
        render_example(false)
    }
}

/// Renders the example file. With `activate_examples`, keys that are unset
/// by default are written uncommented with their example value (used by
/// tests to check the examples are valid).
pub(crate) fn render_example(activate_examples: bool) -> String {
    let defaults = toml::Table::try_from(Config::default())
        .expect("the default config serializes to a TOML table");
    let mut out = String::from(HEADER);
    render_section(&mut out, Config::FIELDS, &defaults, "", activate_examples);
    out
}

fn render_section(
    out: &mut String,
    fields: &'static [FieldDoc],
    values: &toml::Table,
    path: &str,
    activate_examples: bool,
) {
    let section_of = |field: &FieldDoc| match field.kind.without_optional() {
        ValueKind::Section(sub) => Some(sub),
        _ => None,
    };

    // Plain keys first: in TOML they belong to the table header above them.
    for field in fields.iter().filter(|f| section_of(f).is_none()) {
        out.push('\n');
        write_doc(out, field);
        match values.get(field.name) {
            Some(value) => {
                let _ = writeln!(out, "{} = {value}", field.name);
            }
            None => {
                let example = field.example.unwrap_or_else(|| placeholder(field.kind));
                let comment = if activate_examples { "" } else { "# " };
                let _ = writeln!(out, "{comment}{} = {example}", field.name);
            }
        }
    }

    for field in fields {
        let Some(sub) = section_of(field) else {
            continue;
        };
        let sub_path = join_key(path, field.name);
        let empty = toml::Table::new();
        let sub_values = values
            .get(field.name)
            .and_then(toml::Value::as_table)
            .unwrap_or(&empty);
        out.push('\n');
        write_doc(out, field);
        let _ = writeln!(out, "[{sub_path}]");
        render_section(out, sub, sub_values, &sub_path, activate_examples);
    }
}

fn write_doc(out: &mut String, field: &FieldDoc) {
    for line in field.doc {
        let line = line.trim_end();
        let _ = writeln!(out, "#{line}");
    }
}

/// A stand-in value for an unset key without an explicit example.
fn placeholder(kind: ValueKind) -> &'static str {
    match kind.without_optional() {
        ValueKind::Bool => "false",
        ValueKind::Integer => "0",
        ValueKind::Float => "0.0",
        ValueKind::List(_) => "[]",
        _ => "\"...\"",
    }
}
