//! Finds the JSON path (`content.body`, `devices[2]`) at a position in a document.
//!
//! Ruma deserialises request bodies itself, and serde's type errors give only a line and a
//! column ("invalid type: integer `5`, expected a string at line 1 column 50"). To tell the
//! client *which field* is wrong, we walk the raw text up to that position and keep track of the
//! keys and indices we are inside.

enum Frame {
    Object { key: Option<String>, expecting_key: bool },
    Array { index: usize },
}

/// The byte offset of a 1-based (line, column) position, as serde_json reports them.
fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let mut current_line = 1;
    let mut line_start = 0;
    for (i, byte) in text.iter().enumerate() {
        if current_line == line {
            break;
        }
        if *byte == b'\n' {
            current_line += 1;
            line_start = i + 1;
        }
    }
    (line_start + column).min(text.len())
}

/// The path of the value being read at (line, column), or `None` at the top level.
pub fn path_at(text: &[u8], line: usize, column: usize) -> Option<String> {
    let end = offset_of(text, line, column);
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match text[i] {
            b'{' => stack.push(Frame::Object { key: None, expecting_key: true }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, expecting_key: true }) = stack.last_mut() {
                    let raw = &text[start..i.min(text.len())];
                    *key = Some(serde_json::from_slice::<String>(&[b"\"", raw, b"\""].concat())
                        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()));
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), expecting_key: false } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
            Frame::Object { .. } => break,
        }
    }
    (!path.is_empty()).then_some(path)
}

/// For errors raised after a whole object was buffered (ruma's `#[serde(flatten)]` bodies,
/// such as `/login`), the position points at the end of the object. Then the value serde
/// complains about ("invalid type: integer `5`, …") is looked up in the document instead; the
/// path is returned only when exactly one value matches.
pub fn path_of_unexpected_value(text: &[u8], message: &str) -> Option<String> {
    let unexpected = message.strip_prefix("invalid type: ")?.split(", expected").next()?;
    let document: serde_json::Value = serde_json::from_slice(text).ok()?;
    let mut matches = Vec::new();
    collect_matching(&document, unexpected, &mut String::new(), &mut matches);
    if matches.len() == 1 { matches.pop() } else { None }
}

fn describes(value: &serde_json::Value, unexpected: &str) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => unexpected == "null",
        Value::Bool(b) => unexpected == format!("boolean `{b}`"),
        Value::Number(n) => {
            unexpected == format!("integer `{n}`") || unexpected == format!("floating point `{n}`")
        }
        Value::String(s) => unexpected == format!("string {s:?}"),
        Value::Array(_) => unexpected == "sequence",
        Value::Object(_) => unexpected == "map",
    }
}

fn collect_matching(value: &serde_json::Value, unexpected: &str, path: &mut String, out: &mut Vec<String>) {
    if !path.is_empty() && describes(value, unexpected) {
        out.push(path.clone());
    }
    let len = path.len();
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                collect_matching(child, unexpected, path, out);
                path.truncate(len);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push_str(&format!("[{index}]"));
                collect_matching(child, unexpected, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{path_at, path_of_unexpected_value};

    #[test]
    fn finds_the_unique_value_serde_complains_about() {
        let body = br#"{"type": "m.login.password", "user": "a", "password": 5}"#;
        let message = "invalid type: integer `5`, expected a string at line 1 column 51";
        assert_eq!(path_of_unexpected_value(body, message).as_deref(), Some("password"));
        let ambiguous = br#"{"a": 5, "b": {"c": 5}}"#;
        assert_eq!(path_of_unexpected_value(ambiguous, message), None);
        assert_eq!(
            path_of_unexpected_value(br#"{"x": {"y": [true]}}"#, "invalid type: boolean `true`, expected a string").as_deref(),
            Some("x.y[0]")
        );
    }

    fn path_of_error<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> Option<String> {
        let error = serde_json::from_str::<T>(json).unwrap_err();
        path_at(json.as_bytes(), error.line(), error.column())
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Login {
        r#type: String,
        password: String,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Nested {
        content: Content,
        devices: Vec<String>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Content {
        body: String,
    }

    #[test]
    fn names_a_top_level_field() {
        assert_eq!(path_of_error::<Login>(r#"{"type": "m.login.password", "password": 5}"#).as_deref(), Some("password"));
    }

    #[test]
    fn names_nested_fields_and_array_items() {
        assert_eq!(
            path_of_error::<Nested>(r#"{"devices": [], "content": {"body": true}}"#).as_deref(),
            Some("content.body")
        );
        assert_eq!(
            path_of_error::<Nested>("{\"content\": {\"body\": \"x\"},\n \"devices\": [\"a\", 7]}").as_deref(),
            Some("devices[1]")
        );
    }

    #[test]
    fn keys_with_escapes_and_braces_in_strings() {
        assert_eq!(path_of_error::<Login>(r#"{"type": "{[\"", "password": []}"#).as_deref(), Some("password"));
    }

    #[test]
    fn top_level_errors_have_no_path() {
        assert_eq!(path_of_error::<Login>("5"), None);
    }
}
