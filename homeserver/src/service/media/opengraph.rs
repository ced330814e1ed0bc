//! OpenGraph data from an HTML page, sans-I/O: bytes and headers in, `og:*` properties out.
//!
//! The page is decoded in its declared character set (byte order mark, then the
//! `Content-Type` charset, then a `<meta charset>` in its first 1,024 bytes, then UTF-8) and
//! run through html5ever's tokenizer, which reads real-world HTML as browsers do. No tree is
//! built: the properties live in a handful of tags (`<meta>`, `<title>`, `<img>`), so a flat
//! pass over the tokens finds them with no memory spent on a DOM.
//!
//! Pages without OpenGraph fall back as Synapse's previews do: `<title>` for `og:title`,
//! `<meta name="description">` for `og:description`, and the largest (else the first) `<img>`
//! for `og:image`.

use std::cell::RefCell;

use html5ever::{
    LocalName,
    tendril::StrTendril,
    tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts, states::RawKind},
};
use reqwest::Url;
use serde_json::{Map, Value};

/// Property names and values longer than these are dropped (as Synapse does), so a page
/// cannot make the cached preview huge.
const MAX_NAME_CHARS: usize = 50;
const MAX_VALUE_CHARS: usize = 1_000;
/// At most this many properties are kept per page.
const MAX_PROPERTIES: usize = 50;
/// How far into the page a `<meta charset>` is looked for (the HTML standard's prescan).
const CHARSET_PRESCAN_BYTES: usize = 1_024;

/// Whether a `Content-Type` is an HTML page (previewed from its tags).
pub fn is_html(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence == "text/html" || essence == "application/xhtml+xml"
}

/// Whether a `Content-Type` is an image (previewed as itself).
pub fn is_image(content_type: &str) -> bool {
    essence(content_type).starts_with("image/")
}

fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The OpenGraph properties of `body`, an HTML page fetched from `page_url` with
/// `content_type`. `og:image` is an absolute URL (resolved against the page), not fetched.
pub fn parse(body: &[u8], content_type: &str, page_url: &Url) -> Map<String, Value> {
    let text = decode(body, content_type);
    let collected = collect(&text);
    let mut og = Map::new();
    for (name, value) in collected.properties {
        let value = collapse_whitespace(&value);
        if og.len() < MAX_PROPERTIES && name.chars().count() <= MAX_NAME_CHARS && value.chars().count() <= MAX_VALUE_CHARS {
            og.entry(name).or_insert(Value::String(value));
        }
    }
    let mut fallback = |name: &str, value: Option<String>| {
        if !og.contains_key(name)
            && let Some(value) = value.map(|v| collapse_whitespace(&v)).filter(|v| !v.is_empty())
        {
            og.insert(name.to_owned(), Value::String(value.chars().take(MAX_VALUE_CHARS).collect()));
        }
    };
    fallback("og:title", collected.title);
    fallback("og:description", collected.description);
    fallback("og:image", collected.images.best());
    // The image is only of use as an absolute http(s) URL; anything else is dropped.
    let image = og.get("og:image").and_then(Value::as_str).and_then(|src| page_url.join(src).ok());
    match image.filter(|url| matches!(url.scheme(), "http" | "https")) {
        Some(url) => og.insert("og:image".to_owned(), Value::String(url.to_string())),
        None => og.remove("og:image"),
    };
    // Sizes are numbers in Synapse's answers and in clients' expectations.
    for name in ["og:image:width", "og:image:height"] {
        if let Some(number) = og.get(name).and_then(Value::as_str).and_then(|v| v.trim().parse::<u64>().ok()) {
            og.insert(name.to_owned(), Value::from(number));
        }
    }
    og
}

/// `body` as text in its character set; undecodable bytes become U+FFFD.
fn decode(body: &[u8], content_type: &str) -> String {
    let declared = charset_parameter(content_type).or_else(|| meta_charset(&body[..body.len().min(CHARSET_PRESCAN_BYTES)]));
    let encoding = declared.and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes())).unwrap_or(encoding_rs::UTF_8);
    // `decode` lets a byte order mark override the declaration, as browsers do.
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

/// The `charset` parameter of a `Content-Type` value.
fn charset_parameter(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("charset")).then(|| value.trim().trim_matches(['"', '\'']).to_owned())
    })
}

/// The label of a `<meta charset=…>` or `<meta http-equiv content="…; charset=…">` in the
/// prescanned bytes (ASCII-compatible encodings are all that can be declared this way).
fn meta_charset(head: &[u8]) -> Option<String> {
    let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
    lower.match_indices("<meta").find_map(|(start, _)| {
        let tag = &lower[start..lower[start..].find('>').map_or(lower.len(), |end| start + end)];
        let at = tag.find("charset=")? + "charset=".len();
        let label: String = tag[at..]
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| !matches!(c, '"' | '\'' | ';' | '/' | '>') && !c.is_whitespace())
            .collect();
        (!label.is_empty()).then_some(label)
    })
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What one pass over the tokens finds.
#[derive(Default)]
struct Collected {
    /// `og:*` properties in document order (the first of a name wins).
    properties: Vec<(String, String)>,
    title: Option<String>,
    description: Option<String>,
    images: Images,
}

/// `<img>` candidates for a page without `og:image`.
#[derive(Default)]
struct Images {
    first: Option<String>,
    /// The largest image with declared dimensions over 10 × 10 (smaller ones are icons and
    /// tracking pixels), and its area.
    largest: Option<(u64, String)>,
}

impl Images {
    fn offer(&mut self, src: String, width: Option<u64>, height: Option<u64>) {
        if src.trim().is_empty() || src.trim_start().starts_with("data:") {
            return;
        }
        if let (Some(width), Some(height)) = (width, height)
            && width > 10
            && height > 10
            && self.largest.as_ref().is_none_or(|(area, _)| width * height > *area)
        {
            self.largest = Some((width * height, src.clone()));
        }
        self.first.get_or_insert(src);
    }

    fn best(self) -> Option<String> {
        self.largest.map(|(_, src)| src).or(self.first)
    }
}

struct Sink {
    found: RefCell<Collected>,
    /// Text of the first `<title>` while inside it.
    in_title: RefCell<Option<String>>,
}

fn attribute(tag: &html5ever::tokenizer::Tag, name: &str) -> Option<String> {
    tag.attrs.iter().find(|a| a.name.local.as_ref() == name).map(|a| a.value.to_string())
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        match token {
            Token::TagToken(tag) if tag.kind == TagKind::StartTag => {
                self.start_tag(&tag);
                // What a tree builder would tell the tokenizer: the content of these elements is
                // text, not markup, so a `<meta>` inside a script is not taken for a tag.
                let name: &LocalName = &tag.name;
                match name.as_ref() {
                    "title" | "textarea" => return TokenSinkResult::RawData(RawKind::Rcdata),
                    "script" => return TokenSinkResult::RawData(RawKind::ScriptData),
                    "style" | "xmp" | "iframe" | "noembed" | "noframes" => return TokenSinkResult::RawData(RawKind::Rawtext),
                    "plaintext" => return TokenSinkResult::Plaintext,
                    _ => {}
                }
            }
            Token::TagToken(tag) if tag.name.as_ref() == "title" => {
                if let Some(title) = self.in_title.borrow_mut().take() {
                    self.found.borrow_mut().title.get_or_insert(title);
                }
            }
            Token::CharacterTokens(text) => {
                if let Some(title) = self.in_title.borrow_mut().as_mut() {
                    title.push_str(&text);
                }
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

impl Sink {
    fn start_tag(&self, tag: &html5ever::tokenizer::Tag) {
        let mut found = self.found.borrow_mut();
        match tag.name.as_ref() {
            "meta" => {
                let Some(content) = attribute(tag, "content") else { return };
                // Some sites put OpenGraph in `name` rather than `property`.
                let key = attribute(tag, "property").or_else(|| attribute(tag, "name")).map(|k| k.trim().to_ascii_lowercase());
                match key.as_deref() {
                    Some(key) if key.starts_with("og:") => found.properties.push((key.to_owned(), content)),
                    Some("description") if found.description.is_none() => found.description = Some(content),
                    _ => {}
                }
            }
            "title" if found.title.is_none() => *self.in_title.borrow_mut() = Some(String::new()),
            "img" => {
                let dimension = |name: &str| attribute(tag, name).and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(src) = attribute(tag, "src") {
                    found.images.offer(src, dimension("width"), dimension("height"));
                }
            }
            _ => {}
        }
    }
}

fn collect(text: &str) -> Collected {
    let sink = Sink { found: RefCell::default(), in_title: RefCell::default() };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(text));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    // An unclosed `<title>` still names the page.
    let sink = tokenizer.sink;
    let mut found = sink.found.into_inner();
    if let Some(title) = sink.in_title.into_inner() {
        found.title.get_or_insert(title);
    }
    found
}

#[cfg(test)]
mod tests;
