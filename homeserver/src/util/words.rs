//! Words for the text indexes (message search and the user directory).
//!
//! Text is split at Unicode word boundaries (UAX #29), compatibility-normalised (NFKC) and
//! lower-cased, so that "Émile", "ÉMILE" and a decomposed "E\u{301}mile" are one word, full-width
//! "ＡＢＣ" is "abc", and Cyrillic or Greek words fold their case like Latin ones. Scripts
//! written without spaces (Chinese, Japanese kanji) split into one word per ideograph, as
//! Lucene's standard tokenizer does; a query of several ideographs then asks for all of them.
//!
//! A word joined by punctuation that UAX #29 keeps inside words ("alice.smith", "don't",
//! "foo_bar") is also indexed by its parts, so each part finds it.

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longer words are cut to this many bytes (at a character boundary): a pasted hash or URL
/// must not make index keys of kilobytes. Queries are cut the same way, and match by prefix.
pub const MAX_WORD_BYTES: usize = 64;

/// The normalised words of `text`, in order, with repeats.
pub fn words(text: &str) -> Vec<String> {
    let normalised: String = text.nfkc().collect();
    let mut out = Vec::new();
    for word in normalised.unicode_words() {
        let word = truncate(word.to_lowercase());
        let parts: Vec<&str> = word.split(|c: char| !c.is_alphanumeric()).filter(|part| !part.is_empty()).collect();
        if parts.len() > 1 {
            out.extend(parts.iter().map(|part| (*part).to_owned()));
        }
        out.push(word);
    }
    out
}

fn truncate(mut word: String) -> String {
    if word.len() > MAX_WORD_BYTES {
        let mut end = MAX_WORD_BYTES;
        while !word.is_char_boundary(end) {
            end -= 1;
        }
        word.truncate(end);
    }
    word
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn folds_case_and_normalises_across_scripts() {
        assert_eq!(words("Émile ÉMILE"), ["émile", "émile"]);
        assert_eq!(words("E\u{301}mile"), ["émile"], "decomposed accents compose");
        assert_eq!(words("ＡＢＣ"), ["abc"], "full-width letters fold");
        assert_eq!(words("Привет, МИР!"), ["привет", "мир"]);
        assert_eq!(words("ΟΔΟΣ"), ["οδος"]);
    }

    #[test]
    fn splits_ideographs_and_joined_words() {
        assert_eq!(words("東京タワー"), ["東", "京", "タワー"]);
        assert_eq!(words("alice.smith"), ["alice", "smith", "alice.smith"]);
        assert_eq!(words("Hello, world -- 42!"), ["hello", "world", "42"]);
        assert!(words("🎉 ...").is_empty());
    }

    #[test]
    fn cuts_long_words_at_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = &words(&long)[0];
        assert!(cut.len() <= super::MAX_WORD_BYTES && cut.chars().all(|c| c == 'é'));
    }
}
