//! A whole raftkv node: the server side (`server::Server`: raft, apply,
//! reads, watch, peers) plus the client I/O thread (`api`) that feeds it.
//! This is the composition root: the only place that knows both, so the
//! layers below import one way (`api -> server -> {mvcc, watch} -> storage
//! -> raft`).
//!
//! Owns start-up order (the client listener is bound first: its address is
//! published to the other members) and the orderly stop (no new requests,
//! requests in flight get a grace period, then the server side stops).

use crate::api::client_io::{ClientIo, Limits, WAKER};
use crate::api::dispatch::{Dispatched, Dispatcher};
use crate::mvcc::KvStore;
use crate::plumbing::outbox::Notifier;
use crate::server::config::Config;
use crate::server::status::NodeStatus;
use crate::server::Server;
use crossbeam_channel::Receiver;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Unsent bytes a connection may hold before its watch events are held
/// back (the watcher is caught up from storage once it drains).
const STREAM_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

/// A running node.
pub struct Node {
    pub member_id: u64,
    pub cluster_id: u64,
    client_addr: SocketAddr,
    server: Server,
    client_stop: Arc<AtomicBool>,
    client_waker: Arc<mio::Waker>,
    client_thread: Option<JoinHandle<()>>,
}

impl Node {
    /// Opens the data directory (bootstrapping a new member of the initial
    /// cluster if it is empty) and starts every thread.
    pub fn start(cfg: &Config) -> Result<Node, String> {
        let listener = std::net::TcpListener::bind(cfg.listen_client)
            .map_err(|e| format!("cannot listen for clients on {}: {e}", cfg.listen_client))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let client_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = Server::start(cfg, client_addr)?;

        let poll = mio::Poll::new().map_err(|e| e.to_string())?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).map_err(|e| e.to_string())?);
        let wake = waker.clone();
        let notifier = Notifier::new(move || {
            if let Err(e) = wake.wake() {
                log::warn!("waking the client I/O thread failed: {e}");
            }
        });
        let request_timeout = Duration::from_millis(cfg.request_timeout_ms);
        let dispatcher = Dispatcher {
            max_request_bytes: cfg.max_request_bytes,
            server: server.handles().clone(),
            serve_locally: false,
        };
        // Requests other members forward here are dispatched like clients'
        // (unary ones: the forwarding member keeps any stream itself).
        let forwarded = Dispatcher {
            max_request_bytes: cfg.max_request_bytes,
            server: server.handles().clone(),
            serve_locally: true,
        };
        *server.forward_slot().write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(move |req, outbox| {
            if let Dispatched::Stream(mut owner) = forwarded.dispatch(req, outbox) {
                owner.on_end();
            }
        }));
        let limits = Limits {
            max_frame: cfg.max_request_bytes + 512 * 1024,
            idle_timeout: Duration::from_millis(cfg.client_idle_timeout_ms),
            frame_timeout: request_timeout,
            request_timeout,
            max_connections: cfg.max_client_connections,
            max_in_flight_per_conn: 4096,
            max_output: 32 * 1024 * 1024,
            stream_output: STREAM_OUTPUT_LIMIT,
            shutdown_grace: Duration::from_secs(2),
        };
        let client_stop = Arc::new(AtomicBool::new(false));
        let io = ClientIo::new(
            poll,
            mio::net::TcpListener::from_std(listener),
            notifier,
            dispatcher,
            server.status().clone(),
            limits,
            client_stop.clone(),
        )
        .map_err(|e| format!("client I/O: {e}"))?;
        let client_thread = std::thread::Builder::new()
            .name("client-io".into())
            .spawn(move || io.run())
            .map_err(|e| format!("spawning client-io: {e}"))?;
        log::info!(
            "member {:x} ({}) of cluster {:x} serving clients on {client_addr}, data in {}",
            server.member_id,
            cfg.name,
            server.cluster_id,
            cfg.data_dir.display()
        );
        Ok(Node {
            member_id: server.member_id,
            cluster_id: server.cluster_id,
            client_addr,
            server,
            client_stop,
            client_waker: waker,
            client_thread: Some(client_thread),
        })
    }

    /// The address clients connect to (the bound one, when port 0 was asked).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn status(&self) -> &Arc<NodeStatus> {
        self.server.status()
    }

    pub fn kv(&self) -> &Arc<KvStore> {
        self.server.kv()
    }

    /// Receives the reason if a thread fails and the node must stop.
    pub fn failures(&self) -> &Receiver<String> {
        self.server.failures()
    }

    /// Stops in order: no new requests; requests in flight get a grace
    /// period; then the server side stops (see `Server::stop`).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.server.status().set_stopping();
        self.client_stop.store(true, Ordering::Release);
        let _ = self.client_waker.wake();
        if let Some(t) = self.client_thread.take() {
            if t.join().is_err() {
                log::error!("the client I/O thread panicked");
            }
        }
        self.server.shutdown();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.client_thread.is_some() {
            self.shutdown();
        }
    }
}
