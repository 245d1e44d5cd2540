//! Ids that name their task type, and backend ids that name their run.
//!
//! Each task type gets a small index when it is created. Task and run ids are
//! `type_index * 2^40 + seq`, where `seq` counts per type, so an id alone says which type (and
//! so which Redis hash slot) holds it; no global id index is needed. Ids stay below 2^53 so
//! that Lua (whose numbers are doubles) handles them exactly.
//!
//! A run created by the runner gets a version-8 UUID as its Celery task id (`backend_id`):
//! `MMMMMMMM-MMMM-8CCC-8RRR-RRRRRRRRRRRR`, with `M` the scheduling time in milliseconds (48
//! bits), `C` the constant [`BACKEND_ID_MAGIC`] and `R` the run id (60 bits). The listener thus
//! finds a run from the id a Celery event carries without any lookup. Lua builds the same string
//! in `lua/includes/run.lua`.
//!
//! A visit the recurrent visit runner sends gets `MMMMMMMM-MMMM-8CCC-8VVV-OOOOOOOOOOOO`, with
//! `C` the constant [`VISIT_ID_MAGIC`], `V` the visit type's index (12 bits) and `O` the
//! origin's id within its visit type (48 bits): the listener applies a visit's result to the
//! origin's stats from the id alone. `lua/send_visits.lua` builds it.

/// Bits of an id that hold the per-type sequence number.
pub const SEQ_BITS: u32 = 40;
const SEQ_SPAN: i64 = 1 << SEQ_BITS;
/// Largest task-type index: keeps ids below 2^53.
pub const MAX_TYPE_INDEX: u32 = (1 << 13) - 1;
/// The 12 bits that mark a backend id as one of ours.
pub const BACKEND_ID_MAGIC: u16 = 0x5c8;

/// The 12 bits that mark a Celery task id as a visit the visit runner sent.
pub const VISIT_ID_MAGIC: u16 = 0x5c9;
/// Largest visit-type index (12 bits in a visit id).
pub const MAX_VISIT_TYPE_INDEX: u32 = (1 << 12) - 1;

/// Composes an id from a task-type index and a per-type sequence number.
pub fn compose(type_index: u32, seq: u64) -> i64 {
    (type_index as i64) * SEQ_SPAN + seq as i64
}

/// Splits an id into (task-type index, per-type sequence number); `None` if it cannot be ours.
pub fn split(id: i64) -> Option<(u32, u64)> {
    if id <= 0 || id >= (MAX_TYPE_INDEX as i64 + 1) * SEQ_SPAN {
        return None;
    }
    let index = (id / SEQ_SPAN) as u32;
    let seq = (id % SEQ_SPAN) as u64;
    (index > 0 && seq > 0).then_some((index, seq))
}

/// The backend id the runner gives a run it schedules at `scheduled_ms`.
pub fn backend_id(run_id: i64, scheduled_ms: i64) -> String {
    let ms = scheduled_ms as u64 & 0xffff_ffff_ffff;
    let run = run_id as u64;
    format!(
        "{:08x}-{:04x}-8{:03x}-8{:03x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        BACKEND_ID_MAGIC,
        run >> 48,
        run & 0xffff_ffff_ffff
    )
}

/// The run id and scheduling time (ms) inside a backend id made by [`backend_id`], if it is one.
pub fn parse_backend_id(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex = |r: std::ops::Range<usize>| u64::from_str_radix(s.get(r)?, 16).ok();
    let ms = hex(0..8)? << 16 | hex(9..13)?;
    if b[14] != b'8' || hex(15..18)? != BACKEND_ID_MAGIC as u64 || b[19] != b'8' {
        return None;
    }
    let run = hex(20..23)? << 48 | hex(24..36)?;
    let run = i64::try_from(run).ok()?;
    split(run)?;
    Some((run, ms as i64))
}

/// The Celery task id of a visit of origin `origin_id` of visit type `visit_type_index`, sent
/// at `sent_ms`.
pub fn visit_id(visit_type_index: u32, origin_id: i64, sent_ms: i64) -> String {
    let ms = sent_ms as u64 & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-8{:03x}-8{:03x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        VISIT_ID_MAGIC,
        visit_type_index & MAX_VISIT_TYPE_INDEX,
        origin_id as u64 & 0xffff_ffff_ffff
    )
}

/// The (visit-type index, origin id, sending time in ms) inside a visit id made by
/// [`visit_id`], if it is one.
pub fn parse_visit_id(s: &str) -> Option<(u32, i64, i64)> {
    let b = s.as_bytes();
    if b.len() != 36
        || b.iter().enumerate().any(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c != b'-'
            } else {
                !c.is_ascii_hexdigit()
            }
        })
    {
        return None;
    }
    let hex = |r: std::ops::Range<usize>| u64::from_str_radix(s.get(r)?, 16).ok();
    let ms = hex(0..8)? << 16 | hex(9..13)?;
    if b[14] != b'8' || hex(15..18)? != VISIT_ID_MAGIC as u64 || b[19] != b'8' {
        return None;
    }
    let vt = hex(20..23)? as u32;
    let origin = hex(24..36)? as i64;
    (vt > 0 && origin > 0).then_some((vt, origin, ms as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_stay_exact_in_doubles() {
        for (idx, seq) in [(1, 1), (42, 123_456_789), (MAX_TYPE_INDEX, (1 << 40) - 1)] {
            let id = compose(idx, seq);
            assert!(id < 1 << 53);
            assert_eq!(split(id), Some((idx, seq)));
        }
        assert_eq!(split(0), None);
        assert_eq!(split(-5), None);
        assert_eq!(split(1 << 53), None);
        assert_eq!(split(compose(3, 0)), None);
    }

    #[test]
    fn backend_ids_are_v8_uuids_that_carry_the_run() {
        let run = compose(7, 1_000_001);
        let id = backend_id(run, 1_795_723_864_323);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version nibble");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "RFC variant");
        assert_eq!(parse_backend_id(&id), Some((run, 1_795_723_864_323)));
        assert_eq!(
            parse_backend_id("11111111-1111-1111-1111-111111111111"),
            None
        );
        assert_eq!(parse_backend_id("not-a-uuid"), None);
        assert_eq!(
            parse_backend_id(&id.to_uppercase()),
            Some((run, 1_795_723_864_323))
        );
    }

    #[test]
    fn visit_ids_carry_the_visit_type_and_the_origin() {
        let id = visit_id(4095, (1 << 48) - 1, 1_795_723_864_323);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version nibble");
        assert_eq!(
            parse_visit_id(&id),
            Some((4095, (1 << 48) - 1, 1_795_723_864_323))
        );
        let id = visit_id(3, 42, 7);
        assert_eq!(id, "00000000-0007-85c9-8003-00000000002a");
        assert_eq!(parse_visit_id(&id), Some((3, 42, 7)));
        // a run's backend id is not a visit, nor the other way round
        let run = backend_id(compose(3, 42), 7);
        assert_eq!(parse_visit_id(&run), None);
        assert_eq!(parse_backend_id(&id), None);
        assert_eq!(parse_visit_id("00000000-0007-85c9-8000-00000000002a"), None);
        assert_eq!(parse_visit_id("00000000-0007-85c9-8003-+0000000002a"), None);
    }
}
