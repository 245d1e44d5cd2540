//! The HTTP RPC API of the original (`swh.scheduler.api`): the server, the client, the wire
//! codec, and how values travel in calls (keyword arguments and rows).

pub mod args;
pub mod auth;
pub mod client;
pub mod codec;
pub mod error;
pub mod metrics;
pub mod rows;
pub mod server;

pub use client::RpcClient;
pub use error::CallError;
pub use server::{RpcConfig, serve, serve_on};
