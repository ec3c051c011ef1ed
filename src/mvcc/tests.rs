//! Unit tests of the store as a whole (semantics against etcd).
