//! The joining member's side of a JOIN connection: before a member started
//! with `initial-cluster-state = "existing"` has a data directory, it asks
//! the members it was told about who the cluster is (its id, and every
//! member's id and peer URL), as etcd asks its peers for the member list.
//!
//! Owns the question and the answer's decoding; never decides what to do
//! with it (bootstrap does).

use super::forward::read_frame;
use super::peer_io::VERSION;
use crate::plumbing::framing::{encode_frame, FrameDecoder};
use crate::proto::peerpb::{hello::Kind, ClusterInfo, Hello, HelloReply};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Asks the member at `addr` who the cluster is.
pub fn ask(addr: SocketAddr, timeout: Duration) -> Result<ClusterInfo, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let hello = Hello { kind: Kind::Join as i32, version: VERSION, ..Default::default() };
    s.write_all(&encode_frame(&hello)).map_err(|e| format!("handshake: {e}"))?;
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let reply: HelloReply = read_frame(&mut s, &mut decoder)?.ok_or("closed during the handshake")?;
    if !reply.ok {
        return Err(format!("refused: {}", reply.reason));
    }
    read_frame(&mut s, &mut decoder)?.ok_or_else(|| "closed before naming the cluster".to_string())
}
