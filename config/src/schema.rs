//! Metadata describing the configuration tree: key names, their `///` doc
//! comments, value kinds and example values.
//!
//! The metadata is emitted by [`config_section!`] next to the struct
//! definitions, so the docs shown in the generated example file, the set of
//! known keys used for unknown-key warnings and the way environment values are
//! interpreted can never drift from the code.

use std::path::PathBuf;

/// Metadata for one configuration key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldDoc {
    /// The key's name inside its section (e.g. `"burst"`).
    pub name: &'static str,
    /// The lines of the field's `///` doc comment, verbatim (each line usually
    /// starts with a space).
    pub doc: &'static [&'static str],
    /// What kind of value the key holds.
    pub kind: ValueKind,
    /// For keys that are unset by default: a TOML value shown (commented
    /// out) in the generated example file.
    pub example: Option<&'static str>,
}

impl FieldDoc {
    /// The doc comment as one string, lines trimmed and joined by `\n`.
    pub fn doc_text(&self) -> String {
        self.doc
            .iter()
            .map(|line| line.trim())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The kind of value a configuration key holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueKind {
    /// A string.
    String,
    /// A filesystem path (a string).
    Path,
    /// `true` or `false`.
    Bool,
    /// An integer.
    Integer,
    /// A floating-point number (integers are accepted too).
    Float,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// An array of values.
    List(&'static ValueKind),
    /// A value that may be absent (unset by default unless stated otherwise).
    Optional(&'static ValueKind),
    /// A nested table with its own keys.
    Section(&'static [FieldDoc]),
}

impl ValueKind {
    /// The kind with any [`ValueKind::Optional`] wrappers removed.
    pub fn without_optional(self) -> ValueKind {
        match self {
            ValueKind::Optional(inner) => inner.without_optional(),
            other => other,
        }
    }
}

/// Maps a Rust type used in the configuration tree to its [`ValueKind`].
pub trait ConfigType {
    /// The kind of value this type is configured with.
    const KIND: ValueKind;
}

macro_rules! impl_config_type {
    ($kind:ident: $($ty:ty),+) => {
        $(impl ConfigType for $ty {
            const KIND: ValueKind = ValueKind::$kind;
        })+
    };
}

impl_config_type!(String: String);
impl_config_type!(Path: PathBuf);
impl_config_type!(Bool: bool);
impl_config_type!(Integer: u8, u16, u32, u64, usize, i32, i64);
impl_config_type!(Float: f32, f64);

impl<T: ConfigType> ConfigType for Option<T> {
    const KIND: ValueKind = ValueKind::Optional(&T::KIND);
}

impl<T: ConfigType> ConfigType for Vec<T> {
    const KIND: ValueKind = ValueKind::List(&T::KIND);
}

/// What a dotted key path refers to in the configuration tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Lookup {
    /// A key of the tree, with its metadata.
    Known(&'static FieldDoc),
    /// Not part of the tree.
    Unknown,
}

/// Resolves a key path (already split on `.`) against a section's fields.
pub(crate) fn lookup<S: AsRef<str>>(fields: &'static [FieldDoc], path: &[S]) -> Lookup {
    let Some((first, rest)) = path.split_first() else {
        return Lookup::Unknown;
    };
    let Some(field) = fields.iter().find(|f| f.name == first.as_ref()) else {
        return Lookup::Unknown;
    };
    if rest.is_empty() {
        return Lookup::Known(field);
    }
    match field.kind.without_optional() {
        ValueKind::Section(sub) => lookup(sub, rest),
        _ => Lookup::Unknown,
    }
}

/// Every key of a section, recursively, as dotted paths (sections included).
pub(crate) fn collect_keys(fields: &'static [FieldDoc], prefix: &str, out: &mut Vec<String>) {
    for field in fields {
        let path = join_key(prefix, field.name);
        out.push(path.clone());
        if let ValueKind::Section(sub) = field.kind.without_optional() {
            collect_keys(sub, &path, out);
        }
    }
}

/// `prefix.name`, or just `name` at the root.
pub(crate) fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Declares a configuration section: a struct whose fields each carry a `///`
/// doc comment and a default value, plus (for keys unset by default) an
/// example value:
///
/// ```text
/// config_section! {
///     /// Section docs.
///     pub struct LogConfig {
///         /// Field docs.
///         pub level: String = "info".to_owned(),
///         /// Optional field docs.
///         pub file: Option<PathBuf> = None; example = "\"/var/log/myelin.log\"",
///     }
/// }
/// ```
///
/// Emits the struct (serde `Serialize`/`Deserialize`, `#[serde(default)]`),
/// its `Default` impl, `FIELDS`/`field_docs()` metadata built from the doc
/// comments, and a [`ConfigType`] impl so the section can be nested.
macro_rules! config_section {
    (@example) => { ::core::option::Option::None };
    (@example $example:literal) => { ::core::option::Option::Some($example) };
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                pub $field:ident : $ty:ty = $default:expr $(; example = $example:literal)?
            ),+ $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )+
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)+ }
            }
        }

        impl $name {
            /// Metadata (name, doc comment, kind, example) for every key of
            /// this section, in declaration order.
            pub const FIELDS: &'static [$crate::schema::FieldDoc] = &[$(
                $crate::schema::FieldDoc {
                    name: ::core::stringify!($field),
                    doc: &[$($doc),*],
                    kind: <$ty as $crate::schema::ConfigType>::KIND,
                    example: config_section!(@example $($example)?),
                },
            )+];

            /// Metadata (name, doc comment, kind, example) for every key of
            /// this section, in declaration order.
            pub const fn field_docs() -> &'static [$crate::schema::FieldDoc] {
                Self::FIELDS
            }
        }

        impl $crate::schema::ConfigType for $name {
            const KIND: $crate::schema::ValueKind = $crate::schema::ValueKind::Section(Self::FIELDS);
        }
    };
}
