//! RFC 3339 in UTC, the text form of a [`Timestamp`](super::Timestamp): written with
//! milliseconds (`2026-11-23T12:00:00.000Z`), read leniently (`T` or a space between date and
//! time, any number of fractional digits, `Z`, `+00:00` or nothing at the end). Only UTC: the
//! wire never carries another offset.

use std::fmt;

/// The first second of year 10000: four digits of year end there.
const END: u64 = 253_402_300_800;

/// Why a text is not a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Error {
    /// A number out of its range (month 13, hour 24, a year before 1970).
    OutOfRange,
    /// Something other than a digit where a digit belongs.
    InvalidDigit,
    /// Not shaped like a timestamp.
    InvalidFormat,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::OutOfRange => "numeric component is out of range",
            Error::InvalidDigit => "bad character where digit is expected",
            Error::InvalidFormat => "timestamp format is invalid",
        })
    }
}

/// How long the text of a timestamp is: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(super) const LEN: usize = 24;

/// `seconds` and `millis` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`; `None` from year
/// 10000 on, which four digits cannot hold.
///
/// Digits are placed by hand rather than through `write!`: every session sent to a client
/// carries four timestamps, and the formatting machinery cost more than the rest of the
/// answer's JSON together (callgrind, `GET /v1/sessions/{id}`).
pub(super) fn format(seconds: u64, millis: u32) -> Option<[u8; LEN]> {
    if seconds >= END {
        return None;
    }
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, hour);
    put(14, 2, minute);
    put(17, 2, second);
    put(20, 3, u64::from(millis));
    Some(text)
}

/// The (year, month, day) of the day `days` after 1970-01-01 (H. Hinnant's `civil_from_days`,
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Counted from 0000-03-01, so that the leap day ends each 400-year era.
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Seconds and nanoseconds since the epoch of `text`.
pub(super) fn parse(text: &str) -> Result<(u64, u32), Error> {
    let b = text.as_bytes();
    if b.len() < "2018-02-14T00:28:07".len() {
        return Err(Error::InvalidFormat);
    }
    if b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') || b[13] != b':' || b[16] != b':' {
        return Err(Error::InvalidFormat);
    }
    let year = two_digits(b[0], b[1])? * 100 + two_digits(b[2], b[3])?;
    let month = two_digits(b[5], b[6])?;
    let day = two_digits(b[8], b[9])?;
    let hour = two_digits(b[11], b[12])?;
    let minute = two_digits(b[14], b[15])?;
    // A leap second counts as the second before it.
    let second = two_digits(b[17], b[18])?.min(59);
    if year < 1970 || hour > 23 || minute > 59 || two_digits(b[17], b[18])? > 60 {
        return Err(Error::OutOfRange);
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_length = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return Err(Error::OutOfRange),
    };
    if day == 0 || day > month_length {
        return Err(Error::OutOfRange);
    }
    let days = days_from_civil(year, month, day);
    let nanos = fraction(b)?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    if seconds >= END {
        return Err(Error::OutOfRange);
    }
    Ok((seconds, nanos))
}

/// The nanoseconds of the fraction after the seconds (digits beyond the ninth are read as
/// nothing), checking that only `Z` or `+00:00` follows.
fn fraction(b: &[u8]) -> Result<u32, Error> {
    if b.get(19) != Some(&b'.') {
        // Nothing, or `Z` (whatever follows it, up to 25 bytes in all), or `+00:00`.
        return match b.len() {
            19 => Ok(0),
            26.. => Err(Error::InvalidFormat),
            _ if b[19] == b'Z' || &b[19..] == b"+00:00" => Ok(0),
            _ => Err(Error::InvalidFormat),
        };
    }
    let (mut nanos, mut unit) = (0, 100_000_000);
    for (at, &byte) in b.iter().enumerate().skip(20) {
        match byte {
            b'Z' if at == b.len() - 1 => break,
            b'+' if at + 6 == b.len() => break,
            b'Z' | b'+' => return Err(Error::InvalidDigit),
            _ => {
                nanos += unit * char::from(byte).to_digit(10).ok_or(Error::InvalidDigit)?;
                unit /= 10;
            }
        }
    }
    Ok(nanos)
}

/// Days from 1970-01-01 to a date on or after it.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn two_digits(tens: u8, ones: u8) -> Result<u64, Error> {
    let digit = |b: u8| char::from(b).to_digit(10).map(u64::from).ok_or(Error::InvalidDigit);
    Ok(digit(tens)? * 10 + digit(ones)?)
}
