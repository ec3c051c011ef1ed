//! One connection of a benchmark run, driven by one thread.
//!
//! A connection carries several closed-loop clients: each has at most one
//! request outstanding and sends its next one as soon as the answer
//! arrives, as etcd's benchmark clients do over a shared gRPC connection.
//! Driving them from one thread per connection (not one thread per client)
//! keeps the load generator's own CPU small on a machine it shares with the
//! servers: with a thread per client it took a third of both cores, in
//! wake-ups and context switches. Frames that become ready together go out
//! in one write.
//!
//! Owns the socket, request ids and send times. Never retries: a failed
//! request counts as an error, a request unanswered after the request
//! timeout counts as a timeout (its client moves on), and a connection that
//! dies ends its clients.

use super::report::Latencies;
use super::workload::Workload;
use crate::client::conn::connect_tcp;
use crate::client::ClientError;
use crate::plumbing::framing::{encode_frame_into, Frame, FrameDecoder};
use crate::plumbing::ApiError;
use crate::proto::raftkvpb::{client_request, client_response::Body, ClientRequest, ClientResponse};
use bytes::BytesMut;
use indicatif::ProgressBar;
use prost::Message as _;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest answer accepted (a range of the benchmark's one key is small).
const MAX_RESPONSE_BYTES: usize = 8 << 20;
const READ_CHUNK: usize = 64 * 1024;
/// How often, at most, a blocked read wakes up to look for timed-out
/// requests.
const TIMEOUT_CHECK: Duration = Duration::from_millis(100);

/// Opens a connection to `endpoint` (`HOST:PORT`) within `timeout`.
pub fn dial(endpoint: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let endpoint = crate::client::endpoint::normalize(endpoint)?;
    let refused = |reason: String| ClientError::Connect { endpoint: endpoint.clone(), reason };
    let s = connect_tcp(&endpoint, timeout).map_err(refused)?;
    s.set_nodelay(true).map_err(|e| refused(e.to_string()))?;
    s.set_read_timeout(Some(TIMEOUT_CHECK)).map_err(|e| refused(e.to_string()))?;
    Ok(s)
}

/// One answer: its request id and the request's outcome. An error means
/// the stream can no longer be trusted.
fn decode_answer(frame: Frame) -> Result<(u64, Result<(), ClientError>), ClientError> {
    let bytes = match frame {
        Frame::Message(bytes) => bytes,
        Frame::TooLarge { len, .. } => {
            return Err(ClientError::Protocol(format!("answer of {len} bytes over {MAX_RESPONSE_BYTES}")))
        }
    };
    let response =
        ClientResponse::decode(bytes).map_err(|e| ClientError::Protocol(format!("undecodable answer: {e}")))?;
    let outcome = match response.body {
        Some(Body::Error(e)) => Err(ClientError::Api(ApiError::from_proto(&e))),
        Some(_) => Ok(()),
        None => Err(ClientError::Protocol("answer without a body".into())),
    };
    Ok((response.request_id, outcome))
}

/// Sends one request on a fresh connection and waits for its answer (the
/// key a range run reads is put this way before the run starts).
pub fn call_once(socket: &mut TcpStream, body: client_request::Body, timeout: Duration) -> Result<(), ClientError> {
    let closed = |what: &str, e: std::io::Error| ClientError::Closed { reason: format!("{what} failed: {e}") };
    let mut out = BytesMut::new();
    encode_frame_into(&ClientRequest { request_id: 0, auth_token: String::new(), body: Some(body) }, &mut out);
    socket.write_all(&out).map_err(|e| closed("write", e))?;
    let deadline = Instant::now() + timeout;
    let mut decoder = FrameDecoder::new(MAX_RESPONSE_BYTES);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        if let Some(frame) = decoder.next_frame() {
            return decode_answer(frame)?.1;
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout);
        }
        match socket.read(&mut buf) {
            Ok(0) => return Err(ClientError::Closed { reason: "connection closed by the server".into() }),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(closed("read", e)),
        }
    }
}

/// What one connection saw.
#[derive(Default)]
pub struct ConnOutcome {
    /// Latencies of the requests answered without an error.
    pub latencies: Latencies,
    pub errors: u64,
    pub first_error: Option<ClientError>,
}

impl ConnOutcome {
    fn error(&mut self, e: ClientError) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

/// The run-wide state every connection draws its requests from.
pub struct Shared<'a> {
    pub workload: &'a Workload,
    /// The next request number; the run ends at `total`.
    pub next: &'a AtomicU64,
    pub total: u64,
    pub request_timeout: Duration,
    pub progress: &'a ProgressBar,
}

/// One connection's clients.
pub struct Driver<'a> {
    shared: &'a Shared<'a>,
    socket: TcpStream,
    clients: usize,
    rng: ChaCha8Rng,
    /// Request id -> when it was sent.
    in_flight: HashMap<u64, Instant>,
    next_id: u64,
    out: BytesMut,
    outcome: ConnOutcome,
}

impl<'a> Driver<'a> {
    pub fn new(shared: &'a Shared<'a>, socket: TcpStream, clients: usize, rng: ChaCha8Rng) -> Driver<'a> {
        Driver {
            shared,
            socket,
            clients,
            rng,
            in_flight: HashMap::with_capacity(clients),
            next_id: 1,
            out: BytesMut::with_capacity(64 * 1024),
            outcome: ConnOutcome::default(),
        }
    }

    /// Runs this connection's clients until the run's requests are used up
    /// and every one of them is answered (or failed).
    pub fn run(mut self) -> ConnOutcome {
        for _ in 0..self.clients {
            self.send_next();
        }
        let mut decoder = FrameDecoder::new(MAX_RESPONSE_BYTES);
        let mut buf = vec![0u8; READ_CHUNK];
        while !self.in_flight.is_empty() {
            if let Err(e) = self.flush() {
                self.fail_all(e);
                break;
            }
            match self.socket.read(&mut buf) {
                Ok(0) => {
                    self.fail_all(ClientError::Closed { reason: "connection closed by the server".into() });
                    break;
                }
                Ok(n) => decoder.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail_all(ClientError::Closed { reason: format!("read failed: {e}") });
                    break;
                }
            }
            let now = Instant::now();
            let mut finished = 0;
            while let Some(frame) = decoder.next_frame() {
                match self.on_frame(frame, now) {
                    Ok(true) => finished += 1,
                    Ok(false) => {}
                    Err(e) => {
                        self.fail_all(e);
                        return self.outcome;
                    }
                }
            }
            finished += self.expire(now);
            self.shared.progress.inc(finished);
            // Each finished client sends its next request.
            for _ in 0..finished {
                self.send_next();
            }
        }
        self.outcome
    }

    /// Queues the next request of the run, if any is left.
    fn send_next(&mut self) {
        let i = self.shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.shared.total {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let body = self.shared.workload.request(i, &mut self.rng);
        let request = ClientRequest { request_id: id, auth_token: String::new(), body: Some(body) };
        encode_frame_into(&request, &mut self.out);
        self.in_flight.insert(id, Instant::now());
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.socket.write_all(&self.out).map_err(|e| ClientError::Closed { reason: format!("write failed: {e}") })?;
        self.out.clear();
        Ok(())
    }

    /// Records one answer; `true` if it finished a request of ours. An
    /// error means the stream can no longer be trusted.
    fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<bool, ClientError> {
        let (id, outcome) = decode_answer(frame)?;
        // An unknown id answers a request already counted as timed out.
        let Some(sent) = self.in_flight.remove(&id) else { return Ok(false) };
        match outcome {
            Ok(()) => self.outcome.latencies.record(now.saturating_duration_since(sent)),
            Err(e) => self.outcome.error(e),
        }
        Ok(true)
    }

    /// Counts requests older than the request timeout as timed out.
    fn expire(&mut self, now: Instant) -> u64 {
        let timeout = self.shared.request_timeout;
        let before = self.in_flight.len();
        self.in_flight.retain(|_, sent| now.saturating_duration_since(*sent) < timeout);
        let expired = (before - self.in_flight.len()) as u64;
        for _ in 0..expired {
            self.outcome.error(ClientError::Timeout);
        }
        expired
    }

    /// The connection is unusable: every request on it fails with `e`, and
    /// its clients stop.
    fn fail_all(&mut self, e: ClientError) {
        let n = self.in_flight.len() as u64;
        self.in_flight.clear();
        self.shared.progress.inc(n);
        for _ in 0..n {
            self.outcome.error(e.clone());
        }
    }
}
