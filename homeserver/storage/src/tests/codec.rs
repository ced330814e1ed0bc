//! Key and value codec tests that need no engine.

use crate::Error;
use crate::codec::{Json, KeyCodec, Raw, ValueCodec, encode_key, prefix_of};
use crate::engine::prefix_end;

fn roundtrip<K: KeyCodec + PartialEq + std::fmt::Debug>(key: K) {
    let bytes = encode_key(&key);
    assert_eq!(K::decode_key(&bytes).unwrap(), key, "bytes {bytes:x?}");
    let mut part = Vec::new();
    key.encode_part(&mut part);
    part.extend_from_slice(b"tail");
    let (decoded, rest) = K::decode_part(&part).unwrap();
    assert_eq!(decoded, key);
    assert_eq!(rest, b"tail");
}

#[test]
fn keys_roundtrip() {
    roundtrip(String::new());
    roundtrip("@alice:example.org".to_owned());
    roundtrip("ünïcödé 🦀".to_owned());
    roundtrip(0u64);
    roundtrip(u64::MAX);
    roundtrip(Vec::<u8>::new());
    roundtrip(vec![0x00, 0xFF, 0xFF, 0x01, 0xFF]);
    roundtrip(("!room:x".to_owned(), 42u64));
    roundtrip((7u64, "$event".to_owned()));
    roundtrip((vec![0xFFu8], "s".to_owned(), 9u64));
    roundtrip(("a".to_owned(), "b".to_owned(), "c".to_owned()));
}

#[test]
fn documented_layout() {
    assert_eq!(encode_key(&("ab".to_owned(), "c".to_owned())), b"ab\xffc");
    assert_eq!(encode_key(&("a".to_owned(), "bc".to_owned())), b"a\xffbc");
    assert_eq!(encode_key(&258u64), [0, 0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(
        encode_key(&("r".to_owned(), 1u64)),
        b"r\xff\0\0\0\0\0\0\0\x01"
    );
    assert_eq!(prefix_of(&"a".to_owned()), b"a\xff");
    assert_eq!(
        prefix_of(&("r".to_owned(), 1u64)),
        b"r\xff\0\0\0\0\0\0\0\x01"
    );
    assert_eq!(prefix_of(&vec![0xFFu8, 1]), [0xFF, 0x00, 0x01, 0xFF, 0xFF]);
}

#[test]
fn u64_byte_order_is_numeric_order() {
    let mut numbers = vec![u64::MAX, 0, 1, 255, 256, 65_535, 65_536, 1 << 63];
    let mut encoded: Vec<Vec<u8>> = numbers.iter().map(encode_key).collect();
    numbers.sort_unstable();
    encoded.sort();
    let decoded: Vec<u64> = encoded
        .iter()
        .map(|b| u64::decode_key(b).unwrap())
        .collect();
    assert_eq!(decoded, numbers);
}

#[test]
fn malformed_keys_are_corrupt_not_panics() {
    assert!(matches!(
        u64::decode_key(b"1234567"),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(u64::decode_part(b"1234"), Err(Error::Corrupt(_))));
    assert!(matches!(
        String::decode_key(b"\xc3"),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        String::decode_part(b"no terminator"),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        Vec::<u8>::decode_part(b"ab\xff"),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        Vec::<u8>::decode_part(b"ab\xff\x01"),
        Err(Error::Corrupt(_))
    ));
    assert!(matches!(
        <(String, u64)>::decode_key(b"x\xff123"),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn values_roundtrip() {
    let json = <Json as ValueCodec<Vec<String>>>::encode_value(&vec!["a".to_owned()]).unwrap();
    assert_eq!(json, br#"["a"]"#);
    assert!(matches!(
        <Json as ValueCodec<u32>>::decode_value(b"\"nope\""),
        Err(Error::Corrupt(_))
    ));
    let raw = <Raw as ValueCodec<u64>>::encode_value(&5).unwrap();
    assert_eq!(<Raw as ValueCodec<u64>>::decode_value(&raw).unwrap(), 5);
    assert_eq!(
        <Raw as ValueCodec<String>>::decode_value(b"hi").unwrap(),
        "hi"
    );
    assert!(
        <Raw as ValueCodec<()>>::encode_value(&())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn prefix_end_is_the_exclusive_upper_bound() {
    assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
    assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"\xff\xff"), None);
    assert_eq!(prefix_end(b""), None);
}

#[test]
fn lock_errors_from_rocksdb_are_recognised() {
    use crate::rocks::is_lock_error;
    assert!(is_lock_error(
        "IO error: While lock file: /data/db/LOCK: Resource temporarily unavailable"
    ));
    assert!(is_lock_error(
        "IO error: lock hold by current process, acquire time 1 acquiring thread 2: \
         /data/db/LOCK: No locks available"
    ));
    assert!(!is_lock_error("IO error: No space left on device"));
}
