//! Ports for test servers, shared by `tests/common` and `tests/support`.

/// A free port on 127.0.0.1, checked by binding it (then released).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Below the kernel's ephemeral range (32768 and up), so no outgoing
    // connection of a test running in parallel can take the port between
    // this check and the bind; each process starts at its own offset, and
    // a counter keeps this process's tests apart.
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left below the ephemeral range");
        let port = (LOW + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
