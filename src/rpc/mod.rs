//! The HTTP RPC API of the original (`swh.scheduler.api`): server, codec and client.

pub mod client;
pub mod codec;
pub mod methods;
pub mod metrics;
pub mod server;

pub use client::RpcClient;
pub use server::{RpcConfig, serve, serve_on};
