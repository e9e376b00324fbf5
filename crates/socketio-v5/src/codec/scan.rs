//! A strict JSON scanner for the decoder's hot path: it checks that a payload is one valid JSON
//! value (RFC 8259), says what shape it has, and where an event's name is, without building
//! anything.
//!
//! It is *sound*, not complete: whatever it accepts, `serde_json` accepts too (a property test
//! checks it against `serde_json` on arbitrary text). It may give up on valid input it does not
//! handle (nesting deeper than [`MAX_DEPTH`]); the decoder then asks `serde_json`, which also
//! writes every error message. So this file decides speed, never what is valid.

/// Containers nested deeper than this are left to `serde_json` (whose own limit is 128).
pub(super) const MAX_DEPTH: usize = 64;

/// What the payload is, as far as socket.io cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Object,
    /// An array; `first` is the byte range of its first element, if any.
    Array {
        first: Option<(usize, usize)>,
    },
    String,
    Other,
}

/// Scans `text` as exactly one JSON value with optional whitespace around it. `None` when the
/// text is not valid JSON (or is too deeply nested for this scanner).
pub(super) fn scan(text: &str) -> Option<Shape> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    let shape = match *b.get(start)? {
        b'{' => Shape::Object,
        b'[' => {
            let i = skip_ws(b, start + 1);
            let first = if b.get(i) == Some(&b']') {
                None
            } else {
                Some((i, value_end(b, i)?))
            };
            Shape::Array { first }
        }
        b'"' => Shape::String,
        _ => Shape::Other,
    };
    let end = value_end(b, start)?;
    (skip_ws(b, end) == b.len()).then_some(shape)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The end of the value that starts at `i` (no leading whitespace), containers included.
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    // One bit per open container: set for an object, clear for an array.
    let mut objects: u64 = 0;
    let mut depth = 0usize;
    'value: loop {
        // A value starts at `i`.
        match *b.get(i)? {
            b'{' | b'[' => {
                let object = b[i] == b'{';
                let close = if object { b'}' } else { b']' };
                i = skip_ws(b, i + 1);
                if b.get(i) == Some(&close) {
                    i += 1;
                } else {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    objects = (objects << 1) | u64::from(object);
                    depth += 1;
                    if object {
                        i = key_end(b, i)?;
                    }
                    continue 'value;
                }
            }
            b'"' => i = string_end(b, i)?,
            b't' => i = literal_end(b, i, b"true")?,
            b'f' => i = literal_end(b, i, b"false")?,
            b'n' => i = literal_end(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number_end(b, i)?,
            _ => return None,
        }
        // A value ended at `i`: close containers until one wants another element.
        loop {
            if depth == 0 {
                return Some(i);
            }
            let object = objects & 1 == 1;
            i = skip_ws(b, i);
            match *b.get(i)? {
                b',' => {
                    i = skip_ws(b, i + 1);
                    if object {
                        i = key_end(b, i)?;
                    }
                    continue 'value;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            i += 1;
            objects >>= 1;
            depth -= 1;
        }
    }
}

/// `"key"` then `:` and whitespace: the index where the member's value starts.
fn key_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_ws(b, string_end(b, i)?);
    (b.get(i) == Some(&b':')).then(|| skip_ws(b, i + 1))
}

/// The end of the string whose opening quote is at `i`. The text is UTF-8 already (it is a
/// `&str`); JSON adds: no control characters, and only the escapes it defines.
pub(super) fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        let c = *b.get(i)?;
        i += 1;
        match c {
            b'"' => return Some(i),
            b'\\' => match *b.get(i)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                b'u' => {
                    let hex = b.get(i + 1..i + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 5;
                }
                _ => return None,
            },
            0..=0x1f => return None,
            _ => {}
        }
    }
}

fn literal_end(b: &[u8], i: usize, literal: &[u8]) -> Option<usize> {
    let end = i + literal.len();
    (b.get(i..end)? == literal).then_some(end)
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits_end(b, i + 1),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = digits_end(b, start);
        if i == start {
            return None;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let start = i;
        i = digits_end(b, start);
        if i == start {
            return None;
        }
    }
    Some(i)
}

fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn accepts_what_json_allows() {
        for text in [
            "0",
            "-0",
            "-12.5e+3",
            "1E9",
            "\"\"",
            "\"a\\u00e9\\n\\\"\"",
            " [ ] ",
            "{}",
            "[1,[2,[3,{}]],{\"a\":{\"b\":[]}}]",
            "{\"a\" : 1 , \"b\":\"NaN\"}",
            "[\"sensors\",1,{\"p\":300.0,\"w\":true,\"x\":null,\"y\":false}]",
            "\"é ✓ \u{1F600}\"",
        ] {
            assert!(scan(text).is_some(), "{text}");
            assert!(serde_accepts(text), "{text}");
        }
    }

    #[test]
    fn refuses_what_json_does_not() {
        for text in [
            "",
            " ",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "-",
            "+1",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{1:2}",
            "[1 2]",
            "[1]]",
            "[[1]",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12g4\"",
            "\"tab\there\"",
            "tru",
            "nul",
            "truex",
            "[1] x",
            "{\"a\":1]",
            "[1}",
            "NaN",
        ] {
            assert!(scan(text).is_none(), "{text:?}");
            assert!(!serde_accepts(text), "{text:?}");
        }
    }

    #[test]
    fn shapes_and_the_first_element() {
        assert_eq!(scan(" {} "), Some(Shape::Object));
        assert_eq!(scan("\"x\""), Some(Shape::String));
        assert_eq!(scan("12"), Some(Shape::Other));
        assert_eq!(scan("[ ]"), Some(Shape::Array { first: None }));
        assert_eq!(
            scan("[ \"ab\" , 1]"),
            Some(Shape::Array {
                first: Some((2, 6))
            })
        );
    }

    #[test]
    fn deep_nesting_is_left_to_serde() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(scan(&deep), None);
        assert!(serde_accepts(&deep));
        let fits = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(scan(&fits).is_some());
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        /// Soundness: whatever the scanner accepts, serde_json accepts.
        #[test]
        fn never_accepts_what_serde_refuses(text in r#"[\[\]{}:,"\\ \t0-9a-fnrtuxE.+\-\x00-\x1f]{0,32}"#) {
            if scan(&text).is_some() {
                proptest::prop_assert!(serde_accepts(&text), "{:?}", text);
            }
        }

        /// Arbitrary text, any code point.
        #[test]
        fn never_accepts_arbitrary_text_serde_refuses(text in proptest::arbitrary::any::<String>()) {
            if scan(&text).is_some() {
                proptest::prop_assert!(serde_accepts(&text), "{:?}", text);
            }
        }

        /// Completeness on what real peers send: every serialized value, compact or pretty, is
        /// accepted with the shape serde_json sees.
        #[test]
        fn accepts_every_serialized_value(value in json_value(), pretty in proptest::bool::ANY) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let shape = scan(&text);
            proptest::prop_assert!(shape.is_some(), "{}", text);
            let expected = match &value {
                serde_json::Value::Object(_) => "object",
                serde_json::Value::Array(_) => "array",
                serde_json::Value::String(_) => "string",
                _ => "other",
            };
            let got = match shape {
                Some(Shape::Object) => "object",
                Some(Shape::Array { first }) => {
                    if let (Some((s, e)), serde_json::Value::Array(items)) = (first, &value) {
                        proptest::prop_assert!(serde_accepts(&text[s..e]));
                        if !pretty {
                            let expected = serde_json::to_string(&items[0]).unwrap();
                            proptest::prop_assert_eq!(&text[s..e], expected.as_str());
                        }
                    }
                    "array"
                }
                Some(Shape::String) => "string",
                _ => "other",
            };
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
