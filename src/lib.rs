//! A Redis-native job scheduler that does the work of the Software Heritage scheduler: it keeps
//! task types, recurring and one-shot tasks and their runs in Redis, hands due tasks to
//! unmodified Celery workers, follows what they report and reschedules with backoff.
//!
//! Roles, one module each: [`store`] (Redis and its Lua scripts), and the domain in [`model`].

pub mod api;
pub mod celery;
pub mod cli;
pub mod config;
pub mod error;
pub mod listener;
pub mod model;
pub mod private_redis;
pub mod rpc;
pub mod runner;
pub mod store;

pub use error::{Error, Result};
