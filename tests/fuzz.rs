//! Property tests of everything that reads outside input: the RPC body decoders (msgpack,
//! JSON), the Celery event decoder and interpreter, the Python-repr reader, and every RPC
//! endpoint on arbitrary keyword arguments against a real store. The property is the
//! standard's: any input gets an answer or a clear error, never a panic, and an error never
//! comes with a write. Bounded case counts keep it within seconds in CI.

mod common;

use proptest::prelude::*;
use serde_json::json;
use swh_scheduler::api::{self, ENDPOINTS};
use swh_scheduler::celery::{events, pyrepr};
use swh_scheduler::rpc::codec::{self, Wire};

/// Arbitrary wire values, nested a few levels.
fn wire() -> impl Strategy<Value = Wire> {
    let leaf = prop_oneof![
        Just(Wire::Nil),
        any::<bool>().prop_map(Wire::Bool),
        any::<i64>().prop_map(|i| Wire::Int(i.into())),
        any::<u8>().prop_map(|i| Wire::Int(i.into())),
        any::<f64>().prop_map(Wire::Float),
        "[a-z_]{0,12}".prop_map(Wire::Str),
        ".{0,40}".prop_map(Wire::Str),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Wire::Bytes),
        (-(1i64 << 50)..(1i64 << 50)).prop_map(|us| {
            Wire::DateTime(chrono::DateTime::from_timestamp_micros(us).unwrap())
        }),
        "[0-9a-f-]{36}".prop_map(Wire::Uuid),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Wire::Array),
            prop::collection::vec(("[a-z_]{1,16}".prop_map(Wire::Str), inner), 0..6)
                .prop_map(Wire::Map),
        ]
    })
}

/// Keyword arguments: a map of the names an endpoint knows (and a few others) to values.
fn kwargs() -> impl Strategy<Value = Wire> {
    let names = prop::sample::select(vec![
        "task_type",
        "task_type_name",
        "tasks",
        "policy",
        "task_ids",
        "status",
        "next_run",
        "timestamp",
        "num_tasks",
        "task_id",
        "backend_id",
        "metadata",
        "task_runs",
        "after_ts",
        "before_ts",
        "limit",
        "page_token",
        "name",
        "instance_name",
        "lister",
        "listed_origins",
        "lister_id",
        "url",
        "visit_type",
        "count",
        "origin_visit_stats",
        "ids",
        "dry_run",
        "scheduled_cooldown",
        "lister_uuid",
        "result",
        "priority",
        "other",
    ]);
    prop::collection::vec((names.prop_map(Wire::str), wire()), 0..5).prop_map(Wire::Map)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_body_decoders_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::from_msgpack(&body);
        let _ = codec::from_json(&body);
    }

    #[test]
    fn encoded_values_decode_back(w in wire()) {
        // whatever we write, we read (msgpack keeps every kind)
        let bytes = codec::to_msgpack(&w);
        prop_assert!(codec::from_msgpack(&bytes).is_ok());
        let _ = codec::from_json(codec::to_json(&w).as_bytes());
    }

    #[test]
    fn the_event_decoder_never_panics(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(evs) = events::decode_payload(&payload) {
            for e in evs {
                let _ = events::interpret_event(&e);
            }
        }
    }

    #[test]
    fn events_of_any_shape_are_interpreted_or_refused(
        kind in prop::sample::select(vec!["task-started", "task-succeeded", "task-failed",
            "task-result", "task-received", "worker-heartbeat", "x"]),
        ts in prop_oneof![Just(json!(1.7e9)), Just(json!(1e12)), Just(json!(-1e12)),
            Just(json!("soon")), Just(json!(null)), Just(json!(f64::MAX))],
        result in ".{0,60}",
    ) {
        let e = json!({"type": kind, "uuid": "u", "timestamp": ts, "result": result,
            "exception": result, "traceback": result});
        let _ = events::interpret(&e);
    }

    #[test]
    fn the_python_repr_reader_never_panics(text in ".{0,200}") {
        let _ = pyrepr::parse(&text);
        let _ = pyrepr::scrape_status(&text);
    }
}

/// Every endpoint, on arbitrary keyword arguments, against a real store: an answer or a clear
/// error (400/404), never a panic, and never a 500 (which would mean an unhandled case).
#[test]
fn every_endpoint_answers_arbitrary_arguments_without_a_panic() {
    let server = common::RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(server.store());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    for e in ENDPOINTS {
        // the endpoint's own keyword arguments, with arbitrary values, and sometimes others
        let args = if e.params.is_empty() {
            kwargs().boxed()
        } else {
            let own = prop::collection::vec(
                (
                    prop::sample::select(e.params.to_vec()).prop_map(Wire::str),
                    wire(),
                ),
                0..=e.params.len(),
            )
            .prop_map(Wire::Map);
            prop_oneof![4 => own, 1 => kwargs()].boxed()
        };
        runner
            .run(&args, |args| {
                let r = rt.block_on(api::call(&store, e.path, args.clone()));
                if let Err(err) = &r {
                    prop_assert!(
                        err.status < 500,
                        "{}: {} on {}",
                        e.path,
                        err.message,
                        codec::to_json(&args)
                    );
                }
                Ok(())
            })
            .unwrap();
    }
}
