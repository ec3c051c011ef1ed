//! The client I/O thread: one mio `Poll` over the listener and every client
//! connection, woken by a `Waker` when another thread queues output in a
//! connection's `Outbox`.
//!
//! Owns connections and their bytes, and the table of what is in flight on
//! each: unary requests (one answer, a deadline) and streams (many answers
//! until they end, an owner). It reads frames, decodes requests, hands new
//! ones to the dispatcher and later ones on an open stream to its owner,
//! and writes answers back in any order, matched by request id; answers to
//! requests that timed out or streams that ended are dropped. When a stream
//! ends from the client's side (`CancelStream`, or the connection closing)
//! its owner is told. It never blocks on anything but the poll, and it
//! bounds everything a client can make it hold: frame size, buffered
//! output, requests and streams in flight per connection, the number of
//! connections, time to finish a frame, and idle time.

use super::dispatch::Dispatcher;
use super::in_flight::InFlight;
use crate::plumbing::errors::ApiError;
use crate::plumbing::framing::{encode_frame_into, peek_request_id, Frame, FrameDecoder};
use crate::plumbing::outbox::{Notifier, Outbox};
use crate::proto::raftkvpb::{client_response::Body, ClientRequest, ClientResponse, ErrorCode};
use crate::server::status::NodeStatus;
use bytes::{Buf, BytesMut};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use prost::Message as _;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);
const FIRST_CONN: u64 = 2;
const READ_CHUNK: usize = 64 * 1024;
const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame decoded (larger ones are skipped and answered with
    /// "request is too large").
    pub max_frame: usize,
    /// A connection with nothing in flight is closed after this long.
    pub idle_timeout: Duration,
    /// A frame must be complete within this long once started.
    pub frame_timeout: Duration,
    /// A request is answered with a timeout after this long.
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight_per_conn: usize,
    /// Reading from a connection pauses while this much output waits.
    pub max_output: usize,
    /// Stream messages (watch events) are held back by their producer
    /// while a connection has this many unsent bytes.
    pub stream_output: usize,
    /// On shutdown, how long requests in flight may still finish.
    pub shutdown_grace: Duration,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    decoder: FrameDecoder,
    /// Where other threads queue this connection's answers.
    outbox: Arc<Outbox>,
    /// Encoded answers not yet written.
    out: BytesMut,
    in_flight: InFlight,
    last_activity: Instant,
    frame_started: Option<Instant>,
    interest: Interest,
    /// Reading stopped because too much output waited; mio's edge-triggered
    /// readiness will not report the bytes already waiting, so reading is
    /// resumed explicitly once the output drains.
    paused: bool,
}

pub struct ClientIo {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: HashMap<Token, Conn>,
    next_conn: u64,
    notifier: Arc<Notifier>,
    dispatcher: Dispatcher,
    status: Arc<NodeStatus>,
    limits: Limits,
    stop: Arc<AtomicBool>,
    /// Paused connections whose output drained: read them again.
    resume: Vec<Token>,
}

impl ClientIo {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        listener: TcpListener,
        notifier: Arc<Notifier>,
        dispatcher: Dispatcher,
        status: Arc<NodeStatus>,
        limits: Limits,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<ClientIo> {
        let mut listener = listener;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(ClientIo {
            poll,
            listener: Some(listener),
            conns: HashMap::new(),
            next_conn: FIRST_CONN,
            notifier,
            dispatcher,
            status,
            limits,
            stop,
            resume: Vec::new(),
        })
    }

    /// Serves until `stop` is set, then stops accepting, lets requests in
    /// flight finish for the grace period, and closes everything.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut stop_deadline: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::Acquire) && stop_deadline.is_none() {
                if let Some(mut l) = self.listener.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
                stop_deadline = Some(Instant::now() + self.limits.shutdown_grace);
            }
            if let Some(deadline) = stop_deadline {
                // Streams never finish on their own: only unary requests
                // and unwritten output hold the stop back.
                let busy = self.conns.values().any(|c| !c.out.is_empty() || c.in_flight.has_unary());
                if !busy || Instant::now() >= deadline {
                    break;
                }
            }
            if let Err(e) = self.poll.poll(&mut events, Some(POLL_INTERVAL)) {
                if e.kind() != ErrorKind::Interrupted {
                    log::error!("client I/O poll failed: {e}");
                    break;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    token => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(token);
                        }
                        if ev.is_writable() {
                            self.flush(token);
                        }
                    }
                }
            }
            self.drain_outboxes();
            for token in std::mem::take(&mut self.resume) {
                self.on_readable(token);
            }
            self.sweep();
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            if let Some(c) = self.conns.get_mut(&token) {
                let _ = c.stream.flush();
            }
            self.close(token, "");
        }
    }

    fn accept_all(&mut self) {
        let Some(listener) = self.listener.as_ref() else { return };
        loop {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.limits.max_connections {
                        log::warn!("refusing client {peer}: {} connections already", self.conns.len());
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let id = self.next_conn;
                    self.next_conn += 1;
                    let token = Token(id as usize);
                    if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE) {
                        log::warn!("cannot register client {peer}: {e}");
                        continue;
                    }
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            peer,
                            decoder: FrameDecoder::new(self.limits.max_frame),
                            outbox: Outbox::new(id, self.limits.stream_output, self.notifier.clone()),
                            out: BytesMut::new(),
                            in_flight: InFlight::new(self.limits.max_in_flight_per_conn, self.limits.request_timeout),
                            last_activity: Instant::now(),
                            frame_started: None,
                            interest: Interest::READABLE,
                            paused: false,
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accepting a client failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_readable(&mut self, token: Token) {
        let mut closed: Option<String> = None;
        let mut frames = Vec::new();
        {
            let Some(c) = self.conns.get_mut(&token) else { return };
            let mut buf = [0u8; READ_CHUNK];
            // Stop reading while too much output waits: the client must
            // consume its answers first.
            c.paused = false;
            loop {
                if c.out.len() >= self.limits.max_output {
                    c.paused = true;
                    break;
                }
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        if c.decoder.in_frame() {
                            closed = Some("closed the connection in the middle of a frame".into());
                        } else {
                            closed = Some(String::new());
                        }
                        break;
                    }
                    Ok(n) => {
                        let was_in_frame = c.decoder.in_frame();
                        c.decoder.push(&buf[..n]);
                        c.last_activity = Instant::now();
                        while let Some(f) = c.decoder.next_frame() {
                            frames.push(f);
                        }
                        if c.decoder.in_frame() {
                            if !was_in_frame || !frames.is_empty() {
                                c.frame_started = Some(Instant::now());
                            }
                        } else {
                            c.frame_started = None;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        closed = Some(format!("read failed: {e}"));
                        break;
                    }
                }
            }
        }
        for f in frames {
            self.on_frame(token, f);
        }
        match closed {
            Some(why) => self.close(token, &why),
            None => self.flush(token),
        }
    }

    fn on_frame(&mut self, token: Token, frame: Frame) {
        let Some(c) = self.conns.get_mut(&token) else { return };
        let (bytes, request_id) = match frame {
            Frame::TooLarge { len, request_id } => {
                log::warn!("client {}: frame of {len} bytes is over the limit", c.peer);
                write_response(c, request_id.unwrap_or(0), Err(ApiError::of(ErrorCode::RequestTooLarge)));
                return;
            }
            Frame::Message(b) => {
                let id = peek_request_id(&b);
                (b, id)
            }
        };
        let req = match ClientRequest::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("client {}: undecodable request: {e}", c.peer);
                let err = ApiError::new(ErrorCode::MalformedRequest, format!("raftkv: malformed request: {e}"));
                write_response(c, request_id.unwrap_or(0), Err(err));
                return;
            }
        };
        let outbox = c.outbox.clone();
        let dispatcher = &self.dispatcher;
        if let Some((rid, e)) = c.in_flight.admit(req, Instant::now(), |req| dispatcher.dispatch(req, &outbox)) {
            write_response(c, rid, Err(e));
        }
    }

    /// Moves what other threads queued into the connections' write buffers,
    /// dropping answers nobody waits for any more.
    fn drain_outboxes(&mut self) {
        let mut touched = Vec::new();
        for conn in self.notifier.take_ready() {
            let token = Token(conn as usize);
            let Some(c) = self.conns.get_mut(&token) else { continue };
            for out in c.outbox.drain() {
                if c.in_flight.take_answer(&out) {
                    encode_frame_into(&out.response, &mut c.out);
                }
            }
            touched.push(token);
        }
        for token in touched {
            self.flush(token);
        }
    }

    /// Writes what the connection's buffer holds, as far as the socket takes
    /// it, and asks for writability only while something remains.
    fn flush(&mut self, token: Token) {
        let mut failed = None;
        {
            let Some(c) = self.conns.get_mut(&token) else { return };
            while !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(0) => {
                        failed = Some("connection closed while writing".to_string());
                        break;
                    }
                    Ok(n) => c.out.advance(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        failed = Some(format!("write failed: {e}"));
                        break;
                    }
                }
            }
            if failed.is_none() {
                let mut want = Interest::READABLE;
                if !c.out.is_empty() {
                    want = want.add(Interest::WRITABLE);
                }
                if want != c.interest {
                    if let Err(e) = self.poll.registry().reregister(&mut c.stream, token, want) {
                        failed = Some(format!("reregister failed: {e}"));
                    }
                    c.interest = want;
                }
            }
            c.outbox.set_buffered(c.out.len());
            if c.paused && c.out.len() < self.limits.max_output {
                c.paused = false;
                self.resume.push(token);
            }
        }
        if let Some(why) = failed {
            self.close(token, &why);
        }
    }

    /// Times out requests, and closes idle connections and connections that
    /// do not finish a frame in time.
    fn sweep(&mut self) {
        let now = Instant::now();
        let no_leader = self.status.leader() == 0;
        let mut to_close = Vec::new();
        let mut to_flush = Vec::new();
        for (&token, c) in self.conns.iter_mut() {
            for id in c.in_flight.expire(now) {
                let code = if no_leader { ErrorCode::NoLeader } else { ErrorCode::Timeout };
                write_response(c, id, Err(ApiError::of(code)));
                to_flush.push(token);
            }
            if let Some(started) = c.frame_started {
                if now.duration_since(started) > self.limits.frame_timeout {
                    to_close.push((token, format!("a frame was not completed within {:?}", self.limits.frame_timeout)));
                    continue;
                }
            }
            let idle = c.in_flight.is_empty() && !c.decoder.in_frame() && c.out.is_empty();
            if idle && now.duration_since(c.last_activity) > self.limits.idle_timeout {
                to_close.push((token, format!("idle for {:?}", self.limits.idle_timeout)));
            }
        }
        for token in to_flush {
            self.flush(token);
        }
        for (token, why) in to_close {
            self.close(token, &why);
        }
    }

    fn close(&mut self, token: Token, why: &str) {
        if let Some(mut c) = self.conns.remove(&token) {
            if !why.is_empty() {
                log::info!("closing client {}: {why}", c.peer);
            }
            c.outbox.close();
            c.in_flight.close();
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }
}

/// Queues an answer written by the I/O thread itself.
fn write_response(c: &mut Conn, request_id: u64, r: Result<Body, ApiError>) {
    let body = match r {
        Ok(b) => b,
        Err(e) => Body::Error(e.to_proto()),
    };
    encode_frame_into(&ClientResponse { request_id, body: Some(body) }, &mut c.out);
}
