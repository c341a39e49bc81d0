#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::streaming::session::{Session, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn hdrs(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_dictionary_is_spdy3s() {
    let d = dictionary();
    // The published SPDY/3 dictionary is 1423 bytes and starts with `options`.
    assert_eq!(d.len(), 1423);
    assert_eq!(&d[..11], b"\0\0\0\x07options");
    assert!(d.ends_with(b"enq=0."));
}

#[test]
fn every_frame_round_trips_through_one_compression_context_per_direction() {
    let frames = vec![
        Frame::SynStream {
            id: 1,
            associated: 0,
            priority: 3,
            fin: false,
            unidirectional: false,
            headers: hdrs(&[("streamtype", "error"), ("port", "8080")]),
        },
        Frame::SynReply { id: 1, fin: false, headers: Vec::new() },
        // The same headers again: the shared context makes the second block smaller.
        Frame::SynStream {
            id: 3,
            associated: 0,
            priority: 0,
            fin: true,
            unidirectional: true,
            headers: hdrs(&[("streamtype", "error"), ("port", "8080")]),
        },
        Frame::Data { id: 3, fin: true, data: Bytes::from_static(b"hello") },
        Frame::Data { id: 5, fin: false, data: Bytes::new() },
        Frame::RstStream { id: 5, status: 5 },
        Frame::Settings { entries: vec![(1, 7, 65536), (0, 4, 100)] },
        Frame::Ping { id: 7 },
        Frame::GoAway { last_good: 9, status: 0 },
        Frame::Headers { id: 1, fin: true, headers: hdrs(&[("a", "b\0c")]) },
        Frame::WindowUpdate { id: 1, delta: 1 << 20 },
    ];
    let mut enc = Encoder::new();
    let mut wire = Vec::new();
    let mut sizes = Vec::new();
    for f in &frames {
        let before = wire.len();
        enc.encode(f, &mut wire).unwrap();
        sizes.push(wire.len() - before);
    }
    assert!(sizes[2] < sizes[0], "second identical header block compresses better: {sizes:?}");
    // Fed in small pieces, as a socket delivers them.
    let mut dec = Decoder::new();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for chunk in wire.chunks(5) {
        buf.extend_from_slice(chunk);
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    assert!(buf.is_empty());
}

#[test]
fn control_frame_headers_have_the_spdy3_layout() {
    let mut out = Vec::new();
    Encoder::new().encode(&Frame::Ping { id: 0x0102_0304 }, &mut out).unwrap();
    assert_eq!(out, [0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 1, 2, 3, 4]);
    let mut out = Vec::new();
    Encoder::new()
        .encode(&Frame::Data { id: 3, fin: true, data: Bytes::from_static(b"ab") }, &mut out)
        .unwrap();
    assert_eq!(out, [0, 0, 0, 3, 0x01, 0, 0, 2, b'a', b'b']);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut dec = Decoder::new();
    // SPDY/2 control frame.
    let mut buf = vec![0x80, 0x02, 0x00, 0x01, 0, 0, 0, 0];
    assert!(dec.decode(&mut buf).is_err());
    // SYN_STREAM whose header block is not zlib.
    let mut buf = vec![0x80, 0x03, 0x00, 0x01, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert!(Decoder::new().decode(&mut buf).is_err());
    // A short SYN_STREAM.
    let mut buf = vec![0x80, 0x03, 0x00, 0x01, 0, 0, 0, 2, 0, 1];
    assert!(Decoder::new().decode(&mut buf).is_err());
    // A settings frame that claims more entries than it has.
    let mut buf = vec![0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0, 0, 0, 9];
    assert!(Decoder::new().decode(&mut buf).is_err());
}

#[tokio::test]
async fn a_session_answers_streams_echoes_pings_and_carries_data_both_ways() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let mut session = Session::start(server);
    let (mut crd, mut cwr) = tokio::io::split(client);
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    let syn = Frame::SynStream {
        id: 1,
        associated: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: hdrs(&[("streamType", "stdin")]),
    };
    enc.encode(&syn, &mut out).unwrap();
    enc.encode(&Frame::Ping { id: 1 }, &mut out).unwrap();
    enc.encode(&Frame::Data { id: 1, fin: true, data: Bytes::from_static(b"input") }, &mut out).unwrap();
    cwr.write_all(&out).await.unwrap();
    let mut stream = session.streams.recv().await.unwrap();
    assert_eq!(header(&stream.headers, "streamtype"), Some("stdin"));
    assert_eq!(stream.data.recv().await.unwrap(), Bytes::from_static(b"input"));
    assert!(stream.data.recv().await.is_none(), "FIN closes the stream's data");
    stream.writer.write(b"output").await.unwrap();
    stream.writer.close().await;
    session.close().await;
    let mut wire = Vec::new();
    crd.read_to_end(&mut wire).await.unwrap();
    let mut dec = Decoder::new();
    let mut got = Vec::new();
    while let Some(f) = dec.decode(&mut wire).unwrap() {
        got.push(f);
    }
    assert_eq!(
        got,
        vec![
            Frame::SynReply { id: 1, fin: false, headers: Vec::new() },
            Frame::Ping { id: 1 },
            Frame::Data { id: 1, fin: false, data: Bytes::from_static(b"output") },
            Frame::Data { id: 1, fin: true, data: Bytes::new() },
        ]
    );
}
