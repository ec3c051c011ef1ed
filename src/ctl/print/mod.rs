//! Output formats (`-w simple|json|table|fields|protobuf`) and which
//! command supports which, as in etcdctl.
//!
//! Owns the choice of printer per format and the "not supported" errors;
//! each format's text is built in its own module (`simple`, `json`,
//! `table`, `fields`). Printing is pure: responses in, bytes out; the
//! caller writes them.

pub mod cluster;
pub mod fields;
pub mod hashkv;
pub mod json;
pub mod maintenance;
pub mod simple;
pub mod snapshot;
pub mod table;

pub use snapshot::SnapshotStatus;

use super::exit::CtlError;
use crate::proto::etcdserverpb::{
    DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, MemberListResponse, PutResponse, RangeResponse, ResponseHeader, StatusResponse,
    TxnResponse, WatchResponse,
};
use prost::Message;

/// An output format (`-w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Table,
    Fields,
    Protobuf,
}

impl Format {
    /// etcdctl's names; anything else is `unsupported output format`
    /// (exit 4), checked before any request is sent.
    pub fn parse(name: &str) -> Result<Format, CtlError> {
        match name {
            "simple" => Ok(Format::Simple),
            "json" => Ok(Format::Json),
            "table" => Ok(Format::Table),
            "fields" => Ok(Format::Fields),
            "protobuf" => Ok(Format::Protobuf),
            _ => Err(CtlError::bad_feature("unsupported output format")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Table => "table",
            Format::Fields => "fields",
            Format::Protobuf => "protobuf",
        }
    }
}

/// What a command prints: most output goes to stdout, `endpoint health`'s
/// simple lines to stderr (as etcdctl does).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    fn out(stdout: Vec<u8>) -> Output {
        Output { stdout, stderr: Vec::new() }
    }
}

/// One endpoint's `endpoint status` result.
#[derive(Debug, Clone, PartialEq)]
pub struct EpStatus {
    pub ep: String,
    pub resp: StatusResponse,
}

/// One endpoint's `endpoint health` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpHealth {
    pub ep: String,
    pub health: bool,
    /// Go duration text (`1.517636ms`).
    pub took: String,
    /// Empty when healthy.
    pub error: String,
}

/// A format plus `--hex`.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    pub hex: bool,
}

/// What etcdctl's protobuf printer writes for clientv3's lease answers:
/// they embed `*ResponseHeader`, whose `Marshal` is promoted, so only the
/// header is marshalled (revoke's answer is the protobuf message itself).
fn header_pb(h: Option<&ResponseHeader>) -> Vec<u8> {
    h.map(|h| h.encode_to_vec()).unwrap_or_default()
}

fn unsupported(format: Format) -> CtlError {
    CtlError::bad_feature(format!("{} not supported as output format", format.name()))
}

impl Printer {
    pub fn put(&self, r: &PutResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::put(r, self.hex),
            Format::Json => json::put(r).into_bytes(),
            Format::Fields => fields::put(r),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    pub fn get(&self, r: &RangeResponse, value_only: bool) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::get(r, self.hex, value_only),
            Format::Json => json::range(r).into_bytes(),
            Format::Fields => fields::get(r),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    pub fn del(&self, r: &DeleteRangeResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::del(r, self.hex),
            Format::Json => json::delete(r).into_bytes(),
            Format::Fields => fields::del(r),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    pub fn txn(&self, r: &TxnResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::txn(r, self.hex),
            Format::Json => json::txn(r).into_bytes(),
            Format::Fields => fields::txn(r),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    /// One watch response as etcdctl's `display.Watch` prints it (table:
    /// exit 4, when the first response comes).
    pub fn watch(&self, r: &WatchResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => simple::watch(r, self.hex),
            Format::Json => json::watch(r).into_bytes(),
            Format::Fields => fields::watch(r),
            // etcdctl's pbPrinter rebuilds the response without its watch
            // id, fragment flag and cancel reason.
            Format::Protobuf => WatchResponse {
                header: Some(r.header.unwrap_or_default()),
                events: r.events.clone(),
                compact_revision: r.compact_revision,
                canceled: r.canceled,
                created: r.created,
                ..Default::default()
            }
            .encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    pub fn endpoint_status(&self, list: &[EpStatus]) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::endpoint_status(list),
            Format::Json => json::endpoint_status(list).into_bytes(),
            Format::Table => table::endpoint_status(list).into_bytes(),
            Format::Fields => fields::endpoint_status(list),
            Format::Protobuf => return Err(unsupported(self.format)),
        }))
    }

    pub fn member_list(&self, r: &MemberListResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::member_list(r),
            Format::Json => json::member_list(r).into_bytes(),
            Format::Table => table::member_list(r).into_bytes(),
            Format::Fields => fields::member_list(r),
            Format::Protobuf => r.encode_to_vec(),
        }))
    }

    pub fn lease_grant(&self, r: &LeaseGrantResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::lease_grant(r),
            Format::Json => json::lease_grant(r).into_bytes(),
            Format::Fields => fields::lease_grant(r),
            Format::Protobuf => header_pb(r.header.as_ref()),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    /// `id` is the revoked lease (simple prints it; the answer lacks it).
    pub fn lease_revoke(&self, id: i64, r: &LeaseRevokeResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::lease_revoke(id),
            Format::Json => json::lease_revoke(r).into_bytes(),
            Format::Fields => fields::lease_revoke(r),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    /// One renewal (`keep-alive --once`, or each one of a continuous
    /// keep-alive).
    pub fn lease_keep_alive(&self, r: &LeaseKeepAliveResponse) -> Result<Vec<u8>, CtlError> {
        Ok(match self.format {
            Format::Simple => simple::lease_keep_alive(r),
            Format::Json => json::lease_keep_alive(r).into_bytes(),
            Format::Fields => fields::lease_keep_alive(r),
            Format::Protobuf => header_pb(r.header.as_ref()),
            Format::Table => return Err(unsupported(self.format)),
        })
    }

    pub fn lease_time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::lease_time_to_live(r, keys),
            Format::Json => json::lease_time_to_live(r).into_bytes(),
            Format::Fields => fields::lease_time_to_live(r),
            Format::Protobuf => header_pb(r.header.as_ref()),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    pub fn lease_leases(&self, r: &LeaseLeasesResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple::lease_leases(r),
            Format::Json => json::lease_leases(r).into_bytes(),
            Format::Fields => fields::lease_leases(r),
            Format::Protobuf => header_pb(r.header.as_ref()),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }

    pub fn endpoint_health(&self, list: &[EpHealth]) -> Result<Output, CtlError> {
        Ok(match self.format {
            Format::Simple => Output { stdout: Vec::new(), stderr: simple::endpoint_health(list) },
            Format::Json => Output::out(json::endpoint_health(list).into_bytes()),
            Format::Table => Output::out(table::endpoint_health(list).into_bytes()),
            Format::Fields => Output::out(fields::endpoint_health(list)),
            Format::Protobuf => return Err(unsupported(self.format)),
        })
    }
}
