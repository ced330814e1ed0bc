//! `myelin-admin media ...`
//!
//! Purges run as a loop of batches: each request deletes at most `--batch-size` items and the
//! server answers how many more match (`remaining`, a Myelin extension of Synapse's purge
//! endpoints). The progress bar counts what the server has really deleted, batch by batch,
//! against what it says is left; no request stays open for the whole purge, and an interrupted
//! purge has deleted exactly what it reported. The bar draws on stderr and only on a terminal,
//! so `--json` output on stdout stays one JSON document.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::user::resolve_user_id;
use crate::cli::{MediaCommand, MediaListArgs, MxcArg, PurgeArgs, PurgeRemoteArgs};
use crate::client::AdminClient;
use crate::error::{Error, Result};
use crate::output::{self, Output, or_dash, utc_datetime, yes_no};

/// Media requested per page while listing.
const PAGE_SIZE: u64 = 100;

pub async fn run(client: &AdminClient, out: Output, command: MediaCommand) -> Result<()> {
    match command {
        MediaCommand::Quarantine(args) => quarantine(client, out, args, true).await,
        MediaCommand::Unquarantine(args) => quarantine(client, out, args, false).await,
        MediaCommand::List(args) => list(client, out, args).await,
        MediaCommand::Delete(args) => delete(client, out, args).await,
        MediaCommand::Purge(args) => purge(client, out, args).await,
        MediaCommand::PurgeRemote(args) => purge_remote(client, out, args).await,
    }
}

async fn quarantine(client: &AdminClient, out: Output, args: MxcArg, quarantine: bool) -> Result<()> {
    let (server, media_id) = split_mxc(&args.mxc)?;
    let raw = client.set_media_quarantine(server, media_id, quarantine).await?;
    if out.is_json() {
        return out.json(&raw);
    }
    let done = if quarantine { "quarantined" } else { "released from quarantine" };
    out.line(&format!("{done}: {}", args.mxc))
}

async fn delete(client: &AdminClient, out: Output, args: MxcArg) -> Result<()> {
    let (server, media_id) = split_mxc(&args.mxc)?;
    let raw = client.delete_media(server, media_id).await?;
    if out.is_json() {
        return out.json(&raw);
    }
    out.line(&format!("deleted {}", args.mxc))
}

async fn list(client: &AdminClient, out: Output, args: MediaListArgs) -> Result<()> {
    let user_id = resolve_user_id(client, &args.user).await?;
    let spinner = ProgressBar::new_spinner().with_message("fetching media");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut media = Vec::new();
    let mut from = "0".to_owned();
    let listed = loop {
        match client.user_media_page(&user_id, &from, PAGE_SIZE).await {
            Err(error) => break Err(error),
            Ok((page, next)) => {
                let page_was_empty = page.is_empty();
                media.extend(page);
                spinner.set_message(format!("fetched {} media", media.len()));
                match next {
                    // An empty page or a repeated token ends the listing, so a misbehaving
                    // server cannot keep us looping.
                    Some(next) if !page_was_empty && next != from => from = next,
                    _ => break Ok(()),
                }
            }
        }
    };
    spinner.finish_and_clear();
    listed?;

    if out.is_json() {
        return out.json(&Value::Array(media));
    }
    let mut table = output::table(&["media id", "type", "bytes", "name", "created (UTC)", "quarantined by", "protected"]);
    for item in &media {
        let text = |key: &str| or_dash(item[key].as_str());
        table.add_row([
            text("media_id"),
            text("media_type"),
            item["media_length"].as_u64().map_or("-".to_owned(), |n| n.to_string()),
            text("upload_name"),
            utc_datetime(item["created_ts"].as_i64()),
            text("quarantined_by"),
            yes_no(item["safe_from_quarantine"].as_bool().unwrap_or(false)),
        ]);
    }
    out.table(&table)?;
    out.line(&format!("{} media of {user_id}", media.len()))
}

async fn purge(client: &AdminClient, out: Output, args: PurgeArgs) -> Result<()> {
    let before = parse_when(&args.before, now_ms())?;
    let mut params = vec![
        ("before_ts", before.to_string()),
        ("limit", args.batch_size.to_string()),
        ("keep_profiles", (!args.include_profiles).to_string()),
    ];
    if let Some(size) = args.size_gt {
        params.push(("size_gt", size.to_string()));
    }
    if let Some(user) = &args.user {
        params.push(("user_id", resolve_user_id(client, user).await?));
    }
    let (count, ids) = purge_in_batches(client, false, &params).await?;
    if out.is_json() {
        return out.json(&json!({ "deleted_media": ids, "total": count }));
    }
    out.line(&format!("deleted {count} media"))
}

async fn purge_remote(client: &AdminClient, out: Output, args: PurgeRemoteArgs) -> Result<()> {
    let before = parse_when(&args.before, now_ms())?;
    let params = [("before_ts", before.to_string()), ("limit", args.batch_size.to_string())];
    let (count, _) = purge_in_batches(client, true, &params).await?;
    if out.is_json() {
        return out.json(&json!({ "deleted": count }));
    }
    out.line(&format!("deleted {count} cached remote media"))
}

/// Repeats a purge request until nothing that matches is left; returns how many were deleted
/// and their IDs (local purges).
async fn purge_in_batches(client: &AdminClient, remote: bool, params: &[(&str, String)]) -> Result<(u64, Vec<String>)> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} deleting media [{bar:32}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut deleted = 0;
    let mut ids = Vec::new();
    let outcome = loop {
        let batch = match client.purge_media_batch(remote, params).await {
            Ok(batch) => batch,
            Err(error) => break Err(error),
        };
        deleted += batch.deleted;
        ids.extend(batch.deleted_media);
        let remaining = batch.remaining.unwrap_or(0);
        bar.set_length(deleted + remaining);
        bar.set_position(deleted);
        // A batch that deleted nothing would be repeated forever: what is left cannot go.
        if remaining == 0 || batch.deleted == 0 {
            break Ok(());
        }
    };
    bar.finish_and_clear();
    outcome.map(|()| (deleted, ids))
}

/// (server, media ID) of `mxc://server/mediaId`.
fn split_mxc(uri: &str) -> Result<(&str, &str)> {
    uri.strip_prefix("mxc://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(server, id)| !server.is_empty() && !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| Error::Usage(format!("`{uri}` is not a media URI; expected mxc://server.name/mediaId")))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A `--before` value as milliseconds since the epoch: an age (`30d`, `12h`, `90m`, `45s`,
/// `2w`) counted back from `now`, a UTC date or date and time, or milliseconds.
fn parse_when(text: &str, now: u64) -> Result<u64> {
    let invalid = || {
        Error::Usage(format!(
            "--before {text:?}: expected an age (30d, 12h, 90m, 45s, 2w), a UTC date (2024-09-01 or \
             2024-09-01T12:00:00Z) or milliseconds since the epoch"
        ))
    };
    let text = text.trim();
    if let Some(unit) = text.chars().last().filter(char::is_ascii_alphabetic)
        && let Ok(count) = text[..text.len() - 1].parse::<u64>()
    {
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(invalid()),
        };
        return Ok(now.saturating_sub(count.saturating_mul(seconds * 1000)));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let ms = text.parse::<u64>().map_err(|_| invalid())?;
        // Seconds by mistake would mean 1970.
        return if ms >= 30_000_000_000 { Ok(ms) } else { Err(invalid()) };
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, time.strip_suffix('Z').unwrap_or(time)),
        None => (text, "00:00:00"),
    };
    let numbers = |part: &str, separator: char| -> Option<Vec<i64>> { part.split(separator).map(|n| n.parse().ok()).collect() };
    let (Some(&[year, month, day]), Some(&[hour, minute, second])) = (numbers(date, '-').as_deref(), numbers(time, ':').as_deref())
    else {
        return Err(invalid());
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(invalid());
    }
    let days = days_from_civil(year, month, day);
    // Dates like 2023-02-30 roll over; refuse them.
    if output::civil_date(days) != (year, month, day) {
        return Err(invalid());
    }
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    u64::try_from(seconds * 1000).map_err(|_| invalid())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `output::civil_date`,
/// in the same March-based 400-year cycles).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let cycle = year.div_euclid(400);
    let year_of_cycle = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    cycle * 146_097 + day_of_cycle - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn before_accepts_ages_dates_and_milliseconds() {
        assert_eq!(parse_when("0s", NOW).unwrap(), NOW);
        assert_eq!(parse_when("90m", NOW).unwrap(), NOW - 90 * 60_000);
        assert_eq!(parse_when("30d", NOW).unwrap(), NOW - 30 * 86_400_000);
        assert_eq!(parse_when("2w", NOW).unwrap(), NOW - 14 * 86_400_000);
        // Expected values from Python's datetime(..., tzinfo=UTC).timestamp().
        assert_eq!(parse_when("2024-09-01", NOW).unwrap(), 1_725_148_800_000);
        assert_eq!(parse_when("2000-02-29T23:59:59Z", NOW).unwrap(), 951_868_799_000);
        assert_eq!(parse_when("1969-12-31", NOW).ok(), None, "before the epoch");
        assert_eq!(parse_when("1725148800000", NOW).unwrap(), 1_725_148_800_000);
        for bad in ["", "yesterday", "10y", "d", "1725148800", "2023-02-29", "2024-13-01", "2024-09-01T25:00:00Z"] {
            assert!(parse_when(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_uris() {
        assert_eq!(split_mxc("mxc://example.org/abc").unwrap(), ("example.org", "abc"));
        for bad in ["example.org/abc", "mxc://example.org/", "mxc:///abc", "mxc://example.org/a/b"] {
            assert!(split_mxc(bad).is_err(), "{bad}");
        }
    }
}
