//! Celery task messages (protocol v2) as we send them, and the check that a message cannot
//! crash, poison or lose on a worker (Celery's message protocol 2 on kombu's Redis transport).
//!
//! `lua/dispatch.lua` builds the same envelope in Lua; a test checks that both agree.

use serde_json::{Map, Value, json};

/// A task call to send to a queue.
#[derive(Clone, Debug)]
pub struct TaskMessage<'a> {
    /// The task name as registered on the worker (the task type's `backend_name`).
    pub task: &'a str,
    /// The task id, which is the run's backend id.
    pub id: &'a str,
    pub args: &'a [Value],
    pub kwargs: &'a Map<String, Value>,
    /// The queue: the list key workers `BRPOP`, and the routing key of `delivery_info`.
    pub queue: &'a str,
    /// `<name>@<host>` of the producer.
    pub origin: &'a str,
}

/// The `embed` element of every body: no callbacks, no chain.
pub const EMBED: &str = r#"{"callbacks":null,"errbacks":null,"chain":null,"chord":null}"#;

impl TaskMessage<'_> {
    /// The body: the JSON text `[args, kwargs, embed]`.
    pub fn body(&self) -> String {
        format!(
            "[{},{},{EMBED}]",
            serde_json::to_string(self.args).expect("JSON"),
            serde_json::to_string(self.kwargs).expect("JSON")
        )
    }

    /// The envelope as Celery writes it (protocol 2), with a plain-JSON body (no `body_encoding`),
    /// which workers accept and which Lua can build without base64. The delivery tag is the
    /// task id: unique, since every run has its own.
    pub fn envelope(&self) -> Value {
        let args = serde_json::to_string(self.args).expect("JSON");
        let kwargs = serde_json::to_string(self.kwargs).expect("JSON");
        json!({
            "body": self.body(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py", "task": self.task, "id": self.id, "shadow": null, "eta": null,
                "expires": null, "group": null, "group_index": null, "retries": 0,
                "timelimit": [null, null], "root_id": self.id, "parent_id": null,
                "argsrepr": args, "kwargsrepr": kwargs, "origin": self.origin,
                "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null,
                "stamps": {},
            },
            "properties": {
                "correlation_id": self.id, "reply_to": "", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.queue},
                "priority": 0, "delivery_tag": self.id,
            },
        })
    }
}

/// Checks an envelope against what a worker needs (the poison and crash cases in tests/fixtures/celery): `content-type`, a string body
/// that decodes to exactly `[args (array), kwargs (object), embed]`, `headers.task`,
/// `headers.id`, `properties.delivery_tag` and `properties.delivery_info` with `exchange` and
/// `routing_key`. Returns what is wrong.
pub fn validate(envelope: &Value) -> Result<(), String> {
    let str_at = |path: &[&str]| -> Result<&str, String> {
        let mut v = envelope;
        for p in path {
            v = v
                .get(p)
                .ok_or_else(|| format!("missing {}", path.join(".")))?;
        }
        v.as_str()
            .ok_or_else(|| format!("{} is not a string", path.join(".")))
    };
    if str_at(&["content-type"])? != "application/json" {
        return Err("content-type is not application/json".into());
    }
    let body = str_at(&["body"])?;
    let encoding = envelope
        .pointer("/properties/body_encoding")
        .and_then(Value::as_str);
    let text = match encoding {
        Some("base64") => {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| format!("body is not base64: {e}"))?;
            String::from_utf8(raw).map_err(|_| "body is not UTF-8".to_string())?
        }
        None | Some("utf-8") => body.to_string(),
        Some(other) => return Err(format!("unknown body_encoding {other:?}")),
    };
    let parsed: Value =
        serde_json::from_str(&text).map_err(|e| format!("body is not JSON: {e}"))?;
    match parsed.as_array().map(Vec::as_slice) {
        Some([args, kwargs, _embed]) if args.is_array() && kwargs.is_object() => {}
        Some([_, _, _]) => return Err("body args must be an array and kwargs an object".into()),
        _ => return Err("body must have exactly 3 elements [args, kwargs, embed]".into()),
    }
    str_at(&["headers", "task"])?;
    str_at(&["headers", "id"])?;
    str_at(&["properties", "delivery_tag"])?;
    str_at(&["properties", "delivery_info", "exchange"])?;
    str_at(&["properties", "delivery_info", "routing_key"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/celery/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    #[test]
    fn our_messages_have_every_required_field() {
        let kwargs = json!({"url": "https://example.com/\"quoted\"/ü"});
        let m = TaskMessage {
            task: "swh.loader.git.tasks.UpdateGitRepository",
            id: "0194f3a2-1c4e-85c8-8000-010000000001",
            args: &[json!(1), json!([2])],
            kwargs: kwargs.as_object().unwrap(),
            queue: "swh.loader.git.tasks.UpdateGitRepository",
            origin: "swh-scheduler@host",
        };
        let env = m.envelope();
        validate(&env).unwrap();
        assert_eq!(env["headers"]["id"], env["properties"]["delivery_tag"]);
        let body: Value = serde_json::from_str(env["body"].as_str().unwrap()).unwrap();
        assert_eq!(body[1], kwargs);
    }

    #[test]
    fn every_invalid_fixture_is_refused_and_every_verified_one_accepted() {
        let dir = format!("{}/tests/fixtures/celery", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            // the restored fixture is the no-content-type poison message after its restore
            let poison = name == "task-message.restored-redelivered.json";
            if (name.starts_with("invalid.") && !name.contains("unknown-task")) || poison {
                let e = validate(&fixture(&name));
                assert!(e.is_err(), "{name} passed validation");
                seen += 1;
            } else if name.starts_with("task-message.") {
                validate(&fixture(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
                seen += 1;
            }
        }
        assert!(seen >= 12, "fixtures found: {seen}");
    }
}
