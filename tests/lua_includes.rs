//! The scripts of `lua/` with their includes, on a real server: every one compiles (Lua allows
//! a chunk 200 locals, and the includes add theirs), and `bitfield_set` (lua/includes/origin.lua),
//! which writes runs of consecutive ids as byte ranges, leaves the same bytes and returns the
//! same old values as one `BITFIELD SET` an id, in order; and `with_status` (lua/includes/task.lua)
//! writes what decoding, setting and encoding a task state write.

mod common;

use proptest::prelude::*;
use swh_scheduler::store::scripts::{resolve_includes, scripts};

use common::RedisServer;

/// Applies the ids and values with `bitfield_set` to KEYS[1] and one BITFIELD SET each to
/// KEYS[2]; returns both lists of old values and both strings.
const DRIVER: &str = "--@include origin
local width = tonumber(ARGV[1])
local ids, vals = {}, {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = tonumber(ARGV[i])
  vals[#vals + 1] = tonumber(ARGV[i + 1])
end
local olds = bitfield_set(KEYS[1], width, ids, vals)
local ref = {}
for i, id in ipairs(ids) do
  ref[i] = redis.call('BITFIELD', KEYS[2], 'SET', 'u' .. width, id * width, vals[i])[1]
end
return {olds, ref, redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or ''}
";

/// Ids as a lister's batches and the grabs give them: runs of consecutive ids (the new origins
/// of a batch, a grab in id order) between scattered ones and repeats.
fn ids_and_values(width: u32) -> impl Strategy<Value = Vec<(u64, u64)>> {
    let max = if width == 1 { 1u64 } else { u32::MAX as u64 };
    let value = prop_oneof![Just(0u64), Just(1u64), 0..=max].prop_map(move |v| v.min(max));
    let segment = prop_oneof![
        // a run: start, length, one value for all or a value each
        (
            0u64..400,
            0usize..120,
            value.clone(),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(move |(start, len, v, same, seed)| {
                (0..len as u64)
                    .map(|k| {
                        let each = seed.wrapping_mul(k + 1).wrapping_add(k) % (max + 1);
                        (start + k, if same { v } else { each })
                    })
                    .collect::<Vec<_>>()
            }),
        // a single id
        (0u64..600, value).prop_map(|(id, v)| vec![(id, v)]),
    ];
    prop::collection::vec(segment, 0..8).prop_map(|s| s.concat())
}

fn check(con: &mut redis::Connection, width: u32, before: &[(u64, u64)], ops: &[(u64, u64)]) {
    let script = redis::Script::new(&resolve_includes("driver", DRIVER));
    let _: () = redis::cmd("DEL").arg("a").arg("b").query(con).unwrap();
    // the same state to start from on both keys
    for &(id, v) in before {
        let _: Vec<i64> = redis::cmd("BITFIELD")
            .arg("a")
            .arg("SET")
            .arg(format!("u{width}"))
            .arg(id * width as u64)
            .arg(v)
            .query(con)
            .unwrap();
    }
    let _: () = redis::cmd("COPY").arg("a").arg("b").query(con).unwrap();
    let mut inv = script.key("a");
    inv.key("b").arg(width);
    for &(id, v) in ops {
        inv.arg(id).arg(v);
    }
    let (olds, reference, got, want): (Vec<u64>, Vec<u64>, Vec<u8>, Vec<u8>) =
        inv.invoke(con).unwrap();
    assert_eq!(olds, reference, "old values, width {width}");
    assert_eq!(got, want, "bytes, width {width}");
}

#[test]
fn bitfield_set_writes_what_one_bitfield_set_an_id_writes() {
    let server = RedisServer::start();
    let con = std::cell::RefCell::new(server.client());
    let cases = (
        ids_and_values(1),
        ids_and_values(1),
        ids_and_values(32),
        ids_and_values(32),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&cases, |(before1, ops1, before32, ops32)| {
            let mut con = con.borrow_mut();
            check(&mut con, 1, &before1, &ops1);
            check(&mut con, 32, &before32, &ops32);
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_script_compiles() {
    let server = RedisServer::start();
    let mut con = server.client();
    for s in scripts() {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(&s.source)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("{e}\n{}", &s.source[..s.source.len().min(300)]));
        assert_eq!(sha, s.sha);
    }
}

#[test]
fn long_runs_at_any_alignment() {
    let server = RedisServer::start();
    let mut con = server.client();
    for start in 0..9u64 {
        for len in [31usize, 32, 33, 64, 100, 1000, 2500] {
            let ops: Vec<(u64, u64)> = (0..len as u64).map(|k| (start + k, 1)).collect();
            check(&mut con, 1, &[(start + 3, 1), (start + 40, 0)], &ops);
            let zeros: Vec<(u64, u64)> = ops.iter().map(|&(id, _)| (id, 0)).collect();
            check(&mut con, 1, &ops, &zeros);
            let wide: Vec<(u64, u64)> = (0..len as u64)
                .map(|k| (start + k, (k * 2_654_435_761) % (1 << 32)))
                .collect();
            check(&mut con, 32, &[(start + 5, 7)], &wide);
        }
    }
}

/// Sets a status on a task state record both ways: `with_status` (lua/includes/task.lua),
/// which replaces the flags byte in place, and decode, set, encode; returns both records and
/// both old statuses.
const STATUS_DRIVER: &str = "--@include task
local runs = {}
for i = 7, #ARGV do runs[#runs + 1] = tonumber(ARGV[i]) end
local interval = ARGV[2] ~= '' and tonumber(ARGV[2]) or nil
local raw = cmsgpack.pack(tonumber(ARGV[1]), interval, tonumber(ARGV[3]), tonumber(ARGV[4]),
  runs, tonumber(ARGV[5]))
local status = tonumber(ARGV[6])
local got, was = with_status(raw, status)
local t = decode_task(raw)
local old = t.status
t.status = status
return {got, encode_task(t), was, old}
";

#[test]
fn with_status_writes_what_decoding_and_encoding_write() {
    let server = RedisServer::start();
    let con = std::cell::RefCell::new(server.client());
    let script = redis::Script::new(&resolve_includes("driver", STATUS_DRIVER));
    let next_run = prop_oneof![
        Just(0i64),
        0i64..200,
        any::<u32>().prop_map(i64::from),
        0i64..(1i64 << 52)
    ];
    let interval = prop_oneof![Just(None), (0i64..100_000_000).prop_map(Some)];
    let cases = (
        next_run.clone(),
        interval,
        0u32..64,
        0i64..100,
        prop::collection::vec(0i64..(1i64 << 40), 0..12),
        next_run,
        0u32..4,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(128));
    runner
        .run(
            &cases,
            |(next_run, interval, flags, retries, runs, created, status)| {
                let mut con = con.borrow_mut();
                let mut inv = script.prepare_invoke();
                inv.arg(next_run)
                    .arg(interval.map(|i| i.to_string()).unwrap_or_default())
                    .arg(flags)
                    .arg(retries)
                    .arg(created)
                    .arg(status);
                for r in &runs {
                    inv.arg(r);
                }
                let (got, want, was, old): (Vec<u8>, Vec<u8>, i64, i64) =
                    inv.invoke(&mut con).unwrap();
                prop_assert_eq!(got, want);
                prop_assert_eq!(was, old);
                prop_assert_eq!(was, i64::from(flags % 4));
                Ok(())
            },
        )
        .unwrap();
}
