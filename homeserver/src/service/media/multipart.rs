//! The `multipart/mixed` body of `/_matrix/federation/v1/media/download`: a JSON metadata part
//! (`{}` today), then the file, or a `Location` header where the file can be fetched.
//!
//! Both directions stream: the writer gives the bytes around the file, and the reader takes the
//! answer chunk by chunk and hands out file bytes as they come, holding back only what could be
//! the start of the closing delimiter. Sans-I/O, so it is tested on plain byte slices.

/// How many bytes may come before the file's first byte (preamble, metadata part, headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A random boundary for an answer we send.
pub fn new_boundary() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The bytes before the file: the metadata part and the file part's headers.
pub fn head(boundary: &str, content_type: &str, content_disposition: &str) -> String {
    format!(
        "\r\n--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n\
         Content-Type: {content_type}\r\nContent-Disposition: {content_disposition}\r\n\r\n"
    )
}

/// The bytes after the file.
pub fn tail(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}

/// The boundary of a `multipart/mixed` content type (`multipart/mixed; boundary=abc`, quoted
/// or not); `None` for any other type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("boundary") && !value.is_empty()).then(|| value.to_owned())
    })
}

/// What the second part holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePart {
    /// The file follows, with these headers.
    File { content_type: Option<String>, content_disposition: Option<String> },
    /// The file is to be fetched from this URL.
    Location(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the metadata and file headers are longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLong,
    #[error("malformed part headers")]
    BadHeaders,
    #[error("the answer ended before its closing boundary")]
    Truncated,
}

/// What one [`MultipartReader::push`] yields.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The file part's headers, once, when they are complete.
    pub part: Option<FilePart>,
    /// File bytes that are certainly content.
    pub data: Vec<u8>,
}

enum Phase {
    Head,
    Body,
    Done,
}

/// Reads a federation media answer as it arrives.
pub struct MultipartReader {
    /// `\r\n--boundary`: what ends every part.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    phase: Phase,
}

impl MultipartReader {
    pub fn new(boundary: &str) -> Self {
        Self { delimiter: format!("\r\n--{boundary}").into_bytes(), buf: Vec::new(), phase: Phase::Head }
    }

    /// Takes the next bytes of the answer.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Progress, MultipartError> {
        self.buf.extend_from_slice(chunk);
        let mut progress = Progress::default();
        if let Phase::Head = self.phase {
            match self.parse_head()? {
                Some((part, consumed)) => {
                    self.buf.drain(..consumed);
                    self.phase = if matches!(part, FilePart::Location(_)) { Phase::Done } else { Phase::Body };
                    progress.part = Some(part);
                }
                None if self.buf.len() > MAX_HEAD_BYTES => return Err(MultipartError::HeadTooLong),
                None => return Ok(progress),
            }
        }
        if let Phase::Body = self.phase {
            match find(&self.buf, &self.delimiter) {
                Some(end) => {
                    self.buf.truncate(end);
                    progress.data = std::mem::take(&mut self.buf);
                    self.phase = Phase::Done;
                }
                None => {
                    // The last bytes may be the start of the delimiter: keep them for later.
                    let keep = (self.delimiter.len() - 1).min(self.buf.len());
                    let tail = self.buf.split_off(self.buf.len() - keep);
                    progress.data = std::mem::replace(&mut self.buf, tail);
                }
            }
        }
        if let Phase::Done = self.phase {
            self.buf.clear();
        }
        Ok(progress)
    }

    /// Called at the end of the answer: fails unless the file part was complete.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match self.phase {
            Phase::Done => Ok(()),
            _ => Err(MultipartError::Truncated),
        }
    }

    /// The file part's headers and the offset of its first content byte, once all of that
    /// has arrived.
    fn parse_head(&self) -> Result<Option<(FilePart, usize)>, MultipartError> {
        let buf = &self.buf[..];
        let open = &self.delimiter[2..];
        // The first delimiter may come without its CRLF when there is no preamble.
        let metadata_start = if buf.starts_with(open) {
            open.len()
        } else if buf.len() < open.len() && open.starts_with(buf) {
            return Ok(None);
        } else {
            match find(buf, &self.delimiter) {
                Some(at) => at + self.delimiter.len(),
                None => return Ok(None),
            }
        };
        let Some((_, metadata_body)) = part_headers(buf, metadata_start)? else { return Ok(None) };
        let Some(metadata_end) = find(&buf[metadata_body..], &self.delimiter).map(|at| metadata_body + at) else {
            return Ok(None);
        };
        let Some((headers, content_start)) = part_headers(buf, metadata_end + self.delimiter.len())? else {
            return Ok(None);
        };
        Ok(Some((file_part(headers)?, content_start)))
    }
}

/// From just after a delimiter: skips the rest of its line, then reads header lines up to the
/// empty line. Returns the headers and where the part's content starts, or `None` if more bytes
/// are needed.
fn part_headers(buf: &[u8], from: usize) -> Result<Option<(Headers, usize)>, MultipartError> {
    let Some(mut line_start) = buf.get(from..).and_then(|rest| rest.iter().position(|b| *b == b'\n')).map(|at| from + at + 1)
    else {
        return Ok(None);
    };
    let mut headers = Vec::new();
    loop {
        let Some(line_end) = buf[line_start..].iter().position(|b| *b == b'\n').map(|at| line_start + at) else {
            return Ok(None);
        };
        let line = buf[line_start..line_end].strip_suffix(b"\r").unwrap_or(&buf[line_start..line_end]);
        if line.is_empty() {
            return Ok(Some((headers, line_end + 1)));
        }
        let line = std::str::from_utf8(line).map_err(|_| MultipartError::BadHeaders)?;
        let (name, value) = line.split_once(':').ok_or(MultipartError::BadHeaders)?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        line_start = line_end + 1;
    }
}

/// Header names (lowercased) and values, in order.
type Headers = Vec<(String, String)>;

fn file_part(headers: Headers) -> Result<FilePart, MultipartError> {
    let mut content_type = None;
    let mut content_disposition = None;
    for (name, value) in headers {
        match name.as_str() {
            "location" => return Ok(FilePart::Location(value)),
            "content-type" => content_type = Some(value),
            "content-disposition" => content_disposition = Some(value),
            _ => {}
        }
    }
    Ok(FilePart::File { content_type, content_disposition })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::{FilePart, MultipartError, MultipartReader, boundary_of, head, tail};

    #[test]
    fn boundaries_of_content_types() {
        assert_eq!(boundary_of("multipart/mixed; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(boundary_of("Multipart/Mixed;charset=x; Boundary=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary_of("multipart/mixed"), None);
        assert_eq!(boundary_of("image/png; boundary=abc"), None);
    }

    /// Feeds `body` in chunks of `size` bytes; returns the part and the file bytes.
    fn read(boundary: &str, body: &[u8], size: usize) -> Result<(Option<FilePart>, Vec<u8>), MultipartError> {
        let mut reader = MultipartReader::new(boundary);
        let mut part = None;
        let mut data = Vec::new();
        for chunk in body.chunks(size) {
            let progress = reader.push(chunk)?;
            if progress.part.is_some() {
                assert!(part.is_none(), "the part is reported once");
                part = progress.part;
            }
            data.extend(progress.data);
        }
        reader.finish()?;
        Ok((part, data))
    }

    #[test]
    fn reads_what_the_writer_writes_in_any_chunking() {
        let file: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let boundary = "abc123";
        let mut body = head(boundary, "image/png", "inline; filename=\"a.png\"").into_bytes();
        body.extend(&file);
        // A near-miss of the delimiter inside the content must stay content.
        body.extend(b"\r\n--abc12");
        body.extend(tail(boundary).as_bytes());
        let mut expected = file.clone();
        expected.extend(b"\r\n--abc12");
        for size in [1, 2, 7, 13, 64, 1000, body.len()] {
            let (part, data) = read(boundary, &body, size).unwrap();
            assert_eq!(
                part,
                Some(FilePart::File {
                    content_type: Some("image/png".to_owned()),
                    content_disposition: Some("inline; filename=\"a.png\"".to_owned())
                })
            );
            assert_eq!(data, expected, "chunks of {size}");
        }
    }

    #[test]
    fn synapse_style_answers_without_preamble_crlf_and_with_bare_lf() {
        let body = b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\ncontent-type: text/plain\n\nhi\r\n--b--";
        let (part, data) = read("b", body, 3).unwrap();
        assert_eq!(part, Some(FilePart::File { content_type: Some("text/plain".to_owned()), content_disposition: None }));
        assert_eq!(data, b"hi");
    }

    #[test]
    fn location_answers() {
        let body = b"\r\n--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--b--";
        let (part, data) = read("b", body, 5).unwrap();
        assert_eq!(part, Some(FilePart::Location("https://cdn.example/x".to_owned())));
        assert!(data.is_empty());
    }

    #[test]
    fn truncated_and_malformed_answers_are_errors() {
        let mut body = head("b", "text/plain", "attachment").into_bytes();
        body.extend(b"partial content");
        assert_eq!(read("b", &body, 4), Err(MultipartError::Truncated));
        assert_eq!(read("b", b"\r\n--b\r\n\r\n{}\r\n--b\r\nno colon here\r\n\r\n", 100), Err(MultipartError::BadHeaders));
        let endless = vec![b'x'; 70 * 1024];
        assert_eq!(read("b", &endless, 4096), Err(MultipartError::HeadTooLong));
    }
}
