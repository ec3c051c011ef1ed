//! The peer I/O thread: one mio `Poll` for every peer connection.
//!
//! Outbound: one long-lived connection per peer for Raft messages, opened
//! at start with a handshake and kept open, reopened with capped exponential
//! backoff; a bounded
//! buffer per peer, and a message that does not fit (or finds the peer
//! down) is dropped and the peer reported unreachable: Raft retries.
//! Inbound: the handshake is checked (cluster id, an existing member, this
//! member as the target) and refused with a logged reason otherwise; frames
//! are validated like client frames; messages go to the raft thread, or are
//! dropped if it is behind. A snapshot connection, and a connection of
//! forwarded client requests, is handed to its own thread so messages never
//! queue behind it. Never blocks on a peer.

use super::incarnation::{Incarnations, PeerSeen};
use super::members::Members;
use super::PeerReport;
use super::{forward, snapshot};
use crate::plumbing::doorbell::RingingSender;
use crate::plumbing::framing::{encode_frame_into, Frame, FrameDecoder};
use crate::proto::peerpb::{hello::Kind, ClusterInfo, Hello, HelloReply, PeerAddr};
use crate::proto::raftpb::{Message, MessageType};
use bytes::{Buf, BytesMut};
use crossbeam_channel::{Receiver, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use prost::Message as _;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);
/// The peer protocol version in the handshake.
pub const VERSION: u32 = 1;
/// Largest peer frame: an append carries up to ~1 MiB of entries, and at
/// least one entry of up to the request limit.
pub const MAX_PEER_FRAME: usize = 16 * 1024 * 1024;
const MAX_OUT_BYTES: usize = 32 * 1024 * 1024;
const MAX_PENDING_MSGS: usize = 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// From the transport handle to the thread.
#[derive(Debug)]
pub enum Cmd {
    Send(Box<Message>),
    Stop,
}

pub struct PeerIoConfig {
    pub cluster_id: u64,
    pub member_id: u64,
    pub snap_dir: PathBuf,
    /// This member's data-directory incarnation and what it knows of its
    /// peers', exchanged in handshakes.
    pub incarnations: Arc<Incarnations>,
    /// How forwarded client requests are served (set once the node's
    /// dispatcher exists).
    pub forward: forward::ForwardSlot,
    /// Forwarding connections being served now.
    pub forwards_served: Arc<std::sync::atomic::AtomicUsize>,
}

enum OutState {
    Connecting,
    AwaitReply,
    Ready,
}

struct OutConn {
    stream: TcpStream,
    token: Token,
    state: OutState,
    out: BytesMut,
    decoder: FrameDecoder,
    interest: Interest,
}

#[derive(Default)]
struct Outbound {
    conn: Option<OutConn>,
    /// Messages waiting for the connection to become ready.
    pending: VecDeque<Message>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

struct Inbound {
    stream: TcpStream,
    peer: SocketAddr,
    decoder: FrameDecoder,
    out: BytesMut,
    /// Set once the handshake is accepted.
    from: Option<u64>,
    opened: Instant,
    /// Close once `out` is written (a refused handshake).
    closing: bool,
    interest: Interest,
}

pub struct PeerIo {
    poll: Poll,
    listener: TcpListener,
    cmds: Receiver<Cmd>,
    cfg: PeerIoConfig,
    members: Arc<Members>,
    /// To the raft thread.
    peer_tx: RingingSender<Message>,
    reports: RingingSender<PeerReport>,
    inbound: HashMap<Token, Inbound>,
    outbound: BTreeMap<u64, Outbound>,
    out_tokens: HashMap<Token, u64>,
    next_token: usize,
}

impl PeerIo {
    pub fn new(
        poll: Poll,
        listener: TcpListener,
        cmds: Receiver<Cmd>,
        cfg: PeerIoConfig,
        members: Arc<Members>,
        peer_tx: RingingSender<Message>,
        reports: RingingSender<PeerReport>,
    ) -> std::io::Result<PeerIo> {
        let mut listener = listener;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(PeerIo {
            poll,
            listener,
            cmds,
            cfg,
            members,
            peer_tx,
            reports,
            inbound: HashMap::new(),
            outbound: BTreeMap::new(),
            out_tokens: HashMap::new(),
            next_token: 2,
        })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(POLL_INTERVAL)) {
                if e.kind() != ErrorKind::Interrupted {
                    log::error!("peer I/O poll failed: {e}");
                    return;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    token if self.out_tokens.contains_key(&token) => {
                        self.on_outbound(token, ev.is_readable(), ev.is_writable() || ev.is_error())
                    }
                    token => self.on_inbound(token),
                }
            }
            loop {
                match self.cmds.try_recv() {
                    Ok(Cmd::Send(m)) => self.queue(*m),
                    Ok(Cmd::Stop) => return,
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                }
            }
            self.timers();
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    fn unreachable(&self, to: u64) {
        let _ = self.reports.try_send(PeerReport::Unreachable(to));
    }

    // ------------------------------------------------------------ outbound

    fn queue(&mut self, m: Message) {
        let to = m.to;
        let Some(addr) = self.members.addr(to) else {
            log::debug!("dropping a message to unknown member {to:x}");
            return self.unreachable(to);
        };
        let o = self.outbound.entry(to).or_default();
        match &mut o.conn {
            Some(c) if matches!(c.state, OutState::Ready) => {
                if c.out.len() > MAX_OUT_BYTES {
                    // The peer is not keeping up: Raft will retry.
                    return self.unreachable(to);
                }
                encode_frame_into(&m, &mut c.out);
                self.flush_out(to);
            }
            Some(_) => {
                if o.pending.len() >= MAX_PENDING_MSGS {
                    return self.unreachable(to);
                }
                o.pending.push_back(m);
            }
            None => {
                let waiting = o.retry_at.is_some_and(|t| t > Instant::now());
                if waiting {
                    // Down: do not buffer for a peer that may be gone.
                    return self.unreachable(to);
                }
                o.pending.push_back(m);
                self.connect(to, addr);
            }
        }
    }

    fn connect(&mut self, to: u64, addr: SocketAddr) {
        let token = self.token();
        let result = TcpStream::connect(addr).and_then(|mut s| {
            self.poll.registry().register(&mut s, token, Interest::WRITABLE)?;
            Ok(s)
        });
        match result {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                self.out_tokens.insert(token, to);
                let o = self.outbound.entry(to).or_default();
                o.conn = Some(OutConn {
                    stream,
                    token,
                    state: OutState::Connecting,
                    out: BytesMut::new(),
                    decoder: FrameDecoder::new(64 * 1024),
                    interest: Interest::WRITABLE,
                });
            }
            Err(e) => {
                log::debug!("connecting to {to:x} at {addr}: {e}");
                self.disconnected(to);
            }
        }
    }

    /// The connection to `to` is gone: back off, drop what waited.
    fn disconnected(&mut self, to: u64) {
        let o = self.outbound.entry(to).or_default();
        if let Some(mut c) = o.conn.take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.out_tokens.remove(&c.token);
        }
        o.backoff = if o.backoff.is_zero() { MIN_BACKOFF } else { (o.backoff * 2).min(MAX_BACKOFF) };
        o.retry_at = Some(Instant::now() + o.backoff);
        let dropped = !o.pending.is_empty();
        o.pending.clear();
        if dropped {
            self.unreachable(to);
        }
    }

    fn on_outbound(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(&to) = self.out_tokens.get(&token) else { return };
        let Some(c) = self.outbound.get_mut(&to).and_then(|o| o.conn.as_mut()) else { return };
        if matches!(c.state, OutState::Connecting) && writable {
            match c.stream.take_error() {
                Ok(None) if c.stream.peer_addr().is_ok() => {
                    let hello = Hello {
                        cluster_id: self.cfg.cluster_id,
                        from: self.cfg.member_id,
                        to,
                        kind: Kind::Messages as i32,
                        version: VERSION,
                        incarnation: self.cfg.incarnations.own(),
                        your_incarnation: self.cfg.incarnations.known_of(to),
                        previous_incarnation: self.cfg.incarnations.previous(),
                    };
                    encode_frame_into(&hello, &mut c.out);
                    c.state = OutState::AwaitReply;
                }
                Ok(None) => return, // not connected yet
                Ok(Some(e)) | Err(e) => {
                    log::debug!("connecting to {to:x}: {e}");
                    return self.disconnected(to);
                }
            }
        }
        if readable {
            let mut buf = [0u8; 4096];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return self.disconnected(to),
                    Ok(n) => c.decoder.push(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return self.disconnected(to),
                }
            }
            if let (OutState::AwaitReply, Some(Frame::Message(b))) = (&c.state, c.decoder.next_frame()) {
                match HelloReply::decode(b) {
                    Ok(r) if r.ok => {
                        c.state = OutState::Ready;
                        self.cfg.incarnations.told_our_incarnation(to, r.your_incarnation);
                        if let Some(o) = self.outbound.get_mut(&to) {
                            o.backoff = Duration::ZERO;
                            o.retry_at = None;
                            let pending: Vec<Message> = o.pending.drain(..).collect();
                            if let Some(c) = o.conn.as_mut() {
                                for m in pending {
                                    encode_frame_into(&m, &mut c.out);
                                }
                            }
                        }
                    }
                    Ok(r) => {
                        log::warn!("member {to:x} refused our connection: {}", r.reason);
                        if r.removed {
                            let _ = self.reports.try_send(PeerReport::RemovedByPeer(to));
                        }
                        return self.disconnected(to);
                    }
                    Err(e) => {
                        log::warn!("member {to:x} answered the handshake with garbage: {e}");
                        return self.disconnected(to);
                    }
                }
            }
        }
        self.flush_out(to);
    }

    fn flush_out(&mut self, to: u64) {
        let Some(c) = self.outbound.get_mut(&to).and_then(|o| o.conn.as_mut()) else { return };
        if matches!(c.state, OutState::Connecting) {
            return;
        }
        let mut failed = false;
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => c.out.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            return self.disconnected(to);
        }
        let want = if c.out.is_empty() { Interest::READABLE } else { Interest::READABLE.add(Interest::WRITABLE) };
        if want != c.interest {
            c.interest = want;
            if self.poll.registry().reregister(&mut c.stream, c.token, want).is_err() {
                self.disconnected(to);
            }
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        // Keep a connection open to every member, idle or not (reconnecting
        // once the backoff expired): the handshake is where members learn
        // each other's data-directory incarnations, so a member that later
        // comes back with a wiped directory is recognised by all of them.
        let me = self.cfg.member_id;
        let due: Vec<u64> = self
            .members
            .ids()
            .into_iter()
            .filter(|&id| id != me)
            .filter(|id| {
                self.outbound.get(id).map_or(true, |o| o.conn.is_none() && o.retry_at.map_or(true, |t| t <= now))
            })
            .collect();
        for id in due {
            if let Some(addr) = self.members.addr(id) {
                self.connect(id, addr);
            }
        }
        // Inbound connections that never finish their handshake.
        let stale: Vec<Token> = self
            .inbound
            .iter()
            .filter(|(_, c)| c.from.is_none() && now.duration_since(c.opened) > HANDSHAKE_TIMEOUT)
            .map(|(&t, _)| t)
            .collect();
        for t in stale {
            self.close_inbound(t, "no handshake within the timeout");
        }
    }

    // ------------------------------------------------------------ inbound

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let token = self.token();
                    if self.poll.registry().register(&mut stream, token, Interest::READABLE).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.inbound.insert(
                        token,
                        Inbound {
                            stream,
                            peer,
                            decoder: FrameDecoder::new(MAX_PEER_FRAME),
                            out: BytesMut::new(),
                            from: None,
                            opened: Instant::now(),
                            closing: false,
                            interest: Interest::READABLE,
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accepting a peer failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_inbound(&mut self, token: Token) {
        let mut frames = Vec::new();
        let mut eof = false;
        {
            let Some(c) = self.inbound.get_mut(&token) else { return };
            let mut buf = [0u8; 64 * 1024];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        c.decoder.push(&buf[..n]);
                        while let Some(f) = c.decoder.next_frame() {
                            frames.push(f);
                        }
                        // Hand a snapshot connection over as soon as its
                        // handshake is read, before reading its data.
                        if c.from.is_none() && !frames.is_empty() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
        }
        for f in frames {
            if !self.on_inbound_frame(token, f) {
                return;
            }
        }
        self.flush_inbound(token);
        if eof {
            self.close_inbound(token, "");
        }
    }

    /// Returns false once the connection is gone (closed or handed over).
    fn on_inbound_frame(&mut self, token: Token, f: Frame) -> bool {
        let Some(c) = self.inbound.get_mut(&token) else { return false };
        let bytes = match f {
            Frame::Message(b) => b,
            Frame::TooLarge { len, .. } => {
                self.close_inbound(token, &format!("a frame of {len} bytes is over the limit"));
                return false;
            }
        };
        match c.from {
            None => {
                let hello = match Hello::decode(bytes) {
                    Ok(h) => h,
                    Err(e) => {
                        self.close_inbound(token, &format!("undecodable handshake: {e}"));
                        return false;
                    }
                };
                if hello.kind() == Kind::Join {
                    answer_join(&self.cfg, &self.members, &hello, &mut c.out);
                    c.closing = true;
                    return true;
                }
                if let Err(reason) = check_hello(&self.cfg, &self.members, &hello) {
                    log::warn!("refusing peer {}: {reason}", c.peer);
                    let removed = hello.cluster_id == self.cfg.cluster_id && self.members.is_removed(hello.from);
                    encode_frame_into(&HelloReply { ok: false, reason, your_incarnation: 0, removed }, &mut c.out);
                    c.closing = true;
                    return true;
                }
                if hello.kind() == Kind::Snapshot {
                    encode_frame_into(&HelloReply { ok: true, ..Default::default() }, &mut c.out);
                    self.hand_over_snapshot(token, hello.from);
                    return false;
                }
                if hello.kind() == Kind::Forward {
                    return self.accept_forward(token, hello.from);
                }
                // Before any message of this connection reaches the raft
                // thread: whether the peer, or this member, lost its data.
                let seen =
                    self.cfg.incarnations.on_peer_hello(hello.from, hello.incarnation, hello.previous_incarnation);
                if seen == PeerSeen::LostState {
                    let _ = self.reports.try_send(PeerReport::LostState(hello.from));
                }
                self.cfg.incarnations.told_our_incarnation(hello.from, hello.your_incarnation);
                let your_incarnation = self.cfg.incarnations.known_of(hello.from);
                encode_frame_into(
                    &HelloReply { ok: true, reason: String::new(), your_incarnation, removed: false },
                    &mut c.out,
                );
                c.from = Some(hello.from);
                true
            }
            Some(from) => {
                let m = match Message::decode(bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        self.close_inbound(token, &format!("undecodable message from {from:x}: {e}"));
                        return false;
                    }
                };
                if self.members.is_removed(from) {
                    // Its next handshake is refused and tells it so.
                    self.close_inbound(token, &format!("member {from:x} was removed from the cluster"));
                    return false;
                }
                if m.from != from || m.to != self.cfg.member_id || m.msg_type() == MessageType::MsgSnap {
                    self.close_inbound(
                        token,
                        &format!("member {from:x} sent a {:?} from {:x} to {:x}", m.msg_type(), m.from, m.to),
                    );
                    return false;
                }
                match self.peer_tx.try_send(m) {
                    Ok(()) => {}
                    // The raft thread is behind: drop, Raft retries.
                    Err(TrySendError::Full(_)) => log::debug!("raft thread busy: dropped a message from {from:x}"),
                    Err(TrySendError::Disconnected(_)) => return false,
                }
                true
            }
        }
    }

    fn hand_over_snapshot(&mut self, token: Token, from: u64) {
        let Some(mut c) = self.inbound.remove(&token) else { return };
        let _ = self.poll.registry().deregister(&mut c.stream);
        let reply = std::mem::take(&mut c.out);
        let leftover = c.decoder.take_buffered();
        let stream = into_std(c.stream);
        let (peer_tx, dir, me) = (self.peer_tx.clone(), self.cfg.snap_dir.clone(), self.cfg.member_id);
        let spawned = std::thread::Builder::new().name("snapshot-recv".into()).spawn(move || {
            snapshot::receive(stream, reply, leftover, from, me, &dir, &peer_tx);
        });
        if let Err(e) = spawned {
            log::error!("cannot start a snapshot receiver: {e}");
        }
    }

    /// A forwarding connection: refused while the node cannot serve it yet
    /// or too many are open, else handed to a thread of its own.
    fn accept_forward(&mut self, token: Token, from: u64) -> bool {
        let Some(c) = self.inbound.get_mut(&token) else { return false };
        let ready = forward::installed(&self.cfg.forward).is_some();
        let served = self.cfg.forwards_served.clone();
        let refused = match ready {
            false => Some("not serving clients"),
            true if served.fetch_add(1, Ordering::SeqCst) >= forward::MAX_SERVED => {
                served.fetch_sub(1, Ordering::SeqCst);
                Some("too many forwarding connections")
            }
            true => None,
        };
        if let Some(reason) = refused {
            encode_frame_into(
                &HelloReply { ok: false, reason: reason.into(), your_incarnation: 0, removed: false },
                &mut c.out,
            );
            c.closing = true;
            return true;
        }
        encode_frame_into(&HelloReply { ok: true, ..Default::default() }, &mut c.out);
        let Some(mut c) = self.inbound.remove(&token) else { return false };
        let slot = self.cfg.forward.clone();
        let _ = self.poll.registry().deregister(&mut c.stream);
        let reply = std::mem::take(&mut c.out);
        let leftover = c.decoder.take_buffered();
        let stream = into_std(c.stream);
        let count = served.clone();
        let spawned = std::thread::Builder::new()
            .name("forward-serve".into())
            .spawn(move || forward::serve(stream, reply, leftover, from, slot, count));
        if let Err(e) = spawned {
            served.fetch_sub(1, Ordering::SeqCst);
            log::error!("cannot serve a forwarding connection: {e}");
        }
        false
    }

    fn flush_inbound(&mut self, token: Token) {
        let Some(c) = self.inbound.get_mut(&token) else { return };
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(0) => break,
                Ok(n) => c.out.advance(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if c.closing && c.out.is_empty() {
            return self.close_inbound(token, "handshake refused");
        }
        let want = if c.out.is_empty() { Interest::READABLE } else { Interest::READABLE.add(Interest::WRITABLE) };
        if want != c.interest {
            c.interest = want;
            let _ = self.poll.registry().reregister(&mut c.stream, token, want);
        }
    }

    fn close_inbound(&mut self, token: Token, why: &str) {
        if let Some(mut c) = self.inbound.remove(&token) {
            if !why.is_empty() {
                log::warn!("closing peer connection from {}: {why}", c.peer);
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }
}

/// Tells a member about to join who the cluster is (or why not).
fn answer_join(cfg: &PeerIoConfig, members: &Members, h: &Hello, out: &mut BytesMut) {
    if h.version != VERSION {
        let reason = format!("peer protocol version {} (this member speaks {VERSION})", h.version);
        encode_frame_into(&HelloReply { ok: false, reason, your_incarnation: 0, removed: false }, out);
        return;
    }
    encode_frame_into(&HelloReply { ok: true, ..Default::default() }, out);
    let members = members
        .ids()
        .into_iter()
        .filter_map(|id| members.addr(id).map(|a| PeerAddr { id, url: format!("http://{a}") }))
        .collect();
    encode_frame_into(&ClusterInfo { cluster_id: cfg.cluster_id, members }, out);
}

/// Checks a peer's handshake: same protocol and cluster, addressed to us,
/// from a member.
fn check_hello(cfg: &PeerIoConfig, members: &Members, h: &Hello) -> Result<(), String> {
    if h.version != VERSION {
        return Err(format!("peer protocol version {} (this member speaks {VERSION})", h.version));
    }
    if h.cluster_id != cfg.cluster_id {
        return Err(format!("cluster id {:x} is not this cluster's ({:x})", h.cluster_id, cfg.cluster_id));
    }
    if h.to != cfg.member_id {
        return Err(format!("addressed to member {:x}, this is {:x}", h.to, cfg.member_id));
    }
    if members.is_removed(h.from) {
        return Err(format!("member {:x} was removed from this cluster", h.from));
    }
    if !members.contains(h.from) {
        return Err(format!("member {:x} is not a member of this cluster", h.from));
    }
    Kind::try_from(h.kind).map(|_| ()).map_err(|_| format!("unknown connection kind {}", h.kind))
}

/// A mio stream as a blocking std stream, for a dedicated thread.
fn into_std(stream: TcpStream) -> std::net::TcpStream {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = stream.into_raw_fd();
    // SAFETY: `fd` was just released by `stream`, which owned it, so this
    // is its only owner.
    let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let _ = std_stream.set_nonblocking(false);
    std_stream
}
