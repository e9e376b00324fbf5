//! Binary arguments anywhere in serde data: [`Binary`] serializes as a placeholder and
//! collects its bytes, and deserializes from a placeholder into the attachment it names.

use std::cell::RefCell;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::Placeholder;

thread_local! {
    /// Attachments collected while serializing, or offered while deserializing.
    static ATTACHMENTS: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
}

/// Binary data inside event arguments, zero-copy (`Bytes`).
///
/// Put it anywhere in the arguments of an emit (in a struct, a vector, a map): it travels as a
/// binary attachment and the JSON holds `{"_placeholder":true,"num":N}` in its place, as the
/// reference implementation does. Deserialize it from received arguments to get the attachment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Binary(pub Bytes);

impl From<Bytes> for Binary {
    fn from(b: Bytes) -> Self {
        Binary(b)
    }
}

impl From<Vec<u8>> for Binary {
    fn from(b: Vec<u8>) -> Self {
        Binary(b.into())
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let num = ATTACHMENTS.with(|cell| {
            cell.borrow_mut().as_mut().map(|list| {
                list.push(self.0.clone());
                list.len() - 1
            })
        });
        match num {
            Some(num) => Placeholder::new(num).serialize(serializer),
            // Outside an emit (plain serde_json): an array of numbers, like serde's bytes.
            None => serializer.collect_seq(self.0.iter()),
        }
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let placeholder = Placeholder::deserialize(deserializer)?;
        ATTACHMENTS
            .with(|cell| {
                cell.borrow()
                    .as_ref()
                    .and_then(|list| list.get(placeholder.num).cloned())
            })
            .map(Binary)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "placeholder {} names no attachment of this message",
                    placeholder.num
                ))
            })
    }
}

/// Serializes `value` to JSON, collecting the [`Binary`] values inside it as attachments.
#[cfg(feature = "client")]
pub(crate) fn serialize_with_attachments<T: Serialize + ?Sized>(
    value: &T,
) -> Result<(String, Vec<Bytes>), serde_json::Error> {
    let previous = ATTACHMENTS.with(|cell| cell.replace(Some(Vec::new())));
    let json = serde_json::to_string(value);
    let attachments = ATTACHMENTS
        .with(|cell| cell.replace(previous))
        .unwrap_or_default();
    Ok((json?, attachments))
}

/// Runs `f` (a deserialization) with `attachments` offered to the [`Binary`] values it meets.
#[cfg(feature = "client")]
pub(crate) fn with_attachments<R>(attachments: &[Bytes], f: impl FnOnce() -> R) -> R {
    let previous = ATTACHMENTS.with(|cell| cell.replace(Some(attachments.to_vec())));
    let result = f();
    ATTACHMENTS.with(|cell| cell.replace(previous));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct File {
        name: String,
        parts: Vec<Binary>,
    }

    #[test]
    fn binary_anywhere_round_trips_through_placeholders() {
        let file = File {
            name: "shot".into(),
            parts: vec![Binary::from(vec![1, 2]), Binary::from(vec![3])],
        };
        let (json, attachments) = serialize_with_attachments(&("upload", &file)).unwrap();
        assert_eq!(
            json,
            r#"["upload",{"name":"shot","parts":[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]}]"#
        );
        assert_eq!(
            attachments,
            vec![Bytes::from(vec![1, 2]), Bytes::from(vec![3])]
        );
        let (_, back): (String, File) =
            with_attachments(&attachments, || serde_json::from_str(&json)).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn a_placeholder_without_its_attachment_is_an_error() {
        let err = with_attachments(&[], || {
            serde_json::from_str::<Binary>(r#"{"_placeholder":true,"num":0}"#)
        })
        .unwrap_err();
        assert!(err.to_string().contains("names no attachment"), "{err}");
    }
}
