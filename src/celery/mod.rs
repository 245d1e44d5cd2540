//! Celery's Redis protocol, as unmodified Celery 5 workers speak it (captured messages and events
//! are in `tests/fixtures/celery`): how kombu names keys and channels, the task
//! messages we send and the events we receive.

mod broker;
pub mod events;
pub mod message;
pub mod pyrepr;

pub use broker::BrokerNaming;
