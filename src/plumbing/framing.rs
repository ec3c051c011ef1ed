//! Length-prefixed framing of the client (and peer) protocol: every frame is
//! a 4-byte big-endian length followed by that many bytes of one encoded
//! protobuf message.
//!
//! Owns only byte-level framing with bounded buffering. A frame longer than
//! the limit is skipped as it arrives, never buffered, and reported once
//! with the request id read from its first bytes, so the error can be
//! answered by id. Decoding the message inside is the caller's job.

use byteorder::{BigEndian, ByteOrder};
use bytes::{Buf, Bytes, BytesMut};
use prost::Message;

/// Bytes of the length prefix.
pub const PREFIX: usize = 4;

/// Encodes `msg` as one frame.
pub fn encode_frame(msg: &impl Message) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut out = Vec::with_capacity(PREFIX + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec with enough capacity cannot fail.
    let _ = msg.encode(&mut out);
    out
}

/// Appends `msg` as one frame to `out`.
pub fn encode_frame_into(msg: &impl Message, out: &mut BytesMut) {
    let len = msg.encoded_len();
    out.reserve(PREFIX + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    let _ = msg.encode(out);
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame's payload.
    Message(Bytes),
    /// A frame over the limit was skipped. `request_id` is the value of
    /// field 1 (a varint) if the frame started with it.
    TooLarge { len: usize, request_id: Option<u64> },
}

/// Splits a byte stream into frames, holding at most one frame (bounded by
/// `max_frame`) in memory.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
    /// Bytes of an oversized frame still to skip.
    skipping: usize,
    /// Header of an oversized frame whose first bytes are still awaited.
    oversized: Option<usize>,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder { buf: BytesMut::with_capacity(8 * 1024), max_frame, skipping: 0, oversized: None }
    }

    /// Adds bytes received from the connection.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.skipping > 0 && self.oversized.is_none() {
            let n = self.skipping.min(data.len());
            self.skipping -= n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the bytes received after the last frame (to hand a connection
    /// over to another reader).
    pub fn take_buffered(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// Whether a frame has started but is not complete.
    pub fn in_frame(&self) -> bool {
        !self.buf.is_empty() || self.skipping > 0
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if let Some(len) = self.oversized {
            // Wait until enough of the oversized frame is here to tell its
            // request id (or that it has none).
            let available = &self.buf[..self.buf.len().min(len)];
            let request_id = match peek_request_id_partial(available) {
                Peek::Known(id) => id,
                Peek::NeedMore if available.len() < len => return None,
                Peek::NeedMore => None,
            };
            let consumed = self.buf.len().min(len);
            self.buf.advance(consumed);
            self.skipping = len - consumed;
            self.oversized = None;
            return Some(Frame::TooLarge { len, request_id });
        }
        if self.skipping > 0 {
            let n = self.skipping.min(self.buf.len());
            self.buf.advance(n);
            self.skipping -= n;
            if self.skipping > 0 {
                return None;
            }
        }
        if self.buf.len() < PREFIX {
            return None;
        }
        let len = BigEndian::read_u32(&self.buf[..PREFIX]) as usize;
        if len > self.max_frame {
            self.buf.advance(PREFIX);
            self.oversized = Some(len);
            return self.next_frame();
        }
        if self.buf.len() < PREFIX + len {
            // Reserve for the rest of this frame only (bounded by max_frame).
            self.buf.reserve(PREFIX + len - self.buf.len());
            return None;
        }
        self.buf.advance(PREFIX);
        Some(Frame::Message(self.buf.split_to(len).freeze()))
    }
}

/// Reads field 1 (varint) if the bytes start with it: the request id of a
/// `ClientRequest`, encoded first by every protobuf encoder that writes
/// fields in order.
pub fn peek_request_id(b: &[u8]) -> Option<u64> {
    match peek_request_id_partial(b) {
        Peek::Known(id) => id,
        Peek::NeedMore => None,
    }
}

enum Peek {
    /// The bytes decide it: the request id, or that there is none.
    Known(Option<u64>),
    /// More bytes could still complete a request id.
    NeedMore,
}

fn peek_request_id_partial(b: &[u8]) -> Peek {
    match b.first() {
        None => return Peek::NeedMore,
        Some(&0x08) => {}
        Some(_) => return Peek::Known(None),
    }
    let mut v = 0u64;
    for (i, byte) in b[1..].iter().take(10).enumerate() {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Peek::Known(Some(v));
        }
    }
    if b.len() >= 11 {
        Peek::Known(None)
    } else {
        Peek::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftkvpb::ClientRequest;

    fn req(id: u64, payload: usize) -> ClientRequest {
        ClientRequest { request_id: id, auth_token: "x".repeat(payload), body: None }
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut wire = Vec::new();
        for i in 0..5 {
            wire.extend(encode_frame(&req(i, i as usize * 100)));
        }
        let mut d = FrameDecoder::new(1 << 20);
        let mut got = Vec::new();
        for byte in wire {
            d.push(&[byte]);
            while let Some(Frame::Message(m)) = d.next_frame() {
                got.push(ClientRequest::decode(m).unwrap().request_id);
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(!d.in_frame());
    }

    #[test]
    fn oversized_frames_are_skipped_with_their_request_id() {
        let mut wire = encode_frame(&req(77, 5000));
        wire.extend(encode_frame(&req(78, 10)));
        let mut d = FrameDecoder::new(1000);
        let mut events = Vec::new();
        for chunk in wire.chunks(7) {
            d.push(chunk);
            while let Some(f) = d.next_frame() {
                events.push(f);
            }
            assert!(d.buffered() <= 1000 + PREFIX + 7, "never buffers the oversized frame");
        }
        assert_eq!(events.len(), 2);
        assert!(matches!(events[0], Frame::TooLarge { request_id: Some(77), .. }), "{:?}", events[0]);
        match &events[1] {
            Frame::Message(m) => assert_eq!(ClientRequest::decode(m.clone()).unwrap().request_id, 78),
            other => panic!("expected the next frame, got {other:?}"),
        }
    }

    #[test]
    fn oversized_frame_in_one_push() {
        let mut wire = encode_frame(&req(5, 3000));
        wire.extend(encode_frame(&req(6, 1)));
        let mut d = FrameDecoder::new(100);
        d.push(&wire);
        assert!(matches!(d.next_frame(), Some(Frame::TooLarge { request_id: Some(5), .. })));
        assert!(matches!(d.next_frame(), Some(Frame::Message(_))));
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn oversized_frame_without_request_id_is_reported_at_once() {
        let mut d = FrameDecoder::new(100);
        d.push(&[0xff, 0xff, 0xff, 0xff, 0x00]);
        assert_eq!(d.next_frame(), Some(Frame::TooLarge { len: u32::MAX as usize, request_id: None }));
    }

    #[test]
    fn request_id_peek() {
        assert_eq!(peek_request_id(&[0x08, 0x96, 0x01]), Some(150));
        assert_eq!(peek_request_id(&[0x12, 0x01]), None);
        assert_eq!(peek_request_id(&[0x08, 0xff]), None, "truncated varint");
    }
}
