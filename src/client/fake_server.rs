//! A tiny in-process server for the client's tests: a `TcpListener` thread
//! speaking the framing, with a scripted handler per request.
//!
//! Owns nothing of the real server: no storage, no Raft. The handler decides
//! per request whether to answer (now, later, out of order), to hold, or to
//! close the connection. Every request received is recorded.

use crate::plumbing::framing::{encode_frame, Frame, FrameDecoder};
use crate::proto::etcdserverpb::{PutResponse, RangeResponse, ResponseHeader, StatusResponse};
use crate::proto::mvccpb::KeyValue;
use crate::proto::raftkvpb::{client_request, client_response, ClientRequest, ClientResponse};
use prost::Message;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Handler = dyn Fn(&mut Session, ClientRequest) + Send + Sync;

/// One accepted connection, as the handler sees it.
pub struct Session {
    out: TcpStream,
    /// Requests the handler chose to answer later.
    pub held: Vec<ClientRequest>,
    closed: bool,
}

impl Session {
    pub fn reply(&mut self, request_id: u64, body: client_response::Body) {
        self.reply_bytes(&encode_frame(&ClientResponse { request_id, body: Some(body) }));
    }

    pub fn reply_bytes(&mut self, bytes: &[u8]) {
        if self.out.write_all(bytes).is_err() {
            self.closed = true;
        }
    }

    /// Closes the connection after this request.
    pub fn close(&mut self) {
        self.closed = true;
    }
}

struct Shared {
    stop: AtomicBool,
    requests: Mutex<Vec<ClientRequest>>,
    /// Signalled on every request received.
    arrived: Condvar,
    accepted: AtomicUsize,
    sockets: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    handler: Box<Handler>,
}

pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&mut Session, ClientRequest) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test listener");
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            accepted: AtomicUsize::new(0),
            sockets: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            handler: Box::new(handler),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(listener, s));
        FakeServer { addr, shared, accept: Some(accept) }
    }

    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ClientRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests received whose body satisfies `pred`.
    pub fn count(&self, pred: impl Fn(&client_request::Body) -> bool) -> usize {
        self.requests().iter().filter(|r| r.body.as_ref().is_some_and(&pred)).count()
    }

    /// Waits (at most `timeout`) until `n` requests satisfying `pred` have
    /// arrived; false if they did not.
    pub fn wait_count(&self, n: usize, timeout: Duration, pred: impl Fn(&client_request::Body) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut reqs = self.shared.requests.lock().unwrap();
        loop {
            if reqs.iter().filter(|r| r.body.as_ref().is_some_and(&pred)).count() >= n {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            reqs = self.shared.arrived.wait_timeout(reqs, deadline - now).unwrap().0;
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in self.shared.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the blocked accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            shared.sockets.lock().unwrap().push(clone);
        }
        let s = shared.clone();
        let t = std::thread::spawn(move || serve(stream, s));
        shared.threads.lock().unwrap().push(t);
    }
}

fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let Ok(out) = stream.try_clone() else { return };
    let mut session = Session { out, held: Vec::new(), closed: false };
    let mut decoder = FrameDecoder::new(16 * 1024 * 1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        decoder.push(&buf[..n]);
        while let Some(frame) = decoder.next_frame() {
            let Frame::Message(bytes) = frame else { return };
            let Ok(req) = ClientRequest::decode(bytes) else { return };
            shared.requests.lock().unwrap().push(req.clone());
            shared.arrived.notify_all();
            (shared.handler)(&mut session, req);
            if session.closed {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// An endpoint where nothing listens (connection refused).
pub fn dead_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("address");
    drop(l);
    addr.to_string()
}

/// The answer a well-behaved server gives: a Range returns one kv whose key
/// and value are the requested key; a Put and a Status succeed.
pub fn ok_answer(req: &ClientRequest) -> client_response::Body {
    let header = Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 });
    match &req.body {
        Some(client_request::Body::Range(r)) => client_response::Body::Range(RangeResponse {
            header,
            kvs: vec![KeyValue { key: r.key.clone(), value: r.key.clone(), ..Default::default() }],
            count: 1,
            more: false,
        }),
        Some(client_request::Body::Status(_)) => {
            client_response::Body::Status(StatusResponse { header, version: "test".into(), ..Default::default() })
        }
        _ => client_response::Body::Put(PutResponse { header, prev_kv: None }),
    }
}

/// A server answering every request at once with `ok_answer`.
pub fn ok_server() -> FakeServer {
    FakeServer::start(|s, req| s.reply(req.request_id, ok_answer(&req)))
}
