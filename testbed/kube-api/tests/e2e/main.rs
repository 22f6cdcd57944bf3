//! End-to-end tests of the in-memory API server through the real kube-rs client over HTTP.

mod common;
mod core;
mod crd;
mod faults;
mod integrations;
mod parity;
mod scale;
mod watch;
