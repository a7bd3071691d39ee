//! Cluster access: the client, raw requests, discovery.

pub mod api;
pub mod cluster;
pub mod discovery;
