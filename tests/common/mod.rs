//! Test support: a raw, synchronous frame client (one request at a time,
//! or hand-made bytes for bad-input tests) and an in-process node.
#![allow(dead_code)]

pub mod cluster;
pub mod linearizability;
mod ports;
pub mod proxy;
pub mod workload;

pub use ports::free_port;

use prost::Message;
use raftkv::api::framing::{encode_frame, Frame, FrameDecoder};
use raftkv::node::Node;
use raftkv::proto::raftkvpb::{client_request, client_response, ClientRequest, ClientResponse};
use raftkv::server::config::{Config, RawConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A single-node config in `dir` on fresh ports, with fast timings.
pub fn single_node_config(dir: &std::path::Path) -> Config {
    single_node_raw(dir).validate(dir).expect("valid test config")
}

/// The raw form of `single_node_config`, to adjust before validating.
pub fn single_node_raw(dir: &std::path::Path) -> RawConfig {
    let peer = format!("127.0.0.1:{}", free_port());
    RawConfig {
        name: Some("t".into()),
        data_dir: Some(dir.to_string_lossy().into_owned()),
        listen_client: Some("127.0.0.1:0".into()),
        listen_peer: Some(peer.clone()),
        initial_cluster: Some(format!("t={peer}")),
        heartbeat_ms: Some(20),
        election_ms: Some(200),
        request_timeout_ms: Some(3000),
        ..Default::default()
    }
}

/// Configs of an `n`-member cluster in `dir` on fresh ports, fast timings.
pub fn cluster_configs(dir: &std::path::Path, n: usize) -> Vec<Config> {
    let peers: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let initial: Vec<String> = peers.iter().enumerate().map(|(i, p)| format!("n{i}={p}")).collect();
    (0..n)
        .map(|i| {
            RawConfig {
                name: Some(format!("n{i}")),
                data_dir: Some(dir.join(format!("n{i}")).to_string_lossy().into_owned()),
                listen_client: Some("127.0.0.1:0".into()),
                listen_peer: Some(peers[i].clone()),
                initial_cluster: Some(initial.join(",")),
                heartbeat_ms: Some(20),
                election_ms: Some(200),
                request_timeout_ms: Some(3000),
                ..Default::default()
            }
            .validate(dir)
            .expect("config")
        })
        .collect()
}

pub struct RawClient {
    stream: TcpStream,
    decoder: FrameDecoder,
    next_id: u64,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawClient { stream, decoder: FrameDecoder::new(64 << 20), next_id: 1 }
    }

    pub fn try_clone_stream(&self) -> TcpStream {
        self.stream.try_clone().expect("clone stream")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, body: client_request::Body) -> u64 {
        self.try_send(body).expect("write")
    }

    /// Like `send`, but `None` if the connection is gone.
    pub fn try_send(&mut self, body: client_request::Body) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&ClientRequest { request_id: id, auth_token: String::new(), body: Some(body) });
        self.stream.write_all(&frame).ok()?;
        Some(id)
    }

    /// Sends a request with a given id (another request on an open stream).
    pub fn send_on(&mut self, request_id: u64, body: client_request::Body) {
        let frame = encode_frame(&ClientRequest { request_id, auth_token: String::new(), body: Some(body) });
        self.stream.write_all(&frame).expect("write");
    }

    /// Whether the server closed the connection within `within` (any
    /// frames it sent first are discarded).
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(within));
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + within;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// The next response; `None` if the server closed the connection.
    pub fn recv(&mut self) -> Option<ClientResponse> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(f) = self.decoder.next_frame() {
                match f {
                    Frame::Message(m) => return Some(ClientResponse::decode(m).expect("decodable response")),
                    Frame::TooLarge { .. } => panic!("response too large"),
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => {
                    return None
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub fn call(&mut self, body: client_request::Body) -> client_response::Body {
        let id = self.send(body);
        let r = self.recv().expect("connection closed before the answer");
        assert_eq!(r.request_id, id, "answer to another request");
        r.body.expect("answer without a body")
    }
}

/// Waits until the node has a leader, at most `within`.
pub fn wait_for_leader(node: &Node, within: Duration) {
    let deadline = Instant::now() + within;
    while node.status().leader() == 0 {
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `raftkv` server running as a child process.
pub struct ChildNode {
    pub child: std::process::Child,
    pub client: SocketAddr,
    pub dir: std::path::PathBuf,
    peer: String,
}

impl ChildNode {
    /// Starts the binary on fresh ports with `dir` as its data directory.
    pub fn start(dir: &std::path::Path) -> ChildNode {
        let peer = format!("127.0.0.1:{}", free_port());
        ChildNode::start_at(dir, &peer, free_port())
    }

    fn start_at(dir: &std::path::Path, peer: &str, client_port: u16) -> ChildNode {
        let client: SocketAddr = format!("127.0.0.1:{client_port}").parse().expect("addr");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["--name", "c", "--data-dir"])
            .arg(dir)
            .args(["--listen-client", &client.to_string(), "--listen-peer", peer])
            .args(["--initial-cluster", &format!("c={peer}"), "--heartbeat-ms", "20", "--election-ms", "200"])
            .args(["--log-level", "warn"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn raftkv");
        let n = ChildNode { child, client, dir: dir.to_path_buf(), peer: peer.to_string() };
        n.wait_ready(Duration::from_secs(20));
        n
    }

    /// Starts again on the same data directory and peer address.
    pub fn restart(&mut self) {
        let _ = self.child.wait();
        let fresh = ChildNode::start_at(&self.dir.clone(), &self.peer.clone(), free_port());
        *self = fresh;
    }

    /// Waits until the node answers Status with a leader.
    pub fn wait_ready(&self, within: Duration) {
        use raftkv::proto::etcdserverpb::StatusRequest;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(stream) = TcpStream::connect_timeout(&self.client, Duration::from_millis(200)) {
                drop(stream);
                let mut c = RawClient::connect(self.client);
                if let client_response::Body::Status(s) = c.call(client_request::Body::Status(StatusRequest {})) {
                    if s.leader != 0 {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "raftkv at {} not ready within {within:?}", self.client);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process by pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
