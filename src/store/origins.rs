//! The origin-visit scheduler on Redis: listed origins, visit stats, `grab_next_visits` and
//! the metrics. Each visit type's data shares one hash slot (`{vt:<visit_type>}`, see
//! `lua/includes/origin.lua`), so recording a batch, upserting stats and grabbing are one
//! script per visit type; listers live in `{global}`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use redis::{AsyncCommands, Value};
use serde_json::Value as Json;

use super::keys::VisitTypeKeys;
use super::origin_records::{
    ListingEntry, ORIGIN_BUCKET, StatsRecord, decode_listings, decode_stats, in_index_order,
};
use super::scripts::{Call, ScriptName};
use super::{BrokerLink, OutboxKeys, Store, array, as_bytes, opt_arg, server_now};
use crate::error::{Error, Result};
use crate::model::{
    GrabOptions, ListedOrigin, ListedOriginPage, MAX_BATCH, MAX_EXTRA_LOADER_ARGUMENTS, MAX_URL,
    OriginVisitStats, SchedulerMetrics, VisitOutcome, VisitPolicy, VisitRules, VisitStatus,
    check_time, from_micros, ids, to_micros, validate_origin_text,
};

/// Listings or stats one script call carries at most, so that no call holds Redis long.
const ORIGINS_PER_CALL: usize = 1000;
// record_origins numbers a call's listings in two bytes
const _: () = assert!(ORIGINS_PER_CALL <= 1 << 16);
/// Chunks of waiting origins one sweep step reads (see `sweep_lost_visits`).
const SWEEP_CHUNKS: usize = 20;
/// Longest visit type accepted, in bytes.
const MAX_VISIT_TYPE: usize = 256;

/// Lister index <-> lister id, as read from Redis for one call.
struct ListerIndex {
    by_id: HashMap<String, u16>,
    by_idx: HashMap<u16, String>,
}

impl ListerIndex {
    /// From the fields of the lister-index hash (index -> lister id).
    fn from_fields(all: HashMap<String, String>) -> Self {
        let by_idx: HashMap<u16, String> = all
            .into_iter()
            .filter_map(|(i, id)| Some((i.parse().ok()?, id)))
            .collect();
        let by_id = by_idx.iter().map(|(i, id)| (id.clone(), *i)).collect();
        ListerIndex { by_id, by_idx }
    }
}

impl Store {
    fn vt_keys(&self, visit_type: &str) -> VisitTypeKeys {
        VisitTypeKeys::new(&self.config().prefix, visit_type)
    }

    async fn lister_index(&self) -> Result<ListerIndex> {
        let mut con = self.con().await?;
        let all: HashMap<String, String> = con.hgetall(&self.global().lister_idx).await?;
        Ok(ListerIndex::from_fields(all))
    }

    /// Records listings (upsert by lister, url and visit type) and returns them as stored.
    /// Duplicates in one batch are merged, the last one winning; the whole batch is checked
    /// before anything is written.
    pub async fn record_listed_origins(
        &self,
        listed_origins: &[ListedOrigin],
    ) -> Result<Vec<ListedOrigin>> {
        if listed_origins.len() > MAX_BATCH {
            return Err(Error::invalid(
                "listed_origins",
                format!("{} origins", listed_origins.len()),
                format!("at most {MAX_BATCH} in one call; send pages"),
            ));
        }
        let index = self.lister_index().await?;
        // check everything, merge duplicates (last wins, at the place of the first), group by
        // visit type
        let mut kept: Vec<(u16, ListedOrigin)> = Vec::with_capacity(listed_origins.len());
        let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for (i, o) in listed_origins.iter().enumerate() {
            let f = |k: &str| format!("listed_origins[{i}].{k}");
            validate_origin_text(&f("url"), &o.url, MAX_URL)?;
            validate_origin_text(&f("visit_type"), &o.visit_type, MAX_VISIT_TYPE)?;
            let lidx = index
                .by_id
                .get(&o.lister_id)
                .ok_or_else(|| Error::invalid(&f("lister_id"), &o.lister_id, "no such lister"))?;
            if let Some(t) = o.last_update {
                check_time(&f("last_update"), t)?;
            }
            let key = (o.lister_id.as_str(), o.url.as_str(), o.visit_type.as_str());
            match seen.get(&key) {
                Some(&at) => kept[at] = (*lidx, o.clone()),
                None => {
                    seen.insert(key, kept.len());
                    kept.push((*lidx, o.clone()));
                }
            }
        }
        let mut by_type: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut extras = Vec::with_capacity(kept.len());
        for (at, (_, o)) in kept.iter().enumerate() {
            let extra = Json::Object(o.extra_loader_arguments.clone()).to_string();
            if extra.len() > MAX_EXTRA_LOADER_ARGUMENTS {
                let i = listed_origins
                    .iter()
                    .position(|x| x.url == o.url && x.lister_id == o.lister_id)
                    .unwrap_or(at);
                return Err(Error::invalid(
                    &format!("listed_origins[{i}].extra_loader_arguments"),
                    format!("{} bytes of JSON", extra.len()),
                    format!("at most {MAX_EXTRA_LOADER_ARGUMENTS}"),
                ));
            }
            extras.push(extra);
            by_type.entry(o.visit_type.as_str()).or_default().push(at);
        }
        let mut con = self.con().await?;
        let now = server_now(&mut con).await?;
        // the visit types each lister has, for get_listed_origins and update_metrics
        let g = self.global();
        let mut pipe = redis::pipe();
        for (vt, items) in &by_type {
            pipe.sadd(&g.visit_types, *vt).ignore();
            for lidx in items.iter().map(|&at| kept[at].0).collect::<HashSet<_>>() {
                pipe.sadd(format!("{}{lidx}", g.lister_visit_types), *vt)
                    .ignore();
            }
        }
        pipe.query_async::<()>(&mut con).await?;
        let mut first_seen: Vec<i64> = vec![now; kept.len()];
        for (vt, items) in &by_type {
            let keys = self.vt_keys(vt);
            for chunk in items.chunks(ORIGINS_PER_CALL) {
                // sent in the url index's order, with the caller's order beside
                let sent = in_index_order(chunk.iter().map(|&at| kept[at].1.url.as_str()));
                let mut order = vec![0u8; 2 * chunk.len()];
                for (p, (r, _)) in sent.iter().enumerate() {
                    order[2 * r..2 * r + 2].copy_from_slice(&(p as u16).to_be_bytes());
                }
                let mut call = Call::new(ScriptName::RecordOrigins, &[&keys.meta]);
                call.arg(now).arg(order);
                for (r, hash) in &sent {
                    let at = chunk[*r];
                    let (lidx, o) = &kept[at];
                    let entry = ListingEntry {
                        lister_index: *lidx,
                        enabled: o.enabled,
                        last_update: o.last_update.map(to_micros),
                        first_seen: now,
                        last_seen: now,
                        extra: extras[at].clone(),
                    };
                    call.arg(&o.url).arg(&hash[..]).arg(entry.encode());
                }
                let reply = array(call.run(&mut con).await?)?;
                for ((r, _), v) in sent.iter().zip(&reply) {
                    first_seen[chunk[*r]] = super::as_int(v)
                        .ok_or_else(|| Error::Other("bad first_seen from record_origins".into()))?;
                }
            }
        }
        Ok(kept
            .into_iter()
            .zip(first_seen)
            .map(|((_, o), first)| ListedOrigin {
                first_seen: Some(from_micros(first)),
                last_seen: Some(from_micros(now)),
                ..o
            })
            .collect())
    }

    /// Listings by lister then url, `limit` at a time from `page_token` on; with `url`, only
    /// that url's. The next page's token is given when this page is full (as the original,
    /// so a last full page is followed by an empty one); a page never ends between two visit
    /// types of one url, so that none is skipped.
    pub async fn get_listed_origins(
        &self,
        lister_id: Option<&str>,
        url: Option<&str>,
        limit: usize,
        page_token: Option<(String, String)>,
    ) -> Result<ListedOriginPage> {
        let limit = limit.max(1);
        let index = self.lister_index().await?;
        let mut listers: Vec<(&String, u16)> = match lister_id {
            Some(id) => match index.by_id.get_key_value(id) {
                Some((id, lidx)) => vec![(id, *lidx)],
                None => return Ok(ListedOriginPage::default()),
            },
            None => index.by_id.iter().map(|(id, lidx)| (id, *lidx)).collect(),
        };
        listers.sort();
        let mut con = self.con().await?;
        let mut page: Vec<ListedOrigin> = Vec::new();
        let mut more = false;
        for (id, lidx) in listers {
            let after = match &page_token {
                Some((tid, _)) if id < tid => continue,
                Some((tid, turl)) if id == tid => turl.clone(),
                _ => String::new(),
            };
            if url.is_some_and(|u| !after.is_empty() && u.as_bytes() <= after.as_bytes()) {
                continue;
            }
            let mut types: Vec<String> = con
                .smembers(format!("{}{lidx}", self.global().lister_visit_types))
                .await?;
            types.sort();
            // one more than needed from each visit type tells whether more follow
            let want = limit + 1 - page.len();
            let mut rows: Vec<ListedOrigin> = Vec::new();
            for vt in &types {
                let reply = Call::new(ScriptName::ListedOrigins, &[&self.vt_keys(vt).meta])
                    .arg(lidx)
                    .arg(&after)
                    .arg(want)
                    .arg(url.unwrap_or(""))
                    .run(&mut con)
                    .await?;
                for r in array(reply)?.chunks(2) {
                    let [u, raw] = r else {
                        return Err(Error::Other("listed_origins returned a partial row".into()));
                    };
                    let entries = decode_listings(as_bytes(raw))?;
                    if let Some(e) = entries.into_iter().find(|e| e.lister_index == lidx) {
                        rows.push(listed_origin(id, text(u), vt, e)?);
                    }
                }
            }
            rows.sort_by(|a, b| (&a.url, &a.visit_type).cmp(&(&b.url, &b.visit_type)));
            for r in rows {
                if page.len() == limit {
                    more = true;
                    break;
                }
                page.push(r);
            }
            if more {
                break;
            }
        }
        let full = page.len() == limit;
        if more && let Some(last) = page.last().cloned() {
            // end at a url boundary: the rest of the last url's visit types come next time
            let mut cut = page.len();
            while cut > 0
                && page[cut - 1].url == last.url
                && page[cut - 1].lister_id == last.lister_id
            {
                cut -= 1;
            }
            if cut > 0 && cut < page.len() {
                page.truncate(cut);
            }
        }
        let next_page_token = (full || more)
            .then(|| page.last().map(|o| (o.lister_id.clone(), o.url.clone())))
            .flatten();
        Ok(ListedOriginPage {
            results: page,
            next_page_token,
        })
    }

    /// Chooses up to `count` origins of `visit_type` to visit by `policy`, and marks them
    /// scheduled at `options.timestamp` (see `lua/grab_next_visits.lua`).
    pub async fn grab_next_visits(
        &self,
        visit_type: &str,
        count: usize,
        policy: &str,
        options: &GrabOptions,
    ) -> Result<Vec<ListedOrigin>> {
        let policy: VisitPolicy = policy.parse()?;
        validate_origin_text("visit_type", visit_type, MAX_VISIT_TYPE)?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let count = count.min(MAX_BATCH);
        let index = self.lister_index().await?;
        let allowed = self.allowed_listers(options, &index).await?;
        if allowed.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let mut con = self.con().await?;
        let ts = match options.timestamp {
            Some(t) => {
                check_time("timestamp", t)?;
                to_micros(t)
            }
            None => server_now(&mut con).await?,
        };
        let us = |d: Option<Duration>, field: &str| -> Result<String> {
            match d {
                None => Ok(String::new()),
                Some(d) if d < Duration::zero() => {
                    Err(Error::invalid(field, d, "must not be negative"))
                }
                Some(d) => d
                    .num_microseconds()
                    .map(|v| v.to_string())
                    .ok_or_else(|| Error::invalid(field, d, "is too large")),
            }
        };
        let scheduled = us(
            Some(options.scheduled_cooldown.unwrap_or(Duration::days(7))),
            "scheduled_cooldown",
        )?;
        let reply = Call::new(
            ScriptName::GrabNextVisits,
            &[&self.vt_keys(visit_type).meta],
        )
        .arg(ts)
        .arg(count)
        .arg(policy_code(policy))
        .arg(scheduled)
        .arg(us(options.absolute_cooldown, "absolute_cooldown")?)
        .arg(us(options.failed_cooldown, "failed_cooldown")?)
        .arg(us(options.not_found_cooldown, "not_found_cooldown")?)
        .arg(
            allowed
                .map(|a| a.iter().map(u16::to_string).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        )
        .arg(if options.dry_run { "1" } else { "0" })
        .run(&mut con)
        .await?;
        let chosen: Vec<(i64, i64)> = array(reply)?
            .chunks(2)
            .map(|r| match r {
                [id, lidx] => Ok((
                    super::as_int(id).unwrap_or(0),
                    super::as_int(lidx).unwrap_or(0),
                )),
                _ => Err(Error::Other(
                    "grab_next_visits returned a partial row".into(),
                )),
            })
            .collect::<Result<_>>()?;
        self.chosen_listings(&mut con, visit_type, &chosen, &index)
            .await
    }

    /// The listings of origins a grab chose (id, lister index or 0 for the first enabled
    /// listing), read from their records in one pipeline: the grab marks them and returns
    /// ids only, so that Lua does not handle their records.
    async fn chosen_listings(
        &self,
        con: &mut super::Con,
        visit_type: &str,
        chosen: &[(i64, i64)],
        index: &ListerIndex,
    ) -> Result<Vec<ListedOrigin>> {
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.vt_keys(visit_type).base;
        // One command per record hash: HMGET of the url and listing fields of the chosen, or
        // HGETALL when they are half of its origins or more (a grab mostly takes runs of ids):
        // fields of a small hash are found by a linear scan each, so reading the whole is
        // cheaper than looking up most of it.
        let mut pipe = redis::pipe();
        let mut runs: Vec<(usize, usize, bool)> = Vec::new();
        let mut i = 0;
        while i < chosen.len() {
            let bucket = chosen[i].0 / ORIGIN_BUCKET;
            let mut j = i;
            while j < chosen.len() && chosen[j].0 / ORIGIN_BUCKET == bucket {
                j += 1;
            }
            let key = format!("{base}:o:{bucket}");
            let whole = 2 * (j - i) >= ORIGIN_BUCKET as usize;
            if whole {
                pipe.hgetall(key);
            } else {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(key);
                for c in &chosen[i..j] {
                    let f = (c.0 % ORIGIN_BUCKET) * 3;
                    cmd.arg(f).arg(f + 1);
                }
                pipe.add_command(cmd);
            }
            runs.push((i, j, whole));
            i = j;
        }
        let replies: Vec<redis::Value> = pipe.query_async(con).await?;
        let mut out = Vec::with_capacity(chosen.len());
        for ((i, j, whole), reply) in runs.into_iter().zip(replies) {
            let fields: Vec<Option<Vec<u8>>> = if whole {
                let mut all: HashMap<i64, Vec<u8>> = parse_reply(reply)?;
                chosen[i..j]
                    .iter()
                    .flat_map(|c| {
                        let f = (c.0 % ORIGIN_BUCKET) * 3;
                        [all.remove(&f), all.remove(&(f + 1))]
                    })
                    .collect()
            } else {
                parse_reply(reply)?
            };
            for (k, &(_, lidx)) in chosen[i..j].iter().enumerate() {
                let (Some(url), Some(raw)) = (&fields[2 * k], &fields[2 * k + 1]) else {
                    continue; // (gone since: nothing to return)
                };
                let entries = decode_listings(raw)?;
                let pick = entries
                    .iter()
                    .position(|e| {
                        if lidx == 0 {
                            e.enabled
                        } else {
                            i64::from(e.lister_index) == lidx
                        }
                    })
                    .unwrap_or(0);
                let Some(entry) = entries.into_iter().nth(pick) else {
                    continue;
                };
                let lister_id = index.by_idx.get(&entry.lister_index).ok_or_else(|| {
                    Error::Other(format!(
                        "listing of unknown lister index {}",
                        entry.lister_index
                    ))
                })?;
                out.push(listed_origin(
                    lister_id,
                    String::from_utf8_lossy(url).into_owned(),
                    visit_type,
                    entry,
                )?);
            }
        }
        Ok(out)
    }

    /// The lister indexes the grab's lister filters allow; `None` for any.
    async fn allowed_listers(
        &self,
        options: &GrabOptions,
        index: &ListerIndex,
    ) -> Result<Option<Vec<u16>>> {
        if options.lister_uuid.is_none()
            && options.lister_name.is_none()
            && options.lister_instance_name.is_none()
        {
            return Ok(None);
        }
        let listers = self.get_listers().await?;
        Ok(Some(
            listers
                .iter()
                .filter(|l| {
                    options
                        .lister_uuid
                        .as_ref()
                        .is_none_or(|u| l.id.as_ref() == Some(u))
                        && options.lister_name.as_ref().is_none_or(|n| &l.name == n)
                        && options
                            .lister_instance_name
                            .as_ref()
                            .is_none_or(|n| &l.instance_name == n)
                })
                .filter_map(|l| index.by_id.get(l.id.as_deref()?).copied())
                .collect(),
        ))
    }

    /// Records visit stats (see `lua/visit_stats_upsert.lua`). A batch that names one origin
    /// twice is refused whole, with the original's `CardinalityViolation` in the message.
    pub async fn origin_visit_stats_upsert(&self, visit_stats: &[OriginVisitStats]) -> Result<()> {
        if visit_stats.len() > MAX_BATCH {
            return Err(Error::invalid(
                "visit_stats",
                format!("{} stats", visit_stats.len()),
                format!("at most {MAX_BATCH} in one call; send pages"),
            ));
        }
        let mut by_type: BTreeMap<&str, Vec<&OriginVisitStats>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for (i, s) in visit_stats.iter().enumerate() {
            let f = |k: &str| format!("visit_stats[{i}].{k}");
            validate_origin_text(&f("url"), &s.url, MAX_URL)?;
            validate_origin_text(&f("visit_type"), &s.visit_type, MAX_VISIT_TYPE)?;
            for (k, t) in [
                ("last_eventful", s.last_eventful),
                ("last_uneventful", s.last_uneventful),
                ("last_failed", s.last_failed),
                ("last_notfound", s.last_notfound),
                ("last_scheduled", s.last_scheduled),
            ] {
                if let Some(t) = t {
                    check_time(&f(k), t)?;
                }
            }
            if !seen.insert((s.url.as_str(), s.visit_type.as_str())) {
                return Err(Error::invalid(
                    &f("url"),
                    &s.url,
                    format!(
                        "CardinalityViolation: ON CONFLICT DO UPDATE command cannot affect row \
                         a second time (the origin and visit type {:?} appear twice in the batch)",
                        s.visit_type
                    ),
                ));
            }
            by_type.entry(s.visit_type.as_str()).or_default().push(s);
        }
        let mut con = self.con().await?;
        for vt in by_type.keys() {
            let _: () = con.sadd(&self.global().visit_types, *vt).await?;
        }
        for (vt, items) in &by_type {
            let keys = self.vt_keys(vt);
            for chunk in items.chunks(ORIGINS_PER_CALL) {
                let mut call = Call::new(ScriptName::VisitStatsUpsert, &[&keys.meta]);
                let t = |t: Option<DateTime<Utc>>| opt_arg(t.map(to_micros));
                for (r, hash) in in_index_order(chunk.iter().map(|s| s.url.as_str())) {
                    let s = chunk[r];
                    call.arg(&s.url)
                        .arg(&hash[..])
                        .arg(t(s.last_eventful))
                        .arg(t(s.last_uneventful))
                        .arg(t(s.last_failed))
                        .arg(t(s.last_notfound))
                        .arg(t(s.last_scheduled))
                        .arg(s.last_snapshot.as_deref().unwrap_or(b""));
                }
                call.run(&mut con).await?;
            }
        }
        Ok(())
    }

    /// The stats of these (url, visit type) pairs that exist.
    pub async fn origin_visit_stats_get(
        &self,
        ids: &[(String, String)],
    ) -> Result<Vec<OriginVisitStats>> {
        let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (url, vt) in ids {
            by_type.entry(vt.as_str()).or_default().push(url.as_str());
        }
        let mut con = self.con().await?;
        let mut out = Vec::new();
        for (vt, urls) in by_type {
            let keys = self.vt_keys(vt);
            for chunk in urls.chunks(ORIGINS_PER_CALL) {
                let mut call = Call::new(ScriptName::VisitStatsGet, &[&keys.meta]);
                for (r, hash) in in_index_order(chunk.iter().copied()) {
                    call.arg(chunk[r]).arg(&hash[..]);
                }
                let reply = array(call.run(&mut con).await?)?;
                let start = out.len();
                for r in reply.chunks(3) {
                    let [u, raw, sc] = r else {
                        return Err(Error::Other(
                            "visit_stats_get returned a partial row".into(),
                        ));
                    };
                    let raw = as_bytes(raw);
                    let st = if raw.is_empty() {
                        StatsRecord::default()
                    } else {
                        decode_stats(raw)?
                    };
                    out.push(OriginVisitStats {
                        url: text(u),
                        visit_type: vt.to_string(),
                        last_eventful: st.last_eventful.map(from_micros),
                        last_uneventful: st.last_uneventful.map(from_micros),
                        last_failed: st.last_failed.map(from_micros),
                        last_notfound: st.last_notfound.map(from_micros),
                        last_scheduled: super::as_int(sc).map(from_micros),
                        last_snapshot: st.last_snapshot,
                    });
                }
                // in the order asked
                let place: HashMap<&str, usize> =
                    chunk.iter().enumerate().map(|(i, u)| (*u, i)).collect();
                out[start..].sort_by_key(|s| place.get(s.url.as_str()).copied());
            }
        }
        Ok(out)
    }

    /// Computes the metrics of every (lister, visit type) with listings, or of one lister's,
    /// from the counters the scripts keep (O(listers × visit types)), saves and returns them.
    pub async fn update_metrics(
        &self,
        lister_id: Option<&str>,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<Vec<SchedulerMetrics>> {
        if let Some(t) = timestamp {
            check_time("timestamp", t)?;
        }
        let mut con = self.con().await?;
        // three round trips in all: the listers, the clock and the visit types; every type's
        // counters; the saved rows
        let g = self.global();
        let (listers, (secs, us), mut types): (HashMap<String, String>, (i64, i64), Vec<String>) =
            redis::pipe()
                .hgetall(&g.lister_idx)
                .cmd("TIME")
                .smembers(&g.visit_types)
                .query_async(&mut con)
                .await?;
        let index = ListerIndex::from_fields(listers);
        let last_update = timestamp.unwrap_or_else(|| from_micros(secs * 1_000_000 + us));
        types.sort();
        let reads = types
            .iter()
            .map(|vt| redis::Cmd::hgetall(&self.vt_keys(vt).metrics))
            .collect();
        let all_counts: Vec<HashMap<String, i64>> = con.query_each(reads).await?;
        let mut out = Vec::new();
        for (vt, counts) in types.into_iter().zip(all_counts) {
            let mut by_lister: BTreeMap<&str, [i64; 4]> = BTreeMap::new();
            for (field, n) in &counts {
                let Some((lidx, c)) = field.split_once(':') else {
                    continue;
                };
                let slot = match c {
                    "k" => 0,
                    "e" => 1,
                    "n" => 2,
                    "p" => 3,
                    _ => continue,
                };
                by_lister.entry(lidx).or_default()[slot] = *n;
            }
            for (lidx, [known, enabled, never, pending]) in by_lister {
                let Some(id) = lidx.parse().ok().and_then(|i: u16| index.by_idx.get(&i)) else {
                    continue;
                };
                if known <= 0 || lister_id.is_some_and(|l| l != id) {
                    continue;
                }
                out.push(SchedulerMetrics {
                    lister_id: id.clone(),
                    visit_type: vt.clone(),
                    last_update,
                    origins_known: known,
                    origins_enabled: enabled,
                    origins_never_visited: never,
                    origins_with_pending_changes: pending,
                });
            }
        }
        if !out.is_empty() {
            let rows: Vec<(String, String)> = out
                .iter()
                .map(|m| {
                    let key = format!("{}|{}", m.lister_id, m.visit_type);
                    (key, encode_metrics(m))
                })
                .collect();
            con.hset_multiple::<_, _, _, ()>(&g.metrics, &rows).await?;
        }
        Ok(out)
    }

    /// The metrics `update_metrics` last saved, of one lister and one visit type when given.
    pub async fn get_metrics(
        &self,
        lister_id: Option<&str>,
        visit_type: Option<&str>,
    ) -> Result<Vec<SchedulerMetrics>> {
        let mut con = self.con().await?;
        let all: BTreeMap<String, String> = con.hgetall(&self.global().metrics).await?;
        let mut out = Vec::new();
        for (key, v) in all {
            let Some((id, vt)) = key.split_once('|') else {
                continue;
            };
            if lister_id.is_some_and(|l| l != id) || visit_type.is_some_and(|t| t != vt) {
                continue;
            }
            out.push(decode_metrics(id, vt, &v)?);
        }
        Ok(out)
    }
}

/// A reply as the type it must have.
fn parse_reply<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
    redis::from_redis_value(v).map_err(|e| Error::Other(format!("unexpected reply: {e}")))
}

/// A bulk string reply as text.
fn text(v: &Value) -> String {
    String::from_utf8_lossy(as_bytes(v)).into_owned()
}

/// A listed origin from one lister's entry of its record.
fn listed_origin(
    lister_id: &str,
    url: String,
    visit_type: &str,
    e: ListingEntry,
) -> Result<ListedOrigin> {
    let extra = match serde_json::from_str(&e.extra) {
        _ if e.extra == "{}" => serde_json::Map::new(),
        Ok(Json::Object(m)) => m,
        _ => {
            return Err(Error::Other(format!(
                "bad extra_loader_arguments {:?}",
                e.extra
            )));
        }
    };
    Ok(ListedOrigin {
        lister_id: lister_id.to_string(),
        url,
        visit_type: visit_type.to_string(),
        extra_loader_arguments: extra,
        last_update: e.last_update.map(from_micros),
        enabled: e.enabled,
        first_seen: Some(from_micros(e.first_seen)),
        last_seen: Some(from_micros(e.last_seen)),
    })
}

fn encode_metrics(m: &SchedulerMetrics) -> String {
    format!(
        "{} {} {} {} {}",
        to_micros(m.last_update),
        m.origins_known,
        m.origins_enabled,
        m.origins_never_visited,
        m.origins_with_pending_changes
    )
}

fn decode_metrics(lister_id: &str, visit_type: &str, v: &str) -> Result<SchedulerMetrics> {
    let n: Vec<i64> = v.split(' ').filter_map(|x| x.parse().ok()).collect();
    let [t, known, enabled, never, pending] = n[..] else {
        return Err(Error::Corrupt {
            key: format!("metrics {lister_id}|{visit_type}"),
            reason: format!("{v:?}"),
        });
    };
    Ok(SchedulerMetrics {
        lister_id: lister_id.to_string(),
        visit_type: visit_type.to_string(),
        last_update: from_micros(t),
        origins_known: known,
        origins_enabled: enabled,
        origins_never_visited: never,
        origins_with_pending_changes: pending,
    })
}

/// A policy as the scripts name it (see `lua/includes/grab.lua`).
fn policy_code(policy: VisitPolicy) -> &'static str {
    match policy {
        VisitPolicy::OldestScheduledFirst => "osf",
        VisitPolicy::NeverVisitedOldestUpdateFirst => "nv",
        VisitPolicy::AlreadyVisitedOrderByLag => "lag",
    }
}

/// Where and how [`Store::send_visits`] sends the visits of one visit type.
#[derive(Clone, Debug)]
pub struct VisitTarget<'a> {
    pub visit_type: &'a str,
    /// The time of the choice and of the messages, or `None` for the Redis server's clock
    /// (the simulator gives its simulated time).
    pub now: Option<DateTime<Utc>>,
    /// The visit type's index ([`Store::visit_type_index`]) when the caller has it, or `None`
    /// to look it up (one more script call).
    pub visit_type_index: Option<u32>,
    /// The loader's Celery task name (the `load-<visit_type>` task type's `backend_name`).
    pub task_name: &'a str,
    /// The queue's list keys, bucket 0 first (see `BrokerNaming::queue_keys`).
    pub queue_keys: &'a [String],
    /// The routing key written in the messages.
    pub queue: &'a str,
    pub max_queue_length: Option<i64>,
    /// `<name>@<host>` written in the messages.
    pub origin: &'a str,
    /// Where the broker is.
    pub broker: &'a BrokerLink,
    /// The policies and their weights.
    pub policies: &'a [(VisitPolicy, u32)],
    /// The listers' names by lister index, as [`Store::visit_lister_fields`] gives them (read
    /// once for all the visit types of a pass).
    pub listers: &'a [(String, String)],
    /// An origin scheduled less than this ago, with no result since, is not sent again.
    pub scheduled_cooldown: Duration,
    /// Later versions' cooldowns: an origin whose last visit failed (or found nothing) less
    /// than this ago, or sent less than `absolute_cooldown` ago, is not sent.
    pub failed_cooldown: Option<Duration>,
    pub not_found_cooldown: Option<Duration>,
    pub absolute_cooldown: Option<Duration>,
}

/// What one [`Store::send_visits`] call did.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitsSent {
    pub sent: usize,
    /// Messages waiting in the queue before.
    pub waiting: usize,
    /// Visits sent by each policy, in the order given.
    pub by_policy: Vec<usize>,
}

impl Store {
    /// The outbox of a visit type's queue (used when the broker is another server).
    pub fn visit_outbox(&self, visit_type: &str, queue: &str) -> OutboxKeys {
        let keys = self.vt_keys(visit_type);
        OutboxKeys::new(&keys.base, &keys.meta, queue)
    }

    /// Sends the next visits of a visit type to its loader's Celery queue, up to its free
    /// slots, chosen by the weighted policies, and marks them scheduled, in one script (see
    /// `lua/send_visits.lua`).
    pub async fn send_visits(&self, t: &VisitTarget<'_>) -> Result<VisitsSent> {
        validate_origin_text("visit_type", t.visit_type, MAX_VISIT_TYPE)?;
        let vt_index = match t.visit_type_index {
            Some(i) => i,
            None => self.visit_type_index(t.visit_type).await?,
        };
        let meta = self.vt_keys(t.visit_type).meta;
        let via = self
            .script_broker(
                t.broker,
                &self.visit_outbox(t.visit_type, t.queue),
                t.queue_keys,
            )
            .await?;
        let mut con = self.con().await?;
        let keys: Vec<&str> = std::iter::once(meta.as_str())
            .chain(via.keys.iter().map(String::as_str))
            .collect();
        let mut call = Call::new(ScriptName::SendVisits, &keys);
        call.arg(opt_arg(t.now.map(to_micros)))
            .arg(opt_arg(t.max_queue_length))
            .arg(t.scheduled_cooldown.num_microseconds().unwrap_or(i64::MAX))
            .arg(t.task_name)
            .arg(t.queue)
            .arg(t.origin);
        call.arg(&via.argv.0).arg(&via.argv.1);
        let us = |d: Option<Duration>| opt_arg(d.map(|d| d.num_microseconds().unwrap_or(i64::MAX)));
        call.arg(vt_index)
            .arg(us(t.failed_cooldown))
            .arg(us(t.not_found_cooldown))
            .arg(us(t.absolute_cooldown))
            .arg(t.listers.len());
        for (idx, fields) in t.listers {
            call.arg(idx).arg(fields);
        }
        for (policy, weight) in t.policies {
            call.arg(policy_code(*policy)).arg(*weight);
        }
        let reply = array(call.run(&mut con).await?)?;
        let n = |i: usize| reply.get(i).and_then(super::as_int).unwrap_or(0) as usize;
        Ok(VisitsSent {
            sent: n(0),
            waiting: n(1),
            by_policy: (0..t.policies.len()).map(|k| n(k + 2)).collect(),
        })
    }

    /// The lister fields of the visit runner's messages, by lister index:
    /// `"lister_name":…,"lister_instance_name":…` (JSON members), as later versions'
    /// create_origin_task_dict writes them: no instance name is None, and the listing's extra
    /// arguments come after (and win on a clash).
    pub async fn visit_lister_fields(&self) -> Result<Vec<(String, String)>> {
        let index = self.lister_index().await?;
        let listers = self.get_listers().await?;
        Ok(listers
            .iter()
            .filter_map(|l| {
                let idx = index.by_id.get(l.id.as_deref()?)?;
                let instance = Some(&l.instance_name).filter(|i| !i.is_empty());
                let fields = serde_json::json!({
                    "lister_name": l.name,
                    "lister_instance_name": instance,
                });
                let text = fields.to_string();
                Some((idx.to_string(), text[1..text.len() - 1].to_string()))
            })
            .collect())
    }

    /// The visit types that have listings or stats.
    pub async fn visit_types(&self) -> Result<Vec<String>> {
        let mut con = self.con().await?;
        let mut types: Vec<String> = con.smembers(&self.global().visit_types).await?;
        types.sort();
        Ok(types)
    }
}

impl Store {
    /// The small index of a visit type that the visit runner's task ids carry, given on first
    /// use (see `lua/visit_type_index.lua`).
    pub async fn visit_type_index(&self, visit_type: &str) -> Result<u32> {
        let mut con = self.con().await?;
        let key = &self.global().visit_type_idx;
        let reply = Call::new(ScriptName::VisitTypeIndex, &[key.as_str()])
            .arg(visit_type)
            .arg(ids::MAX_VISIT_TYPE_INDEX)
            .run(&mut con)
            .await?;
        super::as_int(&reply)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| Error::Other(format!("bad visit type index {reply:?}")))
    }

    /// Applies visit results to the origins' stats, one script per visit type and 1000
    /// outcomes, each origin atomically (see `lua/visit_outcomes.lua` for the rules). Outcomes
    /// naming a visit-type index never given are skipped (and logged). Returns the number of
    /// origins whose stats changed. `rules` are later versions' (disabling origins).
    pub async fn apply_visit_outcomes(
        &self,
        outcomes: &[VisitOutcome],
        rules: &VisitRules,
    ) -> Result<usize> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let mut con = self.con().await?;
        let names: HashMap<String, String> = con.hgetall(&self.global().visit_type_idx).await?;
        let mut by_type: BTreeMap<u32, Vec<&VisitOutcome>> = BTreeMap::new();
        for o in outcomes {
            by_type.entry(o.visit_type_index).or_default().push(o);
        }
        let mut changed = 0;
        for (idx, list) in by_type {
            let Some(vt) = names.get(&format!("i:{idx}")) else {
                tracing::warn!(
                    "skipping {} visit results of visit type index {idx}, which this store \
                     never gave",
                    list.len()
                );
                continue;
            };
            let meta = self.vt_keys(vt).meta;
            for chunk in list.chunks(ORIGINS_PER_CALL) {
                let mut call = Call::new(ScriptName::VisitOutcomes, &[meta.as_str()]);
                call.arg("")
                    .arg(rules.disable_after_failures.unwrap_or(0))
                    .arg(if rules.stop_after_success.contains(vt) {
                        "1"
                    } else {
                        "0"
                    });
                for o in chunk {
                    call.arg(o.origin_id)
                        .arg(match o.status {
                            VisitStatus::Eventful => "e",
                            VisitStatus::Uneventful => "u",
                            VisitStatus::Failed => "f",
                            VisitStatus::NotFound => "n",
                            VisitStatus::Lost => "l",
                        })
                        .arg(opt_arg(o.date.map(to_micros)))
                        .arg(o.snapshot.as_deref().unwrap_or_default())
                        .arg(opt_arg(o.sent_ms));
                }
                let reply = call.run(&mut con).await?;
                changed += super::as_int(&reply).unwrap_or(0) as usize;
            }
        }
        Ok(changed)
    }
}

/// What `/metrics` shows of one visit type (see `Store::visit_figures`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VisitFigures {
    /// Enabled origins the oldest_scheduled_first policy would choose now (never sent, or
    /// with a result since their last sending, or past the scheduled cooldown).
    pub eligible: i64,
    /// Origins sent and waiting for their result.
    pub awaiting_result: i64,
    /// The earliest last sending among eligible origins sent before (µs), if any.
    pub oldest_sent_us: Option<i64>,
    /// Visits the visit runner sent.
    pub sent: i64,
    /// Visit results received, by status (`eventful`, `uneventful`, `failed`, `not_found`),
    /// and visits the listener found lost (`lost`).
    pub results: Vec<(&'static str, i64)>,
    /// Messages forwarded from its outboxes to a broker on another server, and of them those
    /// of batches a forwarder left unfinished (see `src/store/outbox.rs`).
    pub outbox_forwarded: i64,
    pub outbox_recovered: i64,
}

impl Store {
    /// The visit runner's figures of a visit type, in one round trip. `eligible` counts the
    /// policy indexes, so an origin parked past the cooldown counts once the next pass (or
    /// grab) releases it.
    pub async fn visit_figures(&self, visit_type: &str) -> Result<VisitFigures> {
        let VisitTypeKeys { meta, base, .. } = self.vt_keys(visit_type);
        let statuses = [
            VisitStatus::Eventful,
            VisitStatus::Uneventful,
            VisitStatus::Failed,
            VisitStatus::NotFound,
            VisitStatus::Lost,
        ];
        let mut fields = vec!["visits_sent".to_string()];
        fields.extend(statuses.iter().map(|s| format!("results_{}", s.as_str())));
        fields.extend([
            "outbox_forwarded".to_string(),
            "outbox_recovered".to_string(),
            "n_new".to_string(),
            "n_osf".to_string(),
            "n_pk".to_string(),
        ]);
        let mut con = self.con().await?;
        type Reply = (Vec<(String, f64)>, Vec<Option<i64>>);
        let (first, counters): Reply = redis::pipe()
            .cmd("ZRANGE")
            .arg(format!("{base}:osf"))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("HMGET")
            .arg(&meta)
            .arg(&fields)
            .query_async(&mut con)
            .await?;
        let count = |i: usize| counters.get(i).copied().flatten().unwrap_or(0);
        let n = statuses.len() + 3;
        Ok(VisitFigures {
            eligible: count(n) + count(n + 1),
            awaiting_result: count(n + 2),
            oldest_sent_us: first.first().map(|(_, s)| *s as i64),
            sent: count(0),
            results: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), count(i + 1)))
                .collect(),
            outbox_forwarded: count(statuses.len() + 1),
            outbox_recovered: count(statuses.len() + 2),
        })
    }
}

impl Store {
    /// Marks failed the visits of `visit_type` sent before `sent_before` with no result since
    /// (lost: a worker died, or the events were missed); the check and the marking are one
    /// script per batch (`lua/visit_outcomes.lua`), so a result arriving meanwhile wins.
    /// Returns the number of visits marked. An origin marked stays waiting until the
    /// scheduled cooldown, and is read again by later sweeps but not marked again.
    pub async fn sweep_lost_visits(
        &self,
        visit_type: &str,
        sent_before: DateTime<Utc>,
        rules: &VisitRules,
    ) -> Result<usize> {
        let pk = format!("{}:pk", self.vt_keys(visit_type).base);
        let mut con = self.con().await?;
        let visit_type_index = self.visit_type_index(visit_type).await?;
        let mut marked = 0;
        let mut offset = 0;
        loop {
            // a few chunks (of up to 500 origins each) at a time
            let chunks: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&pk)
                .arg("-inf")
                .arg(format!("({}", to_micros(sent_before)))
                .arg("LIMIT")
                .arg(offset)
                .arg(SWEEP_CHUNKS)
                .query_async(&mut con)
                .await?;
            offset += chunks.len();
            if chunks.is_empty() {
                return Ok(marked);
            }
            let mut pipe = redis::pipe();
            for c in &chunks {
                pipe.smembers(format!("{pk}:{c}"));
            }
            let members: Vec<Vec<i64>> = pipe.query_async(&mut con).await?;
            let lost: Vec<VisitOutcome> = members
                .into_iter()
                .flatten()
                .map(|origin_id| VisitOutcome {
                    visit_type_index,
                    origin_id,
                    status: VisitStatus::Lost,
                    snapshot: None,
                    date: Some(sent_before),
                    sent_ms: None,
                })
                .collect();
            marked += self.apply_visit_outcomes(&lost, rules).await?;
            if chunks.len() < SWEEP_CHUNKS {
                return Ok(marked);
            }
        }
    }
}
