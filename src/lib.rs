//! A Redis-native job scheduler that does the work of the Software Heritage scheduler: it keeps
//! task types, recurring and one-shot tasks and their runs in Redis, hands due tasks to
//! unmodified Celery workers, follows what they report and reschedules with backoff.
//!
//! Roles, one module each:
//! - [`api`]: the scheduler API declared once (the trait, the endpoint table);
//! - [`store`]: the API on Redis, every change one Lua script in `lua/`;
//! - [`runner`]: sends due tasks to the Celery broker, atomically;
//! - [`visit_runner`]: sends visits of listed origins to the loaders' queues, atomically;
//! - [`listener`]: records runs from Celery's events, reschedules, marks lost runs;
//! - [`rpc`]: the HTTP RPC server and client, wire-compatible with the original;
//! - [`simulator`]: a simulated forge around the real scheduler, to compare policies;
//! - [`cli`]: the `swh-scheduler` command line (with `serve` and `benchmark`).
//!
//! Beside them: the domain in [`model`] (no I/O), Celery's protocol in [`celery`], the
//! configuration file in [`config`], and [`private_redis`] for `serve` without a Redis.

pub mod api;
pub mod celery;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod listener;
pub mod model;
pub mod private_redis;
pub mod rpc;
pub mod runner;
pub mod simulator;
pub mod store;
pub mod visit_runner;

pub use error::{Error, Result};
