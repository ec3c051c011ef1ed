//! Forwarding to the leader: requests that must be served by the leader
//! without going through the log (a lease's time-to-live by the leader's
//! clock; later, member promote checks) travel from a follower to the
//! leader over the peer port, on connections of their own (`Hello` kind
//! `FORWARD`), and the answer comes back to the follower, which answers its
//! client.
//!
//! - **Sending** (`Forwarder`): one connection per target member, owned by
//!   a `forward-<id>` thread that connects (with a timeout), writes the
//!   requests queued for it and sweeps the ones past their deadline; a
//!   reader thread completes answers by id. Every queue is bounded; a
//!   caller never blocks (it runs on the client I/O thread): a full queue,
//!   a lost connection or a deadline completes the request with an error.
//! - **Serving** (`serve`): a handed-over inbound connection runs on its
//!   own thread; each request is dispatched as a client's would be, into an
//!   `Outbox` that a writer thread drains to the socket. Forwarded requests
//!   are served where they land, never forwarded again.
//!
//! Owns the forwarding connections and their bytes; never interprets a
//! request (the dispatcher does), never imports the server.

use crate::plumbing::doorbell::Doorbell;
use crate::plumbing::errors::ApiError;
use crate::plumbing::framing::{encode_frame, Frame, FrameDecoder};
use crate::plumbing::outbox::{Notifier, Outbox, Responder};
use crate::proto::peerpb::{hello::Kind, Hello, HelloReply};
use crate::proto::raftkvpb::{client_request, client_response::Body, ClientRequest, ClientResponse, ErrorCode};
use crate::transport::members::Members;
use bytes::BytesMut;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Requests waiting for one target's connection, at most.
const QUEUE: usize = 4096;
/// Answers awaited on one connection, at most.
const MAX_PENDING: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A served connection idle this long is closed (the sender reconnects).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest forwarded frame (a request is at most the request limit; an
/// answer, a lease's keys, may be larger).
const MAX_FRAME: usize = 64 << 20;
/// Unsent answers a served connection holds for stream messages.
const STREAM_LIMIT: usize = 4 << 20;
/// Served forwarding connections open at once, at most.
pub const MAX_SERVED: usize = 64;

/// Where a forwarded request's answer goes (called once, must not block).
pub type Done = Box<dyn FnOnce(Result<Body, ApiError>) + Send>;

/// How a leader serves a forwarded request: dispatched as a client's
/// request would be, answered into the outbox.
pub type ForwardDispatch = Arc<dyn Fn(ClientRequest, &Arc<Outbox>) + Send + Sync>;

/// Set once the node's dispatcher exists, emptied when it stops; while
/// empty, forwarding connections are refused (and requests on open ones
/// answered "stopped"). Looked up per request, so no serving thread keeps
/// the node's handles alive.
pub type ForwardSlot = Arc<RwLock<Option<ForwardDispatch>>>;

/// The dispatch in the slot, if any.
pub fn installed(slot: &ForwardSlot) -> Option<ForwardDispatch> {
    slot.read().unwrap_or_else(|e| e.into_inner()).clone()
}

struct Job {
    body: client_request::Body,
    deadline: Instant,
    done: Done,
}

/// The sending side: one queue (and thread) per target member.
#[derive(Clone)]
pub struct Forwarder {
    member_id: u64,
    cluster_id: u64,
    members: Arc<Members>,
    targets: Arc<Mutex<HashMap<u64, Sender<Job>>>>,
}

impl Forwarder {
    pub fn new(member_id: u64, cluster_id: u64, members: Arc<Members>) -> Forwarder {
        Forwarder { member_id, cluster_id, members, targets: Arc::default() }
    }

    /// Sends `body` to member `to`; `done` gets its answer or an error by
    /// `deadline`. Never blocks.
    pub fn forward(&self, to: u64, body: client_request::Body, deadline: Instant, done: Done) {
        let tx = {
            let mut targets = self.targets.lock().unwrap_or_else(|e| e.into_inner());
            match targets.get(&to) {
                Some(tx) => tx.clone(),
                None => match self.start(to) {
                    Ok(tx) => {
                        targets.insert(to, tx.clone());
                        tx
                    }
                    Err(e) => return done(Err(e)),
                },
            }
        };
        match tx.try_send(Job { body, deadline, done }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => (job.done)(Err(ApiError::of(ErrorCode::TooManyRequests))),
            Err(TrySendError::Disconnected(job)) => (job.done)(Err(ApiError::of(ErrorCode::Stopped))),
        }
    }

    fn start(&self, to: u64) -> Result<Sender<Job>, ApiError> {
        let (tx, rx) = bounded(QUEUE);
        let link = Link {
            to,
            from: self.member_id,
            cluster_id: self.cluster_id,
            members: self.members.clone(),
            jobs: rx,
            conn: None,
            pending: Arc::default(),
            next_id: 1,
        };
        std::thread::Builder::new()
            .name(format!("forward-{to:x}"))
            .spawn(move || link.run())
            .map_err(|e| ApiError::internal(format!("starting a forwarding thread: {e}")))?;
        Ok(tx)
    }
}

type Pending = Arc<Mutex<HashMap<u64, (Instant, Done)>>>;

/// One target's connection and the requests awaiting answers on it.
struct Link {
    to: u64,
    from: u64,
    cluster_id: u64,
    members: Arc<Members>,
    jobs: Receiver<Job>,
    conn: Option<(TcpStream, Arc<AtomicBool>)>,
    pending: Pending,
    next_id: u64,
}

impl Link {
    /// Runs until every `Forwarder` clone is gone.
    fn run(mut self) {
        loop {
            match self.jobs.recv_timeout(Duration::from_millis(100)) {
                Ok(job) => self.send(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.sweep(Instant::now());
        }
        self.close();
        fail_all(&self.pending, ApiError::of(ErrorCode::Stopped));
    }

    fn send(&mut self, job: Job) {
        if Instant::now() >= job.deadline {
            return (job.done)(Err(ApiError::of(ErrorCode::Timeout)));
        }
        if self.conn.as_ref().is_some_and(|(_, alive)| !alive.load(Ordering::SeqCst)) {
            self.close();
        }
        if self.conn.is_none() {
            match self.connect() {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    log::debug!("forwarding to {:x}: {e}", self.to);
                    return (job.done)(Err(ApiError::of(ErrorCode::NoLeader)));
                }
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() >= MAX_PENDING {
                drop(p);
                return (job.done)(Err(ApiError::of(ErrorCode::TooManyRequests)));
            }
            p.insert(id, (job.deadline, job.done));
        }
        let frame = encode_frame(&ClientRequest { request_id: id, auth_token: String::new(), body: Some(job.body) });
        let written = match &mut self.conn {
            Some((s, _)) => s.write_all(&frame),
            None => return,
        };
        if let Err(e) = written {
            log::debug!("forwarding to {:x}: {e}", self.to);
            self.close();
            if let Some((_, done)) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                done(Err(ApiError::of(ErrorCode::NoLeader)));
            }
        }
    }

    fn connect(&self) -> Result<(TcpStream, Arc<AtomicBool>), String> {
        let addr = self.members.addr(self.to).ok_or("unknown member")?;
        let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(CONNECT_TIMEOUT)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(CONNECT_TIMEOUT)).map_err(|e| e.to_string())?;
        let hello = Hello {
            cluster_id: self.cluster_id,
            from: self.from,
            to: self.to,
            kind: Kind::Forward as i32,
            version: super::peer_io::VERSION,
            ..Default::default()
        };
        s.write_all(&encode_frame(&hello)).map_err(|e| format!("handshake: {e}"))?;
        let mut decoder = FrameDecoder::new(MAX_FRAME);
        let reply: HelloReply = read_frame(&mut s, &mut decoder)?.ok_or("closed during the handshake")?;
        if !reply.ok {
            return Err(format!("refused: {}", reply.reason));
        }
        s.set_read_timeout(None).map_err(|e| e.to_string())?;
        let alive = Arc::new(AtomicBool::new(true));
        let reader = s.try_clone().map_err(|e| e.to_string())?;
        let (pending, flag) = (self.pending.clone(), alive.clone());
        std::thread::Builder::new()
            .name(format!("forward-read-{:x}", self.to))
            .spawn(move || read_answers(reader, decoder, pending, flag))
            .map_err(|e| e.to_string())?;
        Ok((s, alive))
    }

    fn close(&mut self) {
        if let Some((s, alive)) = self.conn.take() {
            alive.store(false, Ordering::SeqCst);
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Completes the requests past their deadline.
    fn sweep(&self, now: Instant) {
        let expired: Vec<Done> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<u64> = p.iter().filter(|(_, (d, _))| *d <= now).map(|(&id, _)| id).collect();
            ids.into_iter().filter_map(|id| p.remove(&id)).map(|(_, done)| done).collect()
        };
        for done in expired {
            done(Err(ApiError::of(ErrorCode::Timeout)));
        }
    }
}

/// The reader of one sending connection: answers complete their requests;
/// when the connection ends every waiting request fails (retryable).
fn read_answers(mut s: TcpStream, mut decoder: FrameDecoder, pending: Pending, alive: Arc<AtomicBool>) {
    while let Ok(Some(r)) = read_frame::<ClientResponse>(&mut s, &mut decoder) {
        let done = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&r.request_id);
        if let Some((_, done)) = done {
            done(match r.body {
                Some(Body::Error(e)) => Err(ApiError::from_proto(&e)),
                Some(body) => Ok(body),
                None => Err(ApiError::internal("a forwarded request was answered without a body")),
            });
        }
    }
    alive.store(false, Ordering::SeqCst);
    fail_all(&pending, ApiError::of(ErrorCode::NoLeader));
}

fn fail_all(pending: &Pending, e: ApiError) {
    let all: Vec<Done> = pending.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, (_, done))| done).collect();
    for done in all {
        done(Err(e.clone()));
    }
}

/// The next frame, or `None` at a clean end of the connection.
pub(super) fn read_frame<M: prost::Message + Default>(
    s: &mut TcpStream,
    d: &mut FrameDecoder,
) -> Result<Option<M>, String> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match d.next_frame() {
            Some(Frame::Message(b)) => return M::decode(b).map(Some).map_err(|e| format!("undecodable frame: {e}")),
            Some(Frame::TooLarge { len, .. }) => return Err(format!("a frame of {len} bytes is over the limit")),
            None => {}
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        d.push(&buf[..n]);
    }
}

/// Serves one handed-over forwarding connection from member `from` (the
/// handshake reply is in `reply`, `leftover` the bytes already read after
/// the handshake). `served` counts the connections open.
pub fn serve(
    mut stream: TcpStream,
    reply: BytesMut,
    leftover: BytesMut,
    from: u64,
    slot: ForwardSlot,
    served: Arc<AtomicUsize>,
) {
    let result = serve_inner(&mut stream, reply, leftover, slot);
    served.fetch_sub(1, Ordering::SeqCst);
    if let Err(e) = result {
        log::debug!("forwarding connection from {from:x} ended: {e}");
    }
}

fn serve_inner(stream: &mut TcpStream, reply: BytesMut, leftover: BytesMut, slot: ForwardSlot) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.write_all(&reply).map_err(|e| format!("handshake reply: {e}"))?;
    let bell = Doorbell::new();
    let ring = bell.clone();
    let outbox = Outbox::new(0, STREAM_LIMIT, Notifier::new(move || ring.ring()));
    let mut writer_stream = stream.try_clone().map_err(|e| e.to_string())?;
    let (writer_box, writer_bell) = (outbox.clone(), bell.clone());
    let writer = std::thread::Builder::new()
        .name("forward-write".into())
        .spawn(move || {
            writer_bell.claim();
            loop {
                let closed = writer_box.is_closed();
                for o in writer_box.drain() {
                    if writer_stream.write_all(&encode_frame(&o.response)).is_err() {
                        writer_box.close();
                        return;
                    }
                }
                if closed {
                    return;
                }
                writer_bell.wait_timeout(Duration::from_millis(100));
            }
        })
        .map_err(|e| e.to_string())?;
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    decoder.push(&leftover);
    let result = loop {
        match read_frame::<ClientRequest>(stream, &mut decoder) {
            Ok(Some(req)) => match installed(&slot) {
                Some(dispatch) => dispatch(req, &outbox),
                None => Responder::new(outbox.clone(), req.request_id).fail(ApiError::of(ErrorCode::Stopped)),
            },
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    outbox.close();
    bell.ring();
    let _ = writer.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{LeaseTimeToLiveRequest, LeaseTimeToLiveResponse};
    use std::net::TcpListener;

    /// A leader stand-in: accepts forwarding connections, checks the
    /// handshake, and serves them with `dispatch`.
    fn leader(dispatch: ForwardDispatch) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                let mut d = FrameDecoder::new(MAX_FRAME);
                let hello: Hello = read_frame(&mut s, &mut d).unwrap().unwrap();
                assert_eq!(hello.kind(), Kind::Forward);
                let reply = BytesMut::from(&encode_frame(&HelloReply { ok: true, ..Default::default() })[..]);
                count.fetch_add(1, Ordering::SeqCst);
                let slot: ForwardSlot = Arc::new(RwLock::new(Some(dispatch.clone())));
                let count = count.clone();
                let leftover = d.take_buffered();
                std::thread::spawn(move || serve(s, reply, leftover, 1, slot, count));
            }
        });
        (addr, served)
    }

    fn ttl_answer() -> ForwardDispatch {
        Arc::new(|req: ClientRequest, outbox: &Arc<Outbox>| {
            let r = Responder::new(outbox.clone(), req.request_id);
            match req.body {
                Some(client_request::Body::LeaseTimeToLive(t)) => {
                    r.respond(Body::LeaseTimeToLive(LeaseTimeToLiveResponse {
                        id: t.id,
                        ttl: 42,
                        ..Default::default()
                    }))
                }
                _ => r.fail(ApiError::of(ErrorCode::NotImplemented)),
            }
        })
    }

    fn call(f: &Forwarder, to: u64, body: client_request::Body) -> Result<Body, ApiError> {
        let (tx, rx) = bounded(1);
        f.forward(to, body, Instant::now() + Duration::from_secs(5), Box::new(move |r| tx.send(r).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).expect("an answer or an error in time")
    }

    #[test]
    fn requests_reach_the_target_and_answers_come_back() {
        let (addr, _) = leader(ttl_answer());
        let f = Forwarder::new(2, 9, Arc::new(Members::new([(1, addr)])));
        for id in 1..=20 {
            let ttl = client_request::Body::LeaseTimeToLive(LeaseTimeToLiveRequest { id, keys: false });
            match call(&f, 1, ttl) {
                Ok(Body::LeaseTimeToLive(t)) => assert_eq!((t.id, t.ttl), (id, 42)),
                other => panic!("{other:?}"),
            }
        }
        let e = call(&f, 1, client_request::Body::LeaseLeases(Default::default())).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotImplemented, "errors come back as errors");
    }

    #[test]
    fn an_unreachable_or_unknown_target_fails_retryably() {
        let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let f = Forwarder::new(2, 9, Arc::new(Members::new([(1, dead)])));
        let ttl = || client_request::Body::LeaseTimeToLive(LeaseTimeToLiveRequest { id: 1, keys: false });
        assert_eq!(call(&f, 1, ttl()).unwrap_err().code, ErrorCode::NoLeader);
        assert_eq!(call(&f, 3, ttl()).unwrap_err().code, ErrorCode::NoLeader, "not a member");
    }

    #[test]
    fn an_unanswered_request_times_out() {
        let silent: ForwardDispatch = Arc::new(|_req, _outbox| {});
        let (addr, _) = leader(silent);
        let f = Forwarder::new(2, 9, Arc::new(Members::new([(1, addr)])));
        let (tx, rx) = bounded(1);
        let body = client_request::Body::LeaseTimeToLive(LeaseTimeToLiveRequest { id: 1, keys: false });
        f.forward(1, body, Instant::now() + Duration::from_millis(300), Box::new(move |r| tx.send(r).unwrap()));
        let r = rx.recv_timeout(Duration::from_secs(5)).expect("swept");
        assert_eq!(r.unwrap_err().code, ErrorCode::Timeout);
    }
}
