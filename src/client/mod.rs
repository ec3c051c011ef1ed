//! The blocking Rust client of raftkv.
//!
//! Owns the client API: `Client::connect`, the generic `call` with its retry
//! and failover rules, and the options. `Client` is `Clone + Send + Sync`:
//! clones share the same connections, so many threads can share one.
//!
//! Layout: `conn` (one connection: writer thread, reader thread, answers
//! matched by request id), `dispatch` (the waiting calls of a connection),
//! `pool` (connections per endpoint, round robin, reconnect), `retry` (what
//! may be retried), `kv` (typed calls), `lease` (lease calls),
//! `keepalive` + `keepalive_loop` (a lease kept alive in the background),
//! `watch`, `error`, `endpoint`.
//!
//! ```no_run
//! use raftkv::client::{Client, ClientOptions};
//! let client = Client::connect(&["127.0.0.1:2379".to_string()], ClientOptions::default())?;
//! client.put_kv("greeting", "hello")?;
//! let kv = client.get("greeting")?;
//! assert_eq!(kv.map(|kv| kv.value.to_vec()), Some(b"hello".to_vec()));
//! # Ok::<(), raftkv::client::ClientError>(())
//! ```

pub mod conn;
mod dispatch;
pub mod endpoint;
pub mod error;
pub mod keepalive;
mod keepalive_loop;
mod kv;
mod lease;
mod pool;
pub mod retry;
mod snapshot;
pub use snapshot::SnapshotError;
pub mod watch;

#[cfg(test)]
pub(crate) mod fake_server;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod tests;

pub use error::ClientError;
pub use keepalive::{KeepAlive, KeepAliveEvent, KeepAliveRecvError};
pub use kv::prefix_end;

use crate::plumbing::ApiError;
use crate::proto::raftkvpb::{client_request, client_response};
use conn::{CallError, ConnOptions, EncodedRequest};
use pool::Pool;
use retry::Backoff;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of a `Client`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Bound on establishing one TCP connection.
    pub dial_timeout: Duration,
    /// Bound on a whole call, retries and reconnects included.
    pub request_timeout: Duration,
    /// TCP connections per endpoint.
    pub connections_per_endpoint: usize,
    /// Sent with every request (from Authenticate); `None` when auth is off.
    pub auth_token: Option<String>,
    /// Calls waiting for answers on one connection; more wait for room.
    pub max_in_flight_per_connection: usize,
    /// Requests larger than this are refused before sending, like etcd's
    /// client (2 MiB by default; the server's own limit is smaller).
    pub max_request_bytes: usize,
    /// Larger answers fail their call (the connection stays usable).
    pub max_response_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            dial_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            connections_per_endpoint: 1,
            auth_token: None,
            max_in_flight_per_connection: 1024,
            max_request_bytes: 2 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A client of a raftkv cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    opts: ClientOptions,
}

impl Client {
    /// Connects to `endpoints` (`HOST:PORT`, a leading `http://` is
    /// accepted). Succeeds when at least one endpoint answers the dial;
    /// the others are retried when calls need them.
    pub fn connect(endpoints: &[String], opts: ClientOptions) -> Result<Client, ClientError> {
        let client = Client::new_lazy(endpoints, opts)?;
        let (connected, last_error) = client.inner.pool.dial_all();
        if connected == 0 {
            let (endpoint, reason) = last_error.unwrap_or_else(|| (endpoints.join(","), "no endpoint".to_string()));
            return Err(ClientError::Connect { endpoint, reason });
        }
        Ok(client)
    }

    /// A client that dials on first use: an unreachable cluster shows up as
    /// calls timing out after `request_timeout` (etcdctl's behaviour), not
    /// as an error here. Only the endpoint strings are checked.
    pub fn new_lazy(endpoints: &[String], opts: ClientOptions) -> Result<Client, ClientError> {
        let endpoints = endpoint::normalize_all(endpoints)?;
        let conn_opts = ConnOptions {
            max_in_flight: opts.max_in_flight_per_connection.max(1),
            max_response_bytes: opts.max_response_bytes,
            write_timeout: opts.request_timeout.max(Duration::from_secs(1)),
            auth_token: opts.auth_token.clone(),
        };
        let pool = Pool::new(endpoints, opts.connections_per_endpoint, conn_opts, opts.dial_timeout);
        Ok(Client { inner: Arc::new(Inner { pool, opts }) })
    }

    /// The normalised endpoints.
    pub fn endpoints(&self) -> &[String] {
        self.inner.pool.endpoints()
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Sends one request and returns its answer, within `request_timeout`.
    ///
    /// A server error comes back as `ClientError::Api` (never as
    /// `Ok(Body::Error)`). Reads are retried on connection failures and
    /// retryable server errors; writes only when they never left this
    /// process. A write that timed out or lost its connection may or may
    /// not have been applied.
    pub fn call(&self, body: client_request::Body) -> Result<client_response::Body, ClientError> {
        self.call_with_timeout(body, self.inner.opts.request_timeout)
    }

    /// `call` with its own bound instead of `request_timeout`.
    pub fn call_with_timeout(
        &self,
        body: client_request::Body,
        timeout: Duration,
    ) -> Result<client_response::Body, ClientError> {
        let deadline = Instant::now() + timeout;
        let encoded = EncodedRequest::new(&body);
        if encoded.inner_len() > self.inner.opts.max_request_bytes {
            return Err(ClientError::RequestTooLarge {
                size: encoded.inner_len(),
                max: self.inner.opts.max_request_bytes,
            });
        }
        let read_only = retry::is_read_only(&body);
        let mut backoff = Backoff::new();
        loop {
            let conn = match self.inner.pool.acquire(deadline) {
                Ok(c) => c,
                Err(_) => return Err(ClientError::Timeout),
            };
            let retry_reason = match conn.call(&encoded, deadline) {
                Ok(client_response::Body::Error(e)) => {
                    let err = ApiError::from_proto(&e);
                    if !(read_only && err.is_retryable()) {
                        return Err(ClientError::Api(err));
                    }
                    ClientError::Api(err)
                }
                Ok(answer) => return Ok(answer),
                // Never written: any request may go elsewhere.
                Err(CallError::NotSent(reason)) => ClientError::Closed { reason },
                // Maybe applied: only a read may be sent again.
                Err(CallError::Lost(reason)) if !read_only => return Err(ClientError::Closed { reason }),
                Err(CallError::Lost(reason)) => ClientError::Closed { reason },
                Err(CallError::Timeout) => return Err(ClientError::Timeout),
                Err(CallError::Protocol(m)) => return Err(ClientError::Protocol(m)),
            };
            log::debug!("retrying on another connection after: {retry_reason}");
            if !backoff.wait(deadline) {
                // Out of time: a retryable server error is more telling than
                // a bare timeout.
                return Err(match retry_reason {
                    e @ ClientError::Api(_) => e,
                    _ => ClientError::Timeout,
                });
            }
        }
    }

    /// Sends a request on one connection and returns the stream of its
    /// answers (watch, lease keep-alive). Not retried: the caller re-opens.
    pub fn open_stream(&self, body: client_request::Body, capacity: usize) -> Result<conn::Stream, ClientError> {
        self.open_stream_until(body, capacity, Instant::now() + self.inner.opts.request_timeout)
    }

    /// `open_stream` with its own deadline (the keep-alive loop must not
    /// wait past its lease's).
    pub(crate) fn open_stream_until(
        &self,
        body: client_request::Body,
        capacity: usize,
        deadline: Instant,
    ) -> Result<conn::Stream, ClientError> {
        self.open_stream_with(body, capacity, None, deadline)
    }

    /// `open_stream_until`, flow-controlled when `patience` is given (see
    /// `Connection::open_stream_with`).
    pub(crate) fn open_stream_with(
        &self,
        body: client_request::Body,
        capacity: usize,
        patience: Option<Duration>,
        deadline: Instant,
    ) -> Result<conn::Stream, ClientError> {
        let encoded = EncodedRequest::new(&body);
        let mut backoff = Backoff::new();
        loop {
            let conn = self.inner.pool.acquire(deadline).map_err(|_| ClientError::Timeout)?;
            match conn.open_stream_with(&encoded, capacity, patience, deadline) {
                Ok(s) => return Ok(s),
                Err(CallError::NotSent(_)) if backoff.wait(deadline) => continue,
                Err(CallError::NotSent(reason)) | Err(CallError::Lost(reason)) => {
                    return Err(ClientError::Closed { reason })
                }
                Err(CallError::Timeout) => return Err(ClientError::Timeout),
                Err(CallError::Protocol(m)) => return Err(ClientError::Protocol(m)),
            }
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoints", &self.endpoints()).finish()
    }
}
