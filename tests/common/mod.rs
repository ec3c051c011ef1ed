//! Test support: a raw, synchronous frame client (one request at a time,
//! or hand-made bytes for bad-input tests) and an in-process node.
#![allow(dead_code)]

use prost::Message;
use raftkv::api::framing::{encode_frame, Frame, FrameDecoder};
use raftkv::proto::raftkvpb::{client_request, client_response, ClientRequest, ClientResponse};
use raftkv::server::config::{Config, RawConfig};
use raftkv::server::Node;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1 (bound then released; good enough for tests
/// that bind it again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A single-node config in `dir` on fresh ports, with fast timings.
pub fn single_node_config(dir: &std::path::Path) -> Config {
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
    .validate(dir)
    .expect("valid test config")
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

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, body: client_request::Body) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&ClientRequest { request_id: id, auth_token: String::new(), body: Some(body) });
        self.send_raw(&frame);
        id
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
