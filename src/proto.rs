//! Generated protobuf types, one module per proto package.
//!
//! Owns nothing but the generated code and its module layout; conversions and
//! helpers live with the code that uses them.

#![allow(clippy::all, missing_docs, non_snake_case, rustdoc::all)]

/// Raft consensus messages (`proto/raft.proto`).
pub mod raftpb {
    include!(concat!(env!("OUT_DIR"), "/raftpb.rs"));
}

/// The MVCC data model (`proto/kv.proto`).
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// Users, roles and permissions (`proto/auth.proto`).
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// etcd-mirrored requests and responses (`proto/rpc.proto`).
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// The client protocol envelope (`proto/client.proto`).
pub mod raftkvpb {
    include!(concat!(env!("OUT_DIR"), "/raftkvpb.rs"));
}

/// Raft entry payloads and member records (`proto/internal.proto`).
pub mod internalpb {
    include!(concat!(env!("OUT_DIR"), "/internalpb.rs"));
}

/// The peer protocol (`proto/peer.proto`).
pub mod peerpb {
    include!(concat!(env!("OUT_DIR"), "/peerpb.rs"));
}
