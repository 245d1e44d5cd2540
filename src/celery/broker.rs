//! Key and channel names on the Celery Redis broker, following the workers' kombu settings.

use serde::Deserialize;

/// The workers' kombu transport settings that decide key and channel names. They must match
/// the workers' `broker_transport_options`, or messages land where no worker looks.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct BrokerNaming {
    /// `global_keyprefix`: prefixes every key and channel.
    pub global_keyprefix: String,
    /// `sep`: between a queue name and its priority bucket (kombu's default `\x06\x16`).
    pub sep: String,
    /// `priority_steps`: the priority buckets (kombu's default `[0, 3, 6, 9]`).
    pub priority_steps: Vec<u8>,
    /// The broker URL's database number, part of the event channel names (taken from the URL).
    #[serde(skip)]
    pub db: u32,
    /// `event_exchange` (default `celeryev`).
    pub event_exchange: String,
    /// `fanout_prefix`: channels start with `/<db>.` (default on).
    pub fanout_prefix: bool,
}

impl Default for BrokerNaming {
    fn default() -> Self {
        BrokerNaming {
            global_keyprefix: String::new(),
            sep: "\x06\x16".into(),
            priority_steps: vec![0, 3, 6, 9],
            db: 0,
            event_exchange: "celeryev".into(),
            fanout_prefix: true,
        }
    }
}

impl BrokerNaming {
    /// The list keys of a queue: bucket 0 (where messages of priority 0 go) first, then the
    /// other priority buckets. What waits in the queue is the sum of their lengths.
    pub fn queue_keys(&self, queue: &str) -> Vec<String> {
        let mut steps: Vec<u8> = self.priority_steps.clone();
        steps.sort_unstable();
        steps.dedup();
        let mut keys = vec![format!("{}{queue}", self.global_keyprefix)];
        for s in steps.into_iter().filter(|s| *s > 0) {
            keys.push(format!("{}{queue}{}{s}", self.global_keyprefix, self.sep));
        }
        keys
    }

    /// The pattern matching every event channel (`/<db>.celeryev/*` by default).
    pub fn event_pattern(&self) -> String {
        if self.fanout_prefix {
            format!(
                "{}/{}.{}/*",
                self.global_keyprefix, self.db, self.event_exchange
            )
        } else {
            format!("{}{}/*", self.global_keyprefix, self.event_exchange)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kombu() {
        let n = BrokerNaming::default();
        assert_eq!(
            n.queue_keys("q1"),
            ["q1", "q1\x06\x163", "q1\x06\x166", "q1\x06\x169"]
        );
        assert_eq!(n.event_pattern(), "/0.celeryev/*");
        let n = BrokerNaming {
            global_keyprefix: "pfx:".into(),
            sep: ":".into(),
            priority_steps: vec![0, 5],
            db: 2,
            ..Default::default()
        };
        assert_eq!(n.queue_keys("q"), ["pfx:q", "pfx:q:5"]);
        assert_eq!(n.event_pattern(), "pfx:/2.celeryev/*");
    }
}
