//! Rendering: pretty JSON for `--json`, comfy-table tables otherwise.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

use crate::error::{Error, Result};

/// Where command results go (stdout), in the format the user asked for.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn is_json(self) -> bool {
        self.json
    }

    pub fn json(self, value: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|err| Error::Output(io::Error::other(err)))?;
        self.line(&text)
    }

    pub fn table(self, table: &Table) -> Result<()> {
        self.line(&table.to_string())
    }

    pub fn line(self, text: &str) -> Result<()> {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{text}").map_err(Error::Output)?;
        stdout.flush().map_err(Error::Output)
    }
}

/// A table with the given column headers.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    table
}

/// A two-column "field | value" table without a header.
pub fn fields<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (name, value) in rows {
        table.add_row([name.to_owned(), value]);
    }
    table
}

pub fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => "-".to_owned(),
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc_datetime(millis: Option<i64>) -> String {
    let Some(millis) = millis.filter(|ms| *ms > 0) else {
        return "-".to_owned();
    };
    let secs = millis.div_euclid(1000);
    let (year, month, day) = civil_date(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a day count relative to
/// 1970-01-01, computed in 400-year cycles of 146 097 days whose years start
/// on 1 March (so the leap day is the last day of a year).
pub fn civil_date(days_since_epoch: i64) -> (i64, i64, i64) {
    // 0000-03-01 is 719 468 days before 1970-01-01.
    let days = days_since_epoch + 719_468;
    let cycle = days.div_euclid(146_097);
    let day_of_cycle = days.rem_euclid(146_097);
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1_460 + day_of_cycle / 36_524
        - day_of_cycle / 146_096)
        / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // Months counted from March = 0; 153 days per five months.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = cycle * 400 + year_of_cycle + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from Python's datetime.fromtimestamp(..., UTC).
    #[test]
    fn formats_utc_datetimes() {
        assert_eq!(utc_datetime(Some(1_700_000_000_000)), "2023-11-14 22:13:20");
        assert_eq!(utc_datetime(Some(951_782_400_000)), "2000-02-29 00:00:00");
        assert_eq!(utc_datetime(Some(4_102_444_799_999)), "2099-12-31 23:59:59");
        assert_eq!(utc_datetime(Some(1)), "1970-01-01 00:00:00");
        assert_eq!(utc_datetime(None), "-");
        assert_eq!(utc_datetime(Some(0)), "-");
    }

    #[test]
    fn civil_date_handles_negative_days() {
        assert_eq!(civil_date(-366), (1968, 12, 31));
        assert_eq!(civil_date(0), (1970, 1, 1));
    }
}
