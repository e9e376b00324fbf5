//! `crema-recorder decode`: captured Engine.IO records in, socket.io events out as JSON lines.

use std::io::{BufRead, Write};

use engineio_codec::{Data, Packet, decode_record};
use socketio_v5::codec::Reassembler;

/// What a decode run saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) lines: usize,
    pub(crate) events: usize,
    pub(crate) other: usize,
    pub(crate) errors: usize,
}

/// One output line.
#[derive(serde::Serialize)]
struct EventLine<'a> {
    event: serde_json::Value,
    args: Vec<&'a serde_json::value::RawValue>,
    #[serde(skip_serializing_if = "is_default_namespace")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<usize>,
}

fn is_default_namespace(namespace: &&str) -> bool {
    *namespace == "/"
}

/// Decodes every line of `input`; a bad line is reported on `errors` and skipped.
pub(crate) fn run(
    input: impl BufRead,
    out: &mut impl Write,
    errors: &mut impl Write,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let mut reassembler = Reassembler::default();
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        let number = index + 1;
        if line.is_empty() {
            continue;
        }
        stats.lines += 1;
        let message = match decode_record(line) {
            Ok(Packet::Message(data)) => match data {
                Data::Text(text) => reassembler.text(text).map(|m| m.map(|m| m.into_owned())),
                Data::Binary(bytes) => reassembler.binary(bytes.into_owned().into()),
            },
            Ok(_) => {
                stats.other += 1;
                continue;
            }
            Err(e) => {
                stats.errors += 1;
                writeln!(errors, "line {number}: {e}")?;
                continue;
            }
        };
        match message {
            Ok(Some(message)) => {
                let packet = &message.packet;
                let Some(name) = packet.event_name() else {
                    stats.other += 1;
                    continue;
                };
                let line = EventLine {
                    event: match name.as_str() {
                        Some(s) => serde_json::Value::from(s),
                        None => serde_json::from_str(&name.to_string())?,
                    },
                    // The arguments are written as they came: raw JSON, key order kept.
                    args: packet.raw_args()?,
                    namespace: packet.namespace(),
                    attachments: message.attachments.iter().map(|a| a.len()).collect(),
                };
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
                stats.events += 1;
            }
            Ok(None) => {}
            Err(e) => {
                stats.errors += 1;
                writeln!(errors, "line {number}: {e}")?;
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &str) -> (String, String, Stats) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let stats = run(input.as_bytes(), &mut out, &mut err).unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            stats,
        )
    }

    #[test]
    fn prints_events_and_skips_control_packets() {
        let (out, err, stats) = decode_all(
            "0{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":1,\"pingTimeout\":1}\n2\n42[\"status\",{\"state\":\"idle\"}]\n42/admin,[\"done\"]\n",
        );
        assert_eq!(
            out,
            "{\"event\":\"status\",\"args\":[{\"state\":\"idle\"}]}\n{\"event\":\"done\",\"args\":[],\"namespace\":\"/admin\"}\n"
        );
        assert_eq!(err, "");
        assert_eq!(
            stats,
            Stats {
                lines: 4,
                events: 2,
                other: 2,
                errors: 0
            }
        );
    }

    #[test]
    fn reports_bad_lines_with_their_number_and_goes_on() {
        let (out, err, stats) = decode_all("9oops\n42{}\n42[\"ok\"]\n");
        assert_eq!(out, "{\"event\":\"ok\",\"args\":[]}\n");
        assert!(
            err.starts_with("line 1: invalid Engine.IO packet at byte 0"),
            "{err}"
        );
        assert!(err.contains("line 2: invalid socket.io packet"), "{err}");
        assert_eq!(stats.errors, 2);
    }

    #[test]
    fn joins_binary_attachments() {
        let (out, _, stats) =
            decode_all("451-[\"file\",{\"_placeholder\":true,\"num\":0}]\nbAQIDBA==\n");
        assert_eq!(
            out,
            "{\"event\":\"file\",\"args\":[{\"_placeholder\":true,\"num\":0}],\"attachments\":[4]}\n"
        );
        assert_eq!(stats.events, 1);
    }
}
