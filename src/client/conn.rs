//! One TCP connection to one endpoint: a writer thread, a reader thread, and
//! calls matched to answers by request id.
//!
//! Owns the socket, request ids, request framing, and knowing whether a
//! request left this process (written to the socket) when the connection
//! dies. Never retries and never picks endpoints: that is the pool's and the
//! client's job.

use super::dispatch::{Delivery, Dispatch, Failure, RegisterError, StreamSink};
use crate::plumbing::framing::{peek_request_id, Frame, FrameDecoder};
use crate::proto::raftkvpb::{client_request, client_response, ClientResponse};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use prost::Message;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames are coalesced into one write up to this many bytes, so pipelined
/// calls from many threads cost few system calls.
const MAX_WRITE_BATCH: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    pub max_in_flight: usize,
    pub max_response_bytes: usize,
    /// A write blocked this long (the server stopped reading) kills the
    /// connection.
    pub write_timeout: Duration,
    pub auth_token: Option<String>,
}

/// A request body encoded once, framed per attempt with a fresh request id
/// (a retry on another connection needs a new id, not a new encoding).
#[derive(Debug, Clone)]
pub struct EncodedRequest {
    /// The `body` field of a `ClientRequest`, tag included.
    body: Vec<u8>,
    /// Encoded size of the inner etcd message (what gRPC would limit).
    inner_len: usize,
}

impl EncodedRequest {
    pub fn new(body: &client_request::Body) -> EncodedRequest {
        let mut buf = Vec::with_capacity(body.encoded_len());
        body.encode(&mut buf);
        let inner_len = inner_message_len(buf.as_slice());
        EncodedRequest { body: buf, inner_len }
    }

    /// Size of the etcd request message inside the envelope.
    pub fn inner_len(&self) -> usize {
        self.inner_len
    }

    /// The frame: length prefix, then `ClientRequest` fields in field order
    /// (request_id, auth_token, body), which is what prost would write.
    pub fn frame(&self, request_id: u64, auth_token: &str) -> Vec<u8> {
        let mut msg = Vec::with_capacity(self.body.len() + 16 + auth_token.len());
        prost::encoding::encode_key(1, prost::encoding::WireType::Varint, &mut msg);
        prost::encoding::encode_varint(request_id, &mut msg);
        if !auth_token.is_empty() {
            prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut msg);
            prost::encoding::encode_varint(auth_token.len() as u64, &mut msg);
            msg.extend_from_slice(auth_token.as_bytes());
        }
        msg.extend_from_slice(&self.body);
        let mut frame = Vec::with_capacity(4 + msg.len());
        frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        frame.extend_from_slice(&msg);
        frame
    }
}

/// Length of the message inside one encoded length-delimited field.
fn inner_message_len(mut field: &[u8]) -> usize {
    let total = field.len();
    if prost::encoding::decode_key(&mut field).is_err() {
        return total;
    }
    prost::encoding::decode_varint(&mut field).map(|n| n as usize).unwrap_or(total)
}

/// Why a call on this connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The request never left this process: safe to send elsewhere.
    NotSent(String),
    /// The connection died after the request may have been written.
    Lost(String),
    /// No answer before the deadline.
    Timeout,
    /// The answer could not be used.
    Protocol(String),
}

struct Outgoing {
    frame: Vec<u8>,
    /// Set by the writer just before the frame goes to the socket.
    sent: Arc<AtomicBool>,
}

/// State shared with the reader and writer threads. The threads never hold
/// a `Connection`, so dropping the last `Connection` can join them.
struct Shared {
    dispatch: Dispatch,
    socket: TcpStream,
}

impl Shared {
    fn close(&self, reason: &str) {
        self.dispatch.close(reason);
        // Wakes the other thread: a blocked read or write returns at once.
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// One connection. Cheap to share behind an `Arc`; dropping it closes the
/// socket and joins its threads.
pub struct Connection {
    endpoint: String,
    shared: Arc<Shared>,
    /// The only strong handle: dropping it ends the writer loop (streams
    /// hold weak ones, so they never keep a dead connection's threads).
    writer: Option<Arc<Sender<Outgoing>>>,
    threads: Vec<JoinHandle<()>>,
    next_id: AtomicU64,
    auth_token: String,
}

impl Connection {
    /// Dials `endpoint` (`HOST:PORT`), trying each resolved address within
    /// `timeout`.
    pub fn dial(endpoint: &str, opts: &ConnOptions, timeout: Duration) -> Result<Connection, String> {
        let socket = connect_tcp(endpoint, timeout)?;
        Connection::start(endpoint, socket, opts).map_err(|e| e.to_string())
    }

    /// Wraps an established stream: starts the reader and writer threads.
    pub fn start(endpoint: &str, socket: TcpStream, opts: &ConnOptions) -> std::io::Result<Connection> {
        socket.set_nodelay(true)?;
        socket.set_write_timeout(Some(opts.write_timeout.max(Duration::from_millis(100))))?;
        let shared = Arc::new(Shared { dispatch: Dispatch::new(opts.max_in_flight), socket: socket.try_clone()? });
        let (tx, rx) = bounded::<Outgoing>(opts.max_in_flight.max(1));
        let mut threads = Vec::with_capacity(2);
        let reader_socket = socket.try_clone()?;
        let (s1, max_resp) = (shared.clone(), opts.max_response_bytes);
        threads.push(
            std::thread::Builder::new()
                .name(format!("rk-client-rd {endpoint}"))
                .spawn(move || reader_loop(&s1, reader_socket, max_resp))?,
        );
        let s2 = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("rk-client-wr {endpoint}"))
            .spawn(move || writer_loop(&s2, socket, rx));
        match spawned {
            Ok(h) => threads.push(h),
            Err(e) => {
                shared.close("could not start the writer thread");
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
        Ok(Connection {
            endpoint: endpoint.to_string(),
            shared,
            writer: Some(Arc::new(tx)),
            threads,
            next_id: AtomicU64::new(1),
            auth_token: opts.auth_token.clone().unwrap_or_default(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// False once the connection has failed or been closed.
    pub fn is_alive(&self) -> bool {
        self.shared.dispatch.closed().is_none()
    }

    /// Calls still waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.shared.dispatch.in_flight()
    }

    /// Closes the connection; waiting calls fail with `Lost`.
    pub fn close(&self, reason: &str) {
        self.shared.close(reason);
    }

    /// Sends one request and waits for its single answer until `deadline`.
    pub fn call(&self, req: &EncodedRequest, deadline: Instant) -> Result<client_response::Body, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded::<Delivery>(1);
        match self.shared.dispatch.register_unary(id, tx, deadline) {
            Ok(()) => {}
            Err(RegisterError::Closed(r)) => return Err(CallError::NotSent(r)),
            Err(RegisterError::Timeout) => return Err(CallError::Timeout),
        }
        let sent = Arc::new(AtomicBool::new(false));
        if let Err(e) = self.enqueue(req.frame(id, &self.auth_token), &sent, deadline) {
            self.shared.dispatch.remove(id);
            return Err(e);
        }
        let outcome = match rx.recv_deadline(deadline) {
            Ok(d) => d,
            Err(RecvTimeoutError::Timeout) => {
                self.shared.dispatch.remove(id);
                // The answer may have landed between the timeout and the
                // removal; it is still good.
                match rx.try_recv() {
                    Ok(d) => d,
                    Err(_) => return Err(CallError::Timeout),
                }
            }
            // The waiter is always answered or failed before it is dropped.
            Err(RecvTimeoutError::Disconnected) => Err(Failure::Lost("connection closed".into())),
        };
        match outcome {
            Ok(body) => Ok(body),
            Err(Failure::Protocol(m)) => Err(CallError::Protocol(m)),
            Err(Failure::Lost(r)) if sent.load(Ordering::SeqCst) => Err(CallError::Lost(r)),
            Err(Failure::Lost(r)) => Err(CallError::NotSent(r)),
        }
    }

    /// Opens a stream: sends one request whose answers (many, same id) are
    /// read from the returned handle. At most `capacity` answers are
    /// buffered; a consumer that falls further behind is cut off.
    pub fn open_stream(&self, req: &EncodedRequest, capacity: usize, deadline: Instant) -> Result<Stream, CallError> {
        self.open_stream_with(req, capacity, None, deadline)
    }

    /// `open_stream`, flow-controlled when `patience` is given: a full
    /// buffer holds up the connection's reader (and so the server) for up
    /// to `patience` instead of cutting the consumer off (see
    /// `StreamSink::patience`).
    pub fn open_stream_with(
        &self,
        req: &EncodedRequest,
        capacity: usize,
        patience: Option<Duration>,
        deadline: Instant,
    ) -> Result<Stream, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded::<Delivery>(capacity.max(1));
        let end = Arc::new(Mutex::new(None));
        match self.shared.dispatch.register_stream(id, StreamSink { tx, end: end.clone(), patience }, deadline) {
            Ok(()) => {}
            Err(RegisterError::Closed(r)) => return Err(CallError::NotSent(r)),
            Err(RegisterError::Timeout) => return Err(CallError::Timeout),
        }
        let sent = Arc::new(AtomicBool::new(false));
        if let Err(e) = self.enqueue(req.frame(id, &self.auth_token), &sent, deadline) {
            self.shared.dispatch.remove(id);
            return Err(e);
        }
        Ok(Stream {
            endpoint: self.endpoint.clone(),
            id,
            rx,
            end,
            shared: self.shared.clone(),
            writer: self.writer.as_ref().map(Arc::downgrade),
            auth_token: self.auth_token.clone(),
        })
    }

    fn enqueue(&self, frame: Vec<u8>, sent: &Arc<AtomicBool>, deadline: Instant) -> Result<(), CallError> {
        let Some(writer) = &self.writer else {
            return Err(CallError::NotSent("connection closed".into()));
        };
        match writer.send_deadline(Outgoing { frame, sent: sent.clone() }, deadline) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(CallError::Timeout),
            Err(SendTimeoutError::Disconnected(_)) => {
                Err(CallError::NotSent(self.shared.dispatch.closed().unwrap_or_else(|| "connection closed".into())))
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close("connection closed by the client");
        // Dropping the sender ends the writer loop.
        self.writer = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The answers of one stream, and the way to send it more requests.
/// Dropping it cancels the stream on the server.
pub struct Stream {
    endpoint: String,
    id: u64,
    rx: Receiver<Delivery>,
    end: Arc<Mutex<Option<Failure>>>,
    shared: Arc<Shared>,
    writer: Option<std::sync::Weak<Sender<Outgoing>>>,
    auth_token: String,
}

impl Stream {
    pub fn request_id(&self) -> u64 {
        self.id
    }

    /// The endpoint the stream is open on.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends another request on the stream (a watch create or cancel, say).
    pub fn send(&self, body: &client_request::Body, deadline: Instant) -> Result<(), CallError> {
        let Some(writer) = self.writer.as_ref().and_then(|w| w.upgrade()) else {
            return Err(CallError::NotSent("connection closed".into()));
        };
        let frame = EncodedRequest::new(body).frame(self.id, &self.auth_token);
        let out = Outgoing { frame, sent: Arc::new(AtomicBool::new(false)) };
        match writer.send_deadline(out, deadline) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(CallError::Timeout),
            Err(SendTimeoutError::Disconnected(_)) => Err(CallError::NotSent("connection closed".into())),
        }
    }

    /// The next answer, `Err(CallError::Timeout)` if none came before
    /// `deadline`, or why the stream ended.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<client_response::Body, CallError> {
        self.outcome(self.rx.recv_deadline(deadline))
    }

    /// `recv_deadline`, but gives `Ok(None)` as soon as `wake` has a message
    /// or is disconnected, so a thread waiting here can be stopped at once
    /// (the lease keep-alive loop).
    pub fn recv_deadline_or(
        &self,
        deadline: Instant,
        wake: &Receiver<()>,
    ) -> Result<Option<client_response::Body>, CallError> {
        crossbeam_channel::select! {
            recv(self.rx) -> d => self.outcome(d.map_err(|_| RecvTimeoutError::Disconnected)).map(Some),
            recv(wake) -> _ => Ok(None),
            default(deadline.saturating_duration_since(Instant::now())) => {
                self.outcome(Err(RecvTimeoutError::Timeout)).map(Some)
            }
        }
    }

    fn outcome(&self, got: Result<Delivery, RecvTimeoutError>) -> Result<client_response::Body, CallError> {
        match got {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(Failure::Lost(r))) => Err(CallError::Lost(r)),
            Ok(Err(Failure::Protocol(m))) => Err(CallError::Protocol(m)),
            Err(RecvTimeoutError::Timeout) => {
                // The sink is dropped when the stream ends; until then a
                // timeout is just a quiet stream, unless it already ended.
                match self.end.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                    Some(f) if self.rx.is_empty() => Err(failure_to_call_error(f)),
                    _ => Err(CallError::Timeout),
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let end = self.end.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(end.map(failure_to_call_error).unwrap_or_else(|| CallError::Lost("stream closed".into())))
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.shared.dispatch.remove(self.id);
        // Tell the server, without waiting: if the writer is busy the
        // connection's close will end the stream anyway.
        if let Some(writer) = self.writer.take().and_then(|w| w.upgrade()) {
            let cancel = client_request::Body::CancelStream(crate::proto::raftkvpb::CancelStream {});
            let frame = EncodedRequest::new(&cancel).frame(self.id, &self.auth_token);
            let _ = writer.try_send(Outgoing { frame, sent: Arc::new(AtomicBool::new(false)) });
        }
    }
}

fn failure_to_call_error(f: Failure) -> CallError {
    match f {
        Failure::Lost(r) => CallError::Lost(r),
        Failure::Protocol(m) => CallError::Protocol(m),
    }
}

fn writer_loop(shared: &Shared, mut socket: TcpStream, rx: Receiver<Outgoing>) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        batch.clear();
        first.sent.store(true, Ordering::SeqCst);
        batch.extend_from_slice(&first.frame);
        while batch.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(next) => {
                    next.sent.store(true, Ordering::SeqCst);
                    batch.extend_from_slice(&next.frame);
                }
                Err(_) => break,
            }
        }
        if let Err(e) = socket.write_all(&batch) {
            shared.close(&format!("write failed: {e}"));
            break;
        }
        // Do not keep a huge buffer around after a burst of big requests.
        if batch.capacity() > 4 * MAX_WRITE_BATCH {
            batch = Vec::with_capacity(64 * 1024);
        }
    }
    // Frames still queued are dropped unwritten; their callers see
    // `sent == false` and may send them elsewhere.
}

fn reader_loop(shared: &Shared, mut socket: TcpStream, max_response: usize) {
    let mut decoder = FrameDecoder::new(max_response);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match socket.read(&mut buf) {
            Ok(0) => {
                shared.close("connection closed by the server");
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                shared.close(&format!("read failed: {e}"));
                return;
            }
        };
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame() {
            if let Err(reason) = handle_frame(shared, frame, max_response) {
                shared.close(&reason);
                return;
            }
        }
    }
}

/// Routes one frame. An error means the stream can no longer be trusted.
fn handle_frame(shared: &Shared, frame: Frame, max_response: usize) -> Result<(), String> {
    match frame {
        Frame::Message(bytes) => match ClientResponse::decode(bytes.clone()) {
            Ok(resp) => {
                match resp.body {
                    Some(body) => {
                        if !shared.dispatch.deliver(resp.request_id, body) {
                            log::debug!("answer to request {} that nobody waits for", resp.request_id);
                        }
                    }
                    None => {
                        shared.dispatch.fail_one(resp.request_id, Failure::Protocol("answer without a body".into()))
                    }
                }
                Ok(())
            }
            Err(e) => match peek_request_id(&bytes) {
                Some(id) => {
                    shared.dispatch.fail_one(id, Failure::Protocol(format!("undecodable answer: {e}")));
                    Ok(())
                }
                None => Err(format!("undecodable answer without a request id: {e}")),
            },
        },
        Frame::TooLarge { len, request_id } => match request_id {
            Some(id) => {
                shared.dispatch.fail_one(
                    id,
                    Failure::Protocol(format!("grpc: received message larger than max ({len} vs. {max_response})")),
                );
                Ok(())
            }
            None => Err(format!("answer of {len} bytes over the limit, without a request id")),
        },
    }
}

/// Opens a TCP connection to `endpoint` (`HOST:PORT`), trying each resolved
/// address within `timeout`. Failures are worded as etcd's client words them.
pub fn connect_tcp(endpoint: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs = endpoint.to_socket_addrs().map_err(|e| format!("lookup {endpoint}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut last = format!("lookup {endpoint}: no addresses");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = "i/o timeout".to_string();
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = connect_error_text(&e),
        }
    }
    Err(last)
}

/// Go's wording for the common dial failures, as etcd prints them.
fn connect_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".to_string(),
        _ => format!("connect: {e}"),
    }
}

/// Builds a `ClientRequest` from a frame made by `EncodedRequest::frame`
/// (used by tests to check the hand-made framing).
#[cfg(test)]
pub fn decode_frame(frame: &[u8]) -> Option<crate::proto::raftkvpb::ClientRequest> {
    crate::proto::raftkvpb::ClientRequest::decode(frame.get(4..)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;

    #[test]
    fn hand_made_frames_decode_as_client_requests() {
        let body = client_request::Body::Put(PutRequest {
            key: "k".into(),
            value: vec![7u8; 300].into(),
            ..Default::default()
        });
        let enc = EncodedRequest::new(&body);
        for (id, token) in [(1u64, ""), (u64::MAX, "tok"), (300, "")] {
            let frame = enc.frame(id, token);
            let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            assert_eq!(len, frame.len() - 4);
            let req = decode_frame(&frame).unwrap();
            assert_eq!(req.request_id, id);
            assert_eq!(req.auth_token, token);
            assert_eq!(req.body, Some(body.clone()));
            assert_eq!(peek_request_id(&frame[4..]), Some(id));
        }
    }

    #[test]
    fn inner_length_is_the_etcd_message_size() {
        // etcd's client reports 2097163 for a put of key "big1" and a 2 MiB value.
        let body = client_request::Body::Put(PutRequest {
            key: "big1".into(),
            value: vec![0u8; 2 * 1024 * 1024].into(),
            ..Default::default()
        });
        assert_eq!(EncodedRequest::new(&body).inner_len(), 2097163);
    }
}
