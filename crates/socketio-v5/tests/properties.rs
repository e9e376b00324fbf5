//! Property tests of the socket.io codec: encode → decode round-trips, and no panic on any input.

use proptest::prelude::*;
use serde_json::Value;
use socketio_v5::codec::{
    Json, Packet, PacketKind, RESERVED_EVENTS, Reassembler, decode, decode_shared, encode,
};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map("[a-z]{1,6}", json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn event_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => any::<String>()
            .prop_filter("not reserved", |s| !RESERVED_EVENTS.contains(&s.as_str()))
            .prop_map(Value::from),
        1 => any::<i32>().prop_map(Value::from),
    ]
}

/// A valid payload for `kind`, or none.
fn payload(kind: PacketKind) -> BoxedStrategy<Option<Value>> {
    let args = proptest::collection::vec(json_value(), 0..4);
    match kind {
        PacketKind::Connect => proptest::option::of(object()).boxed(),
        PacketKind::Disconnect => Just(None).boxed(),
        PacketKind::Event | PacketKind::BinaryEvent => (event_name(), args)
            .prop_map(|(name, mut args)| {
                args.insert(0, name);
                Some(Value::from(args))
            })
            .boxed(),
        PacketKind::Ack | PacketKind::BinaryAck => args.prop_map(|a| Some(Value::from(a))).boxed(),
        PacketKind::ConnectError => prop_oneof![
            object().prop_map(Some),
            any::<String>().prop_map(|s| Some(Value::from(s)))
        ]
        .boxed(),
    }
}

fn kind() -> impl Strategy<Value = PacketKind> {
    prop_oneof![
        Just(PacketKind::Connect),
        Just(PacketKind::Disconnect),
        Just(PacketKind::Event),
        Just(PacketKind::Ack),
        Just(PacketKind::ConnectError),
        Just(PacketKind::BinaryEvent),
        Just(PacketKind::BinaryAck),
    ]
}

/// (kind, namespace, id, attachments, payload text)
fn parts() -> impl Strategy<Value = (PacketKind, String, Option<u64>, usize, Option<String>)> {
    kind().prop_flat_map(|kind| {
        (
            Just(kind),
            prop_oneof![Just("/".to_owned()), "/[^,]{1,12}"],
            proptest::option::of(any::<u64>()),
            0..20usize,
            payload(kind).prop_map(|v| v.map(|v| v.to_string())),
        )
    })
}

proptest! {
    #[test]
    fn packets_round_trip((kind, namespace, id, attachments, data) in parts()) {
        let json = data.as_deref().map(|d| Json::parse(d).unwrap());
        let packet = Packet::checked(kind, &namespace, id, attachments, json).unwrap();
        let mut out = Vec::new();
        encode(&packet, &mut out);
        let text = String::from_utf8(out).unwrap();
        let decoded = decode(&text).unwrap();
        prop_assert_eq!(decoded, packet);
    }

    /// A packet decoded into the message's shared buffer is the packet `decode` reads, with the
    /// same event name, arguments and errors, whatever the text.
    #[test]
    fn shared_decoding_agrees_with_decode(text in prop_oneof![
        r#"[0-6][0-9]{0,2}-?(/[a-z,]{0,4})?[0-9]{0,2}[\[\]{}",:a-z0-9\\ ]{0,30}"#,
        parts().prop_map(|(kind, namespace, id, attachments, data)| {
            let json = data.as_deref().map(|d| Json::parse(d).unwrap());
            let packet = Packet::checked(kind, &namespace, id, attachments, json).unwrap();
            let mut out = Vec::new();
            encode(&packet, &mut out);
            String::from_utf8(out).unwrap()
        }),
    ]) {
        let shared = decode_shared(&engineio_client::Text::from(text.as_str()));
        let plain = decode(&text).map(Packet::into_owned);
        prop_assert_eq!(&shared, &plain);
        if let (Ok(shared), Ok(plain)) = (shared, plain) {
            prop_assert_eq!(shared.event_name(), plain.event_name());
            prop_assert_eq!(shared.data().map(Json::as_str), plain.data().map(Json::as_str));
        }
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in any::<String>()) {
        if let Err(e) = decode(&text) {
            prop_assert!(e.offset() <= text.len());
        }
    }

    #[test]
    fn decoding_packet_shaped_text_never_panics(text in r#"[0-6][0-9]{0,3}-?(/[a-z,]{0,4})?[0-9]{0,3}[\[\]{}",:a-z0-9 ]{0,30}"#) {
        if let Ok(p) = decode(&text) {
            // Whatever decodes re-encodes to something that decodes the same.
            let mut out = Vec::new();
            encode(&p, &mut out);
            let again = String::from_utf8(out).unwrap();
            prop_assert_eq!(decode(&again).unwrap(), p);
        }
    }

    #[test]
    fn reassembler_never_panics(
        max in 0..12usize,
        messages in proptest::collection::vec(prop_oneof![
            r#"[56][0-9]-[\[\]{}",:a-z0-9_ ]{0,40}"#.prop_map(Ok),
            r#"5[0-3]-\["x",\{"_placeholder":true,"num":[0-3]\}\]"#.prop_map(Ok),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Err),
        ], 0..12),
    ) {
        let mut r = Reassembler::new(max);
        for m in messages {
            let complete = match m {
                Ok(text) => r.text(&text).map(|m| m.map(|m| m.attachments.len() == m.packet.attachments())),
                Err(bytes) => r.binary(bytes.into()).map(|m| m.map(|m| m.attachments.len() == m.packet.attachments())),
            };
            if let Ok(Some(all_there)) = complete {
                prop_assert!(all_there, "a message is complete only with all its attachments");
            }
        }
    }
}
