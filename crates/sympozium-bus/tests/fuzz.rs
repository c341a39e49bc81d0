//! Fuzz targets for what arrives on the bus: the envelope every message carries and the
//! payloads inside it, the origin headers (identity and signature) checked before a
//! message is trusted, and `traceparent` values.
//!
//! Under `cargo test` each target runs for about a second on random input plus its
//! committed corpus (`tests/__fuzz__/<test name>/corpus`, real envelopes); `make fuzz`
//! runs them under libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use serde_json::Value;
use sympozium_bus::Envelope;
use sympozium_bus::origin::{Origin, Verifier, channel_identity};
use sympozium_bus::payloads::{InboundMessage, OutboundMessage, ScheduleResult, SpawnRequest, SpawnResult};
use sympozium_bus::trace::TraceParent;
use sympozium_testkit::fuzz::{self, Choices};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__").join(target).join("corpus")
}

/// Decodes `data` as `T`; what decodes must encode and decode to itself (a relay — the
/// channel router, the web proxy — re-publishes what it read).
fn payload<T>(data: &Value)
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(p) = serde_json::from_value::<T>(data.clone()) {
        let back: T = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}

fn envelope(bytes: &[u8]) {
    let Ok(e) = serde_json::from_slice::<Envelope>(bytes) else { return };
    let _ = e.meta("agentRunID");
    let text = serde_json::to_vec(&e).unwrap();
    let back: Envelope = serde_json::from_slice(&text).unwrap();
    // `data` is compared through its text: JSON numbers need not survive a float round trip
    // bit for bit, but topic, time and metadata must.
    assert_eq!((&back.topic, &back.timestamp, &back.metadata), (&e.topic, &e.timestamp, &e.metadata));
    payload::<InboundMessage>(&e.data);
    payload::<OutboundMessage>(&e.data);
    payload::<SpawnRequest>(&e.data);
    payload::<SpawnResult>(&e.data);
    payload::<ScheduleResult>(&e.data);
}

#[test]
fn bus_envelope() {
    let seeds = fuzz::seeds(&corpus("bus_envelope"));
    assert!(seeds.len() >= 4, "the committed seed envelopes are there");
    for seed in &seeds {
        assert!(serde_json::from_value::<Envelope>(seed.clone()).is_ok(), "seed is an envelope: {seed}");
    }
    bolero::check!().for_each(|bytes: &[u8]| {
        envelope(bytes);
        envelope(&serde_json::to_vec(&fuzz::document(&seeds, bytes)).unwrap());
    });
}

#[test]
fn origin_headers() {
    let verifier = Verifier::new("master-secret");
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut c = Choices::new(bytes);
        let (identity, signature, subject) = (c.string(), c.string(), c.string());
        let body = c.text(256);
        // Forged headers prove nothing.
        if let Some(who) = verifier.verify(Some(&identity), Some(&signature), &subject, body.as_bytes()) {
            let real = Origin::new(&identity, verifier.key_for(&identity)).sign(&subject, body.as_bytes());
            assert_eq!((who.as_str(), real.as_str()), (identity.as_str(), signature.as_str()));
        }
        // A real signature proves exactly its identity, subject and payload.
        let me = channel_identity(&c.string(), &c.string());
        let origin = Origin::new(&me, verifier.key_for(&me));
        let sig = origin.sign(&subject, body.as_bytes());
        assert_eq!(
            verifier.verify(Some(&me), Some(&sig), &subject, body.as_bytes()).as_deref(),
            Some(me.as_str())
        );
        let other = format!("{subject}x");
        assert!(verifier.verify(Some(&me), Some(&sig), &other, body.as_bytes()).is_none());
        let _ = origin.consumer_name(&identity);
    });
}

#[test]
fn traceparent_header() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        if let Some(tp) = TraceParent::parse(&text) {
            assert_eq!(TraceParent::parse(&tp.to_string()), Some(tp.clone()), "parse -> print -> parse");
            assert_eq!(tp.child().trace_id(), tp.trace_id());
        }
    });
}
