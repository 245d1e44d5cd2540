//! Celery's Redis protocol, as unmodified Celery 5 workers speak it (see
//! `shared/reference/celery-redis-protocol.md`): how kombu names keys and channels, the task
//! messages we send and the events we receive.

mod broker;
pub mod events;
pub mod message;
pub mod pyrepr;

pub use broker::BrokerNaming;
