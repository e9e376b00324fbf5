//! The one JSON shape of a shot. REST (`/api/v1/shots…`), `crema-recorder shots --json`, the
//! webhooks and the external analyzers all build it here, so a shot has the same keys and the
//! same `id` everywhere.
//!
//! - `id` is the shot's public id: the machine's UUID once it is known (what the machine's own
//!   app and Visualizer show), the store's key as text until then. Everything that takes a
//!   shot takes either.
//! - `key` is the store's key: a number, stable for the life of the store.

use meticulous::Sample;
use serde::Serialize;
use serde_json::Value;
use storage::{Reader, ShotSummary, StorageError};

/// Why a shot could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored sample is not a sample (written by a broken or newer version).
    #[error("shot {key} has a sample that does not read: {source}")]
    Sample {
        /// The store's key of the shot.
        key: i64,
        /// serde_json's reason.
        source: serde_json::Error,
    },
}

/// A shot's summary: what lists show and webhooks send. Its JSON is the stored summary's
/// fields (`key`, `machine`, `time`, `name`, `profile_id`, `profile_name`, `source`, `status`,
/// `sample_count`, `end_reason`) after the public `id`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The public id: the machine's UUID, or the store's key as text until it is known.
    pub id: String,
    /// The stored summary.
    #[serde(flatten)]
    pub shot: ShotSummary,
}

/// The public id of a stored shot (see the [module docs](self)).
pub fn public_id(s: &ShotSummary) -> String {
    s.id.clone().unwrap_or_else(|| s.key.to_string())
}

/// The summary of a stored shot.
pub fn summary(s: &ShotSummary) -> Summary {
    Summary {
        id: public_id(s),
        shot: s.clone(),
    }
}

/// The summary as a JSON value.
pub fn summary_json(s: &ShotSummary) -> Value {
    serde_json::to_value(summary(s)).unwrap_or(Value::Null)
}

/// The whole shot: its [`summary`] with the machine's `data` (samples, as stored), `profile`,
/// and `visualizer_id` and `visualizer_url` (the shot's id and page at Visualizer once
/// uploaded, else `null`). What `GET /api/v1/shots/{id}` answers and an external analyzer
/// gets. `None` when it is gone.
pub fn document(reader: &dyn Reader, s: &ShotSummary) -> Result<Option<Value>, StorageError> {
    let Some(file) = reader.shot_file(s.key)? else {
        return Ok(None);
    };
    let mut doc = summary_json(s);
    doc["data"] = serde_json::to_value(&file.data).unwrap_or(Value::Null);
    doc["profile"] = serde_json::to_value(&file.profile).unwrap_or(Value::Null);
    let uploaded = visualizer(reader, s.key)?;
    doc["visualizer_id"] = uploaded["id"].clone();
    // Linked from the page: a web address, or none.
    doc["visualizer_url"] = match uploaded["url"].as_str() {
        Some(url) if web_address(url) => Value::from(url),
        _ => Value::Null,
    };
    Ok(Some(doc))
}

/// Whether `url` is an `http` or `https` address (what a page may link to).
fn web_address(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// The analysis name under which a shot's Visualizer upload is stored (`{"id", "url"}`).
pub const VISUALIZER: &str = "visualizer";

/// The id Visualizer gave shot `key`, once uploaded.
pub fn visualizer_id(reader: &dyn Reader, key: i64) -> Result<Option<String>, StorageError> {
    Ok(visualizer(reader, key)?["id"].as_str().map(str::to_owned))
}

/// `{"id", "url"}` of shot `key` at Visualizer, `null` until uploaded.
fn visualizer(reader: &dyn Reader, key: i64) -> Result<Value, StorageError> {
    Ok(reader
        .analyses(key)?
        .into_iter()
        .find(|a| a["analyzer"] == VISUALIZER)
        .map_or(Value::Null, |a| a["result"].clone()))
}

/// A shot's summary and its samples, read as the model's [`Sample`]s (for QA and analysis);
/// `None` when it is gone.
pub fn load(
    reader: &dyn Reader,
    key: i64,
) -> Result<Option<(ShotSummary, Vec<Sample>)>, ReadError> {
    let Some(summary) = reader.shot(key)? else {
        return Ok(None);
    };
    let samples = reader
        .samples(key)?
        .iter()
        .map(|raw| serde_json::from_str::<Sample>(raw.get()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ReadError::Sample { key, source })?;
    Ok(Some((summary, samples)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: Option<&str>) -> ShotSummary {
        ShotSummary {
            key: 7,
            id: id.map(str::to_owned),
            machine: "kitchen".into(),
            time: 1.5,
            name: Some("Classic".into()),
            profile_id: None,
            profile_name: Some("Classic".into()),
            source: "live".into(),
            status: "recording".into(),
            sample_count: 3,
            end_reason: None,
        }
    }

    #[test]
    fn the_public_id_is_the_machines_uuid_once_known() {
        let before = summary_json(&stored(None));
        assert_eq!(before["id"], "7");
        assert_eq!(before["key"], 7);
        let after = summary_json(&stored(Some("0b5d…")));
        assert_eq!(after["id"], "0b5d…");
        assert_eq!(after["key"], 7);
        let keys: Vec<&String> = after.as_object().unwrap().keys().collect();
        assert_eq!(
            keys.len(),
            11,
            "one shape, no other spelling of the ids: {keys:?}"
        );
        assert!(after.get("uuid").is_none());
    }
}

#[cfg(test)]
mod link_tests {
    #[test]
    fn only_web_addresses_are_links() {
        assert!(super::web_address("https://visualizer.coffee/shots/abc"));
        assert!(super::web_address("http://127.0.0.1:9/shots/1"));
        for not in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>1</script>",
            "//evil.example/x",
            "",
        ] {
            assert!(!super::web_address(not), "{not}");
        }
    }
}
