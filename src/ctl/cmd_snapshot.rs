//! `snapshot save|status|restore`: etcdctl's snapshot commands.
//!
//! Owns each command's sequence: `save` streams one member's image into
//! `FILE.part` (with a progress bar when stderr is a terminal), checks it
//! whole, makes it durable and renames it; `status` reads a file and
//! checks it; `restore` makes a new member's data directory from one
//! (`server::restore`). Texts and exit codes are etcdctl's; the printers
//! own the status formats.

use super::cli::{bool_value, IdArgs, SnapshotRestoreArgs};
use super::exit::{CtlError, EXIT_ERROR, EXIT_INTERRUPTED};
use super::print::{Output, SnapshotStatus};
use super::settings::Settings;
use crate::client::SnapshotError;
use crate::mvcc::RevisionScan;
use crate::server::config::Peer;
use crate::server::reconfig::parse_peer_url;
use crate::server::restore::{go_io_error, restore as restore_dir, RestorePlan};
use crate::storage::snapshot::{scan_image, sync_parent_dir};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

fn one_file(a: &IdArgs, message: &str) -> Result<PathBuf, CtlError> {
    match a.args.as_slice() {
        [file] => Ok(PathBuf::from(file)),
        _ => Err(CtlError::bad_args(message)),
    }
}

/// `snapshot save FILE`: `Snapshot saved at FILE` once the file is whole.
pub fn save(s: &Settings, a: &IdArgs) -> Result<Output, CtlError> {
    let path = one_file(a, "snapshot save expects one argument")?;
    if s.endpoints.len() != 1 {
        return Err(CtlError::new(
            EXIT_INTERRUPTED,
            format!("snapshot must be requested to one selected node, not multiple [{}]", s.endpoints.join(" ")),
        ));
    }
    let part = PathBuf::from(format!("{}.part", path.display()));
    // The whole keyspace: readable by its owner only (etcdctl's 0600).
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&part).map_err(|e| {
        CtlError::new(
            EXIT_INTERRUPTED,
            format!("could not open {} (open {}: {})", part.display(), part.display(), go_io_error(&e)),
        )
    })?;
    let saved = receive(s, file, &part).and_then(|()| {
        std::fs::rename(&part, &path).map_err(|e| CtlError::new(EXIT_INTERRUPTED, e.to_string()))?;
        sync_parent_dir(&path);
        Ok(())
    });
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    Ok(Output { stdout: format!("Snapshot saved at {}\n", path.display()).into_bytes(), stderr: Vec::new() })
}

/// Streams the image into `file` (`part`), then checks and syncs it.
fn receive(s: &Settings, file: File, part: &Path) -> Result<(), CtlError> {
    let client = s.client()?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = BufWriter::new(file);
    let got = client.snapshot(|chunk, remaining| {
        out.write_all(chunk)?;
        bar.inc(chunk.len() as u64);
        bar.set_length(bar.position().saturating_add(remaining));
        Ok(())
    });
    bar.finish_and_clear();
    let interrupted = |m: String| CtlError::new(EXIT_INTERRUPTED, m);
    match got {
        Ok(_) => {}
        Err(SnapshotError::Client(e)) => return Err(interrupted(e.to_string())),
        Err(SnapshotError::Write(e)) => return Err(interrupted(format!("writing {}: {e}", part.display()))),
    }
    let file = out.into_inner().map_err(|e| interrupted(e.to_string()))?;
    file.sync_all().map_err(|e| interrupted(e.to_string()))?;
    // A stream cut short, or changed on the way, is not a snapshot.
    scan_image(part, |_, _, _| Ok(())).map_err(|e| interrupted(format!("the received snapshot is invalid: {e}")))?;
    Ok(())
}

/// The figures `snapshot status` prints, read from a whole, checked file.
pub fn file_status(path: &Path) -> Result<SnapshotStatus, String> {
    let mut revision = RevisionScan::default();
    let summary = scan_image(path, |cf, k, v| {
        revision.observe(cf, k, v).map_err(|e| crate::storage::StoreError::Corrupt(e.to_string()))
    })
    .map_err(|e| e.to_string())?;
    Ok(SnapshotStatus {
        hash: summary.crc,
        revision: revision.revision(),
        total_key: summary.records,
        total_size: summary.bytes,
    })
}

/// `snapshot status FILE`.
pub fn status(s: &Settings, a: &IdArgs) -> Result<Output, CtlError> {
    let path = one_file(a, "snapshot status requires exactly one argument")?;
    let printer = s.printer()?;
    match std::fs::metadata(&path) {
        Err(_) => return Err(CtlError::new(EXIT_ERROR, format!("stat {}: no such file or directory", path.display()))),
        Ok(m) if m.is_dir() => {
            return Err(CtlError::new(EXIT_ERROR, format!("open {}: is a directory", path.display())))
        }
        Ok(_) => {}
    }
    let st = file_status(&path).map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    printer.snapshot_status(&st)
}

/// `snapshot restore FILE [flags]`: prints nothing once the directory is
/// made.
pub fn restore(a: &SnapshotRestoreArgs) -> Result<Output, CtlError> {
    let [file] = a.args.as_slice() else {
        return Err(CtlError::bad_args("snapshot restore requires exactly one argument"));
    };
    // The image's own checksums are always checked: raftkv's snapshot
    // files have no separate hash that a copied data directory would lack.
    let _skip_hash_check = bool_value(&a.skip_hash_check, "--skip-hash-check")?;
    let failed = |m: String| CtlError::new(EXIT_ERROR, m);
    if !a.wal_dir.is_empty() {
        return Err(failed("--wal-dir: raftkv keeps its log in the data directory (use --data-dir)".into()));
    }
    let initial_cluster = restore_cluster(&with_ip(&a.initial_cluster)).map_err(failed)?;
    let advertise = with_ip(a.initial_advertise_peer_urls.split(',').next().unwrap_or(""));
    let advertise_peer = parse_peer_url(&advertise)
        .ok_or_else(|| failed(format!("--initial-advertise-peer-urls: {advertise:?} is not a peer URL")))?;
    let data_dir = if a.data_dir.is_empty() { format!("{}.raftkv", a.name) } else { a.data_dir.clone() };
    let plan = RestorePlan {
        file: PathBuf::from(file),
        data_dir: PathBuf::from(data_dir),
        name: a.name.clone(),
        initial_cluster,
        advertise_peer,
        token: a.initial_cluster_token.clone(),
    };
    restore_dir(&plan).map_err(failed)?;
    Ok(Output::default())
}

/// `--initial-cluster` as etcdctl reads it (`NAME=URL,...`); the members'
/// rules (names, duplicates) are `server::restore`'s, checked in etcd's
/// order.
fn restore_cluster(s: &str) -> Result<Vec<Peer>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part.split_once('=').unwrap_or(("", ""));
        if url.starts_with("https://") || url.starts_with("unix") {
            return Err(format!("{url}: raftkv's peers speak plain http (http://IP:PORT)"));
        }
        if !url.starts_with("http://") {
            return Err(format!("URL scheme must be http, https, unix, or unixs: {url}"));
        }
        let addr = parse_peer_url(url).ok_or_else(|| format!("{url:?} is not an http://IP:PORT peer URL"))?;
        out.push(Peer { name: name.to_string(), addr });
    }
    Ok(out)
}

/// etcdctl's defaults name `localhost`; raftkv's addresses are IPs.
fn with_ip(urls: &str) -> String {
    urls.replace("//localhost:", "//127.0.0.1:").replace("=localhost:", "=127.0.0.1:")
}
