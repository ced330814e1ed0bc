use reqwest::Url;
use serde_json::json;

use super::*;

fn page() -> Url {
    Url::parse("https://example.org/articles/one.html").expect("a URL")
}

#[test]
fn opengraph_properties_win_and_relative_images_are_resolved() {
    let html = br#"<!doctype html><html><head>
        <title>Plain title</title>
        <meta property="og:title" content="  The   OG title ">
        <meta property="og:description" content="What it is about">
        <meta name="description" content="ignored: og:description is there">
        <meta property="og:image" content="/img/cover.png">
        <meta property="og:image:width" content="640"><meta property="og:image:height" content="480">
        <meta property="og:site_name" content="Example">
        <meta property="og:title" content="a second og:title is ignored">
        <script>document.write('<meta property="og:url" content="https://evil.example/">')</script>
        </head><body><img src="other.png" width="900" height="900"></body></html>"#;
    let og = parse(html, "text/html", &page());
    assert_eq!(
        Value::Object(og),
        json!({
            "og:title": "The OG title",
            "og:description": "What it is about",
            "og:image": "https://example.org/img/cover.png",
            "og:image:width": 640,
            "og:image:height": 480,
            "og:site_name": "Example",
        })
    );
}

#[test]
fn title_description_and_image_fall_back_to_plain_html() {
    let html = br#"<html><head><title>Caf&eacute; &amp; <b>friends</b></title>
        <meta name="Description" content="A place"></head>
        <body><img src="data:image/png;base64,AAAA"><img src="icon.png" width="8" height="8">
        <img src="small.jpg" width="100" height="100"><img src="big.jpg" width="400" height="300"></body></html>"#;
    let og = parse(html, "text/html; charset=utf-8", &page());
    assert_eq!(og["og:title"], "Café & <b>friends</b>", "title content is text, entities decoded");
    assert_eq!(og["og:description"], "A place");
    assert_eq!(og["og:image"], "https://example.org/articles/big.jpg", "the largest image over 10x10");

    let og = parse(b"<p><img src='//cdn.example.net/a.gif'>", "text/html", &page());
    assert_eq!(og["og:image"], "https://cdn.example.net/a.gif", "else the first image");
    assert!(!og.contains_key("og:title"));
}

#[test]
fn the_declared_charset_is_honoured() {
    // "Café" in ISO-8859-1 (decoded as windows-1252, as the encoding standard says).
    let latin1 = b"<title>Caf\xe9</title>";
    assert_eq!(parse(latin1, "text/html; charset=ISO-8859-1", &page())["og:title"], "Café");
    let meta = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"><title>Caf\xe9</title>";
    assert_eq!(parse(meta, "text/html", &page())["og:title"], "Café");
    let meta = b"<meta charset='shift_jis'><title>\x93\xfa\x96\x7b</title>";
    assert_eq!(parse(meta, "text/html", &page())["og:title"], "日本");
    // A byte order mark overrides the declaration.
    assert_eq!(parse(b"\xef\xbb\xbf<title>Caf\xc3\xa9</title>", "text/html; charset=latin1", &page())["og:title"], "Café");
    // Undeclared: UTF-8, with invalid bytes replaced rather than failing.
    assert_eq!(parse(b"<title>ok\xff</title>", "text/html", &page())["og:title"], "ok\u{fffd}");
}

#[test]
fn hostile_values_are_bounded() {
    let long = "x".repeat(2_000);
    let mut html = format!("<meta property='og:description' content='{long}'><meta property='og:{long}' content='v'>");
    for i in 0..100 {
        html.push_str(&format!("<meta property='og:n{i}' content='{i}'>"));
    }
    html.push_str("<meta property='og:image' content='javascript:alert(1)'><title>unclosed");
    let og = parse(html.as_bytes(), "text/html", &page());
    assert!(!og.contains_key("og:description"), "an overlong value is dropped");
    assert_eq!(og.len(), MAX_PROPERTIES + 1, "at most {MAX_PROPERTIES} properties, plus the fallback title");
    assert!(!og.contains_key("og:image"), "only http(s) images are kept");
    assert_eq!(og["og:title"], "unclosed");
}

#[test]
fn content_types() {
    assert!(is_html("text/html; charset=utf-8") && is_html("application/xhtml+xml") && is_html("TEXT/HTML"));
    assert!(!is_html("text/plain"));
    assert!(is_image("image/png") && !is_image("application/octet-stream"));
}
