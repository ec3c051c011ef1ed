//! Authentication and role-based access (issue 15), built up in steps.
//! Today: `perm`, whether a user's key permissions allow an access to a
//! key or a range, by etcd's rules. Users, roles, tokens, the auth applier
//! and the checks on every request come next (see the note).
//!
//! Never imports `server`, `api` or `transport`: they call into it.

pub mod perm;

pub use perm::{Access, KeyPerms};
