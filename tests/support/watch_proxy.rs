//! A TCP proxy in front of one raftkv client port that counts the watches
//! the server has confirmed (`created` responses) on the connections
//! through it. Tests use the count to know a watch is live before they
//! write, the way the etcdctl capture script waited for etcd's watcher
//! metric, so no marker writes shift the revisions.
//!
//! Threads: one acceptor, and per connection one pump each way. Bytes are
//! forwarded unchanged; the server-to-client direction is also split into
//! frames (4-byte big-endian length, then a `ClientResponse`) to look at.
//! Dropping the proxy closes every socket it opened.

use prost::Message as _;
use raftkv::proto::raftkvpb::{client_response, ClientResponse};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct WatchProxy {
    addr: String,
    created: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl WatchProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `target`.
    pub fn start(target: &str) -> WatchProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let created = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (target, c, s, socks) = (target.to_string(), created.clone(), stop.clone(), sockets.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let pairs = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
                let (Ok(c_read), Ok(s_write), Ok(c_write), Ok(s_read)) = pairs else { continue };
                {
                    let mut list = socks.lock().unwrap_or_else(|p| p.into_inner());
                    list.push(client);
                    list.push(server);
                }
                std::thread::spawn(move || pump_raw(c_read, s_write));
                let counter = c.clone();
                std::thread::spawn(move || pump_frames(s_read, c_write, &counter));
            }
        });
        WatchProxy { addr, created, stop, sockets }
    }

    /// `HOST:PORT` to give raftkvctl.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Watches confirmed by the server so far.
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::SeqCst)
    }

    /// Waits until more than `before` watches were confirmed, `gave_up`
    /// says to stop waiting (the watching process exited), or `within`
    /// passed. True when the watch count rose.
    pub fn wait_created(&self, before: u64, within: Duration, mut gave_up: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.created() > before {
                return true;
            }
            if gave_up() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for WatchProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.sockets.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wakes the acceptor so it sees `stop`.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn pump_raw(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Forwards whole frames, counting watch `created` responses before each
/// is passed on (so the count never lags what the client has seen).
fn pump_frames(mut from: TcpStream, mut to: TcpStream, created: &AtomicU64) {
    loop {
        let mut prefix = [0u8; 4];
        if from.read_exact(&mut prefix).is_err() {
            break;
        }
        let len = u32::from_be_bytes(prefix) as usize;
        let mut body = vec![0u8; len];
        if from.read_exact(&mut body).is_err() {
            break;
        }
        if let Ok(ClientResponse { body: Some(client_response::Body::Watch(w)), .. }) =
            ClientResponse::decode(body.as_slice())
        {
            if w.created {
                created.fetch_add(1, Ordering::SeqCst);
            }
        }
        if to.write_all(&prefix).and_then(|_| to.write_all(&body)).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
