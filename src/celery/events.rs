//! Celery events as they arrive on the Redis event channels (Celery's event protocol), and what
//! each means for a task run (the original listener's rules, `swh.scheduler.celery_backend.listener`).

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::model::{RunStatus, VisitOutcome, VisitStatus, ids};
use crate::store::RunEvent;

use super::pyrepr;

/// The fields of a Celery event that the scheduler reads. Decoding keeps only these and skips
/// the others unparsed (a task-received event's arguments, a heartbeat's load averages), which
/// is most of the listener's work otherwise; it never fails, so that one odd event in a
/// `task.multi` batch is refused alone, by [`interpret`]: a non-object decodes to an event
/// without a type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub kind: Option<Value>,
    pub uuid: Option<Value>,
    pub timestamp: Option<Value>,
    pub hostname: Option<Value>,
    pub result: Option<Value>,
    pub traceback: Option<Value>,
    pub exception: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> serde::de::Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Celery event")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut e = Event::default();
        // later keys win, as in a JSON object read whole
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "type" => &mut e.kind,
                "uuid" => &mut e.uuid,
                "timestamp" => &mut e.timestamp,
                "hostname" => &mut e.hostname,
                "result" => &mut e.result,
                "traceback" => &mut e.traceback,
                "exception" => &mut e.exception,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(e)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Event, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Event::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Event, E> {
        Ok(Event::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Event, E> {
        Ok(Event::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Event, E> {
        Ok(Event::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Event, E> {
        Ok(Event::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Event, E> {
        Ok(Event::default())
    }
    fn visit_unit<E>(self) -> Result<Event, E> {
        Ok(Event::default())
    }
}

/// A message body: one event, or a `task.multi` array of them.
struct Body(Vec<Event>);

impl<'de> serde::Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Body;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event or a list of events")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(e) = seq.next_element()? {
                    out.push(e);
                }
                Ok(Body(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Body, A::Error> {
                EventVisitor.visit_map(map).map(|e| Body(vec![e]))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the listener reads of a message's envelope; the body is borrowed when it has no
/// escapes (base64 never has). The properties are small, read whole, so that odd ones are
/// only ignored, as before.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
    properties: Option<Value>,
}

/// The events carried by one pub/sub message: the envelope's body (base64 or plain) holds one
/// event or a `task.multi` array of them.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Event>, String> {
    let envelope: Envelope = serde_json::from_slice(payload)
        .map_err(|e| format!("envelope is not a JSON object with a string body: {e}"))?;
    let body = envelope.body.ok_or("envelope has no body")?;
    let encoding = envelope
        .properties
        .as_ref()
        .and_then(|p| p.get("body_encoding"))
        .and_then(Value::as_str);
    let decoded;
    let text: &str = match encoding {
        Some("base64") => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| format!("body is not base64: {e}"))?;
            decoded = String::from_utf8(raw).map_err(|_| "body is not UTF-8".to_string())?;
            &decoded
        }
        _ => &body,
    };
    serde_json::from_str::<Body>(text)
        .map(|b| b.0)
        .map_err(|e| format!("body is not an event or a list of events: {e}"))
}

/// What an event means for the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub enum Meaning {
    /// Start or end a run.
    Run(RunEvent),
    /// The result of a visit the visit runner sent.
    Visit(VisitOutcome),
    /// An event the scheduler has no use for (task-received, worker heartbeats...).
    Ignored,
}

/// Reads one event: `task-started` starts the run (metadata `worker` = hostname);
/// `task-result` (sent by the original's worker class, with the return value) and
/// `task-succeeded` (with its Python repr) end it eventful or uneventful; `task-failed` ends it
/// failed with the last traceback line as `metadata.error`. Times are the event's own.
pub fn interpret(event: &Value) -> Result<Meaning, String> {
    use serde::Deserialize;
    interpret_event(&Event::deserialize(event).map_err(|e| e.to_string())?)
}

/// [`interpret`] for an event as [`decode_payload`] gives it.
pub fn interpret_event(event: &Event) -> Result<Meaning, String> {
    let kind = event
        .kind
        .as_ref()
        .and_then(Value::as_str)
        .ok_or("event has no type")?;
    if !matches!(
        kind,
        "task-started" | "task-result" | "task-succeeded" | "task-failed"
    ) {
        return Ok(Meaning::Ignored);
    }
    let uuid = event
        .uuid
        .as_ref()
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("{kind} event has no uuid"))?;
    let timestamp = match &event.timestamp {
        None | Some(Value::Null) => None,
        Some(t) => {
            Some(timestamp(t).ok_or_else(|| format!("{kind} event has a bad timestamp {t}"))?)
        }
    };
    if let Some((visit_type_index, origin_id, sent_ms)) = ids::parse_visit_id(uuid) {
        // every worker sends task-succeeded; the original's worker class sends task-result
        // too, a moment apart: counting both would record a second, uneventful visit
        let (status, snapshot) = match kind {
            "task-started" | "task-result" => return Ok(Meaning::Ignored),
            "task-failed" => (VisitStatus::Failed, None),
            _ => visit_result(&result_value(kind, event)),
        };
        return Ok(Meaning::Visit(VisitOutcome {
            visit_type_index,
            origin_id,
            status,
            snapshot,
            date: timestamp,
            sent_ms: Some(sent_ms),
        }));
    }
    let (end_status, metadata) = match kind {
        "task-started" => {
            let mut m = Map::new();
            if let Some(h) = event.hostname.as_ref().and_then(Value::as_str) {
                m.insert("worker".into(), json!(h));
            }
            (None, m)
        }
        "task-result" | "task-succeeded" => {
            let (status, m) = from_result(&result_value(kind, event));
            (Some(status), m)
        }
        _ => {
            // task-failed: the traceback's last line says what went wrong
            let error = event
                .traceback
                .as_ref()
                .and_then(Value::as_str)
                .and_then(|t| t.trim_end().lines().last())
                .or_else(|| event.exception.as_ref().and_then(Value::as_str))
                .unwrap_or("");
            let mut m = Map::new();
            m.insert("error".into(), json!(error.replace('\0', "")));
            (Some(RunStatus::Failed), m)
        }
    };
    Ok(Meaning::Run(RunEvent {
        backend_id: uuid.to_string(),
        end_status,
        metadata: Some(metadata),
        timestamp,
    }))
}

/// The task's return value an end event carries: as JSON in `task-result` (sent by the
/// original's worker class), as its Python repr in `task-succeeded`.
fn result_value(kind: &str, event: &Event) -> Value {
    match (kind, event.result.as_ref()) {
        ("task-succeeded", Some(Value::String(repr))) => pyrepr::parse(repr)
            .or_else(|| pyrepr::scrape_status(repr))
            .unwrap_or(Value::Bool(!repr.is_empty())),
        (_, Some(v)) => v.clone(),
        (_, None) => Value::Null,
    }
}

/// What a loader's return value says of its visit: `{"status": "eventful" | "uneventful" |
/// "failed" | "not_found", "snapshot_id": <hex SHA1> | None}` (the loaders' shape); other
/// values are read as [`from_result`] reads a task's. A snapshot id that is not 40 hex digits
/// is ignored (and logged).
pub fn visit_result(result: &Value) -> (VisitStatus, Option<Vec<u8>>) {
    let status = match result.get("status").and_then(Value::as_str) {
        Some("not_found") => VisitStatus::NotFound,
        _ => match from_result(result).0 {
            RunStatus::Eventful => VisitStatus::Eventful,
            RunStatus::Uneventful => VisitStatus::Uneventful,
            _ => VisitStatus::Failed,
        },
    };
    let snapshot = match result.get("snapshot_id") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let bytes = v.as_str().and_then(|h| {
                let h = h.strip_prefix("swh:1:snp:").unwrap_or(h);
                (h.len() == 40 && h.is_ascii())
                    .then(|| {
                        (0..40)
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
                            .collect::<Option<Vec<u8>>>()
                    })
                    .flatten()
            });
            if bytes.is_none() {
                tracing::warn!("ignoring a visit result's snapshot_id {v}: not a SHA1 in hex");
            }
            bytes
        }
    };
    (status, snapshot)
}

/// An event's `timestamp` (the sender's `time.time()`) as a datetime, within the range the
/// store keeps (years 1700 to 2250); anything else is a bad event, skipped alone.
fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    let secs = v.as_f64()?;
    if !secs.is_finite() {
        return None;
    }
    let t = DateTime::from_timestamp_micros((secs * 1e6).round() as i64)?;
    crate::model::check_time("timestamp", t).ok()?;
    Some(t)
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The run status a task's return value means, as the original listener reads it: a dict's
/// `status` (`success` meaning eventful if its `eventful` is true, else uneventful), or else
/// eventful if the value is truthy. A failed result's `error` goes into the metadata.
pub fn from_result(result: &Value) -> (RunStatus, Map<String, Value>) {
    let mut metadata = Map::new();
    let status = match result.get("status").and_then(Value::as_str) {
        Some("success") if result.get("eventful").is_some_and(truthy) => RunStatus::Eventful,
        Some("success") => RunStatus::Uneventful,
        Some(s) => match s.parse::<RunStatus>() {
            Ok(status) if status.is_final() => status,
            _ => {
                tracing::warn!(
                    "task result has an unknown status {s:?}; reading it as {}",
                    if truthy(result) {
                        "eventful"
                    } else {
                        "uneventful"
                    }
                );
                if truthy(result) {
                    RunStatus::Eventful
                } else {
                    RunStatus::Uneventful
                }
            }
        },
        None if truthy(result) => RunStatus::Eventful,
        None => RunStatus::Uneventful,
    };
    if status == RunStatus::Failed
        && let Some(e) = result.get("error")
    {
        let text = e
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        metadata.insert("error".into(), json!(text.replace('\0', "")));
    }
    (status, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/celery/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn meanings(name: &str) -> Vec<Meaning> {
        decode_payload(&fixture(name))
            .unwrap()
            .iter()
            .map(|e| interpret_event(e).unwrap())
            .collect()
    }

    #[test]
    fn a_captured_batch_starts_then_ends_the_run() {
        let m = meanings("event.task-multi.received-started-succeeded.json");
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], Meaning::Ignored);
        let Meaning::Run(start) = &m[1] else {
            panic!("{m:?}")
        };
        assert_eq!(start.backend_id, "11111111-1111-1111-1111-111111111111");
        assert_eq!(start.end_status, None);
        assert_eq!(start.metadata.as_ref().unwrap()["worker"], json!("w1@vm"));
        assert_eq!(
            start.timestamp.unwrap().timestamp_micros(),
            1_795_723_864_323_178
        );
        let Meaning::Run(end) = &m[2] else { panic!() };
        // result "{'sum': 5, 'kw': {'note': 'hi'}}": a dict without status, truthy: eventful
        assert_eq!(end.end_status, Some(RunStatus::Eventful));
    }

    #[test]
    fn failures_keep_the_last_traceback_line() {
        let m = meanings("event.task-multi.received-started-failed.json");
        let Meaning::Run(end) = m.last().unwrap() else {
            panic!()
        };
        assert_eq!(end.end_status, Some(RunStatus::Failed));
        let err = end.metadata.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(!err.contains('\n') && !err.is_empty(), "{err}");
        // an unknown task has no traceback: the exception is the error
        let m = meanings("event.task-multi.unknown-task-failed.json");
        let end = m
            .iter()
            .find_map(|x| match x {
                Meaning::Run(e) => Some(e),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            end.metadata.as_ref().unwrap()["error"],
            json!("NotRegistered('proj.nope')")
        );
    }

    #[test]
    fn every_captured_event_decodes() {
        let dir = format!("{}/tests/fixtures/celery", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.starts_with("event.") {
                for e in decode_payload(&fixture(&name)).unwrap() {
                    interpret_event(&e).unwrap_or_else(|err| panic!("{name}: {err}"));
                }
            }
        }
    }

    #[test]
    fn result_rules_are_the_originals() {
        let cases = [
            (json!({"status": "eventful"}), RunStatus::Eventful),
            (json!({"status": "uneventful"}), RunStatus::Uneventful),
            (
                json!({"status": "success", "eventful": true}),
                RunStatus::Eventful,
            ),
            (
                json!({"status": "success", "eventful": false}),
                RunStatus::Uneventful,
            ),
            (json!({"status": "success"}), RunStatus::Uneventful),
            (json!({"status": "failed"}), RunStatus::Failed),
            (json!({"pages": 3}), RunStatus::Eventful),
            (json!({}), RunStatus::Uneventful),
            (Value::Null, RunStatus::Uneventful),
            (json!(false), RunStatus::Uneventful),
            (json!(0), RunStatus::Uneventful),
            (json!("done"), RunStatus::Eventful),
        ];
        for (result, want) in cases {
            assert_eq!(from_result(&result).0, want, "{result}");
        }
        let (s, m) = from_result(&json!({"status": "failed", "error": "bad\u{0}thing"}));
        assert_eq!(
            (s, m["error"].clone()),
            (RunStatus::Failed, json!("badthing"))
        );
    }

    #[test]
    fn succeeded_reads_the_python_repr() {
        let ev = |result: &str| json!({"type": "task-succeeded", "uuid": "u", "result": result, "timestamp": 1.5});
        let status = |e: Value| match interpret(&e).unwrap() {
            Meaning::Run(r) => r.end_status.unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            status(ev("{'status': 'uneventful'}")),
            RunStatus::Uneventful
        );
        assert_eq!(
            status(ev("{'status': 'eventful', 'snap': 'trunc...")),
            RunStatus::Eventful
        );
        assert_eq!(status(ev("None")), RunStatus::Uneventful);
        assert_eq!(status(ev("False")), RunStatus::Uneventful);
        assert_eq!(status(ev("''")), RunStatus::Uneventful);
        assert_eq!(status(ev("[1]")), RunStatus::Eventful);
    }

    #[test]
    fn visit_results_are_read_from_task_succeeded_only() {
        let id = ids::visit_id(2, 77, 1_795_723_864_323);
        let ev = |kind: &str, result: &str| json!({"type": kind, "uuid": id, "result": result, "timestamp": 1_795_723_900.5});
        let snp = "0123456789abcdef0123456789abcdef01234567";
        let Meaning::Visit(v) = interpret(&ev(
            "task-succeeded",
            &format!("{{'status': 'uneventful', 'snapshot_id': '{snp}'}}"),
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!((v.visit_type_index, v.origin_id), (2, 77));
        assert_eq!(v.status, VisitStatus::Uneventful);
        assert_eq!(
            v.snapshot.as_deref().map(|s| s[..2].to_vec()),
            Some(vec![1, 0x23])
        );
        assert_eq!(v.date.unwrap().timestamp_micros(), 1_795_723_900_500_000);
        assert_eq!(
            interpret(&ev("task-result", "x")).unwrap(),
            Meaning::Ignored
        );
        assert_eq!(
            interpret(&ev("task-started", "")).unwrap(),
            Meaning::Ignored
        );
        let Meaning::Visit(f) = interpret(&ev("task-failed", "")).unwrap() else {
            panic!()
        };
        assert_eq!((f.status, f.snapshot), (VisitStatus::Failed, None));
        let cases = [
            (json!({"status": "not_found"}), VisitStatus::NotFound, false),
            (json!({"status": "failed"}), VisitStatus::Failed, false),
            (
                json!({"status": "eventful", "snapshot_id": snp}),
                VisitStatus::Eventful,
                true,
            ),
            (
                json!({"status": "eventful", "snapshot_id": "xyz"}),
                VisitStatus::Eventful,
                false,
            ),
            (
                json!({"status": "success", "eventful": false}),
                VisitStatus::Uneventful,
                false,
            ),
            (
                json!({"status": "eventful", "snapshot_id": format!("swh:1:snp:{snp}")}),
                VisitStatus::Eventful,
                true,
            ),
        ];
        for (result, status, has_snapshot) in cases {
            let (s, snap) = visit_result(&result);
            assert_eq!((s, snap.is_some()), (status, has_snapshot), "{result}");
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &b"not json"[..],
            b"{}",
            b"{\"body\": 3}",
            b"{\"body\": \"!!\", \"properties\": {\"body_encoding\": \"base64\"}}",
            b"{\"body\": \"42\"}",
        ] {
            assert!(
                decode_payload(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(interpret(&json!({"uuid": "x"})).is_err());
        assert!(interpret(&json!({"type": "task-started"})).is_err());
        assert!(
            interpret(&json!({"type": "task-started", "uuid": "u", "timestamp": "soon"})).is_err()
        );
        assert_eq!(
            interpret(&json!({"type": "worker-heartbeat"})).unwrap(),
            Meaning::Ignored
        );
    }
}
