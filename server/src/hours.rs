//! Business hours: a site's time zone, weekly schedule and holidays, whether it is open at a
//! moment and when it opens next, and what a visitor who asks for a human outside hours is told.
//! Time zones come from the IANA database bundled by `jiff`, so a container needs no zoneinfo.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use crate::lang::Lang;

/// Days searched for the next opening (holidays included).
const LOOKAHEAD_DAYS: usize = 60;
/// Most holidays kept per site.
pub const MAX_HOLIDAYS: usize = 366;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A site's business hours as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// IANA time zone, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// The weekly schedule as written, e.g. `mon-fri 09:00-18:00; sat 10:00-14:00`.
    pub weekly: String,
    /// Closed all day (`YYYY-MM-DD`, in the site's time zone).
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// Whether the site is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Openness {
    Open,
    /// Closed; agents are back at `reopens` (none within `LOOKAHEAD_DAYS`).
    Closed {
        reopens: Option<Zoned>,
    },
}

/// A checked schedule: open minutes per weekday (Monday first) and holidays.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    week: [Vec<(u16, u16)>; 7],
    holidays: Vec<Date>,
}

fn minutes(hhmm: &str) -> Result<u16, String> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| format!("`{hhmm}` is not HH:MM"))?;
    let (h, m): (u16, u16) = (
        h.parse().map_err(|_| format!("`{hhmm}` is not HH:MM"))?,
        m.parse().map_err(|_| format!("`{hhmm}` is not HH:MM"))?,
    );
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(format!("`{hhmm}` is not a time of day"));
    }
    Ok(h * 60 + m)
}

fn day_index(name: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|d| *d == name.to_ascii_lowercase())
        .ok_or_else(|| format!("`{name}` is not a day (mon, tue, … sun)"))
}

impl BusinessHours {
    /// Checks the time zone, the schedule and the holidays.
    pub fn schedule(&self) -> Result<Schedule, String> {
        let tz = TimeZone::get(&self.time_zone)
            .map_err(|_| format!("`{}` is not an IANA time zone", self.time_zone))?;
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for part in self
            .weekly
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let mut words = part.split_whitespace();
            let days = words.next().unwrap_or_default();
            let (first, last) = match days.split_once('-') {
                Some((a, b)) => (day_index(a)?, day_index(b)?),
                None => (day_index(days)?, day_index(days)?),
            };
            if last < first {
                return Err(format!("`{days}`: write days in week order (mon-fri)"));
            }
            let mut spans = Vec::new();
            for span in words {
                let (a, b) = span
                    .split_once('-')
                    .ok_or_else(|| format!("`{span}` is not HH:MM-HH:MM"))?;
                let (a, b) = (minutes(a)?, minutes(b)?);
                if a >= b {
                    return Err(format!("`{span}` ends before it starts"));
                }
                spans.push((a, b));
            }
            if spans.is_empty() {
                return Err(format!("`{part}` has no hours (e.g. mon-fri 09:00-18:00)"));
            }
            for day in &mut week[first..=last] {
                day.extend(spans.iter().copied());
                day.sort_unstable();
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err("the schedule opens on no day (e.g. mon-fri 09:00-18:00)".into());
        }
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(format!("at most {MAX_HOLIDAYS} holidays"));
        }
        let holidays = self
            .holidays
            .iter()
            .map(|d| {
                d.parse::<Date>()
                    .map_err(|_| format!("holiday `{d}` is not YYYY-MM-DD"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Schedule { tz, week, holidays })
    }
}

fn monday_zero(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

impl Schedule {
    /// Open or closed at `now_ms` (Unix milliseconds), and when it opens next.
    pub fn at(&self, now_ms: i64) -> Openness {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return Openness::Open;
        };
        let now = now.to_zoned(self.tz.clone());
        let minute = now.hour() as u16 * 60 + now.minute() as u16;
        let mut date = now.date();
        let today_open = !self.holidays.contains(&date)
            && self.week[monday_zero(date.weekday())]
                .iter()
                .any(|&(a, b)| a <= minute && minute < b);
        if today_open {
            return Openness::Open;
        }
        for offset in 0..LOOKAHEAD_DAYS {
            if offset > 0 {
                let Ok(next) = date.tomorrow() else { break };
                date = next;
            }
            if self.holidays.contains(&date) {
                continue;
            }
            let start = self.week[monday_zero(date.weekday())]
                .iter()
                .map(|&(a, _)| a)
                .find(|&a| offset > 0 || a > minute);
            if let Some(a) = start {
                let at = date
                    .at((a / 60) as i8, (a % 60) as i8, 0, 0)
                    .to_zoned(self.tz.clone());
                return Openness::Closed { reopens: at.ok() };
            }
        }
        Openness::Closed { reopens: None }
    }
}

/// What a visitor who asks for a human outside business hours is told.
pub fn closed_note(lang: Lang, reopens: Option<&Zoned>) -> String {
    let Some(at) = reopens else {
        return lang
            .pick(
                "现在是非工作时间。请留下您的问题和联系方式，我们上班后会尽快回复您。",
                "We're closed right now. Leave your question and how to reach you, and we'll get back to you when we're open.",
            )
            .to_string();
    };
    let day = monday_zero(at.weekday());
    let zone = at.time_zone().iana_name().unwrap_or("UTC");
    match lang {
        Lang::Zh => {
            const ZH: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
            format!(
                "现在是非工作时间，人工客服将于 {} {}（{}）上班。请留下您的问题和联系方式，我们上班后会尽快回复您。",
                ZH[day],
                at.strftime("%m-%d %H:%M"),
                zone
            )
        }
        Lang::En => format!(
            "We're closed right now; agents are back {} ({}). Leave your question and how to reach you, and we'll get back to you then.",
            at.strftime("%a %b %-d, %H:%M"),
            zone
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(weekly: &str, holidays: &[&str]) -> Schedule {
        BusinessHours {
            time_zone: "Asia/Shanghai".into(),
            weekly: weekly.into(),
            holidays: holidays.iter().map(|h| h.to_string()).collect(),
        }
        .schedule()
        .expect("valid")
    }

    /// Unix ms of a wall-clock time in Shanghai.
    fn shanghai(date: &str, hhmm: &str) -> i64 {
        format!("{date}T{hhmm}:00[Asia/Shanghai]")
            .parse::<Zoned>()
            .expect("zoned")
            .timestamp()
            .as_millisecond()
    }

    fn reopens(o: Openness) -> String {
        match o {
            Openness::Closed { reopens: Some(z) } => z.strftime("%Y-%m-%d %H:%M").to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn open_inside_the_weekly_hours_in_the_sites_time_zone() {
        let s = hours("mon-fri 09:00-12:00 13:00-18:00; sat 10:00-14:00", &[]);
        // 2026-12-07 is a Monday.
        assert_eq!(s.at(shanghai("2026-12-07", "09:00")), Openness::Open);
        assert_eq!(s.at(shanghai("2026-12-07", "17:59")), Openness::Open);
        assert_eq!(
            reopens(s.at(shanghai("2026-12-07", "12:30"))),
            "2026-12-07 13:00",
            "the lunch break"
        );
        assert_eq!(
            reopens(s.at(shanghai("2026-12-07", "18:00"))),
            "2026-12-08 09:00"
        );
        assert_eq!(
            reopens(s.at(shanghai("2026-12-07", "08:00"))),
            "2026-12-07 09:00"
        );
        assert_eq!(
            s.at(shanghai("2026-12-12", "11:00")),
            Openness::Open,
            "Saturday"
        );
        assert_eq!(
            reopens(s.at(shanghai("2026-12-12", "15:00"))),
            "2026-12-14 09:00"
        );
        // 01:30 UTC on Monday is 09:30 in Shanghai.
        let utc = "2026-12-07T01:30:00Z".parse::<Timestamp>().expect("ts");
        assert_eq!(s.at(utc.as_millisecond()), Openness::Open);
    }

    #[test]
    fn holidays_close_whole_days() {
        let s = hours("mon-fri 09:00-18:00", &["2026-10-01", "2026-10-02"]);
        // 2026-10-01 is a Thursday.
        assert_eq!(
            reopens(s.at(shanghai("2026-10-01", "10:00"))),
            "2026-10-05 09:00"
        );
        assert_eq!(
            reopens(s.at(shanghai("2026-09-30", "19:00"))),
            "2026-10-05 09:00"
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        let bad = |tz: &str, weekly: &str, holidays: &[&str]| {
            BusinessHours {
                time_zone: tz.into(),
                weekly: weekly.into(),
                holidays: holidays.iter().map(|h| h.to_string()).collect(),
            }
            .schedule()
            .expect_err("refused")
        };
        assert!(bad("Mars/Olympus", "mon 09:00-18:00", &[]).contains("time zone"));
        assert!(bad("UTC", "", &[]).contains("no day"));
        assert!(bad("UTC", "funday 09:00-18:00", &[]).contains("not a day"));
        assert!(bad("UTC", "fri-mon 09:00-18:00", &[]).contains("week order"));
        assert!(bad("UTC", "mon 18:00-09:00", &[]).contains("ends before"));
        assert!(bad("UTC", "mon 25:00-26:00", &[]).contains("time of day"));
        assert!(bad("UTC", "mon", &[]).contains("no hours"));
        assert!(bad("UTC", "mon 09:00-18:00", &["10/01"]).contains("YYYY-MM-DD"));
    }

    #[test]
    fn the_closed_note_says_when_agents_are_back_in_both_languages() {
        let s = hours("mon-fri 09:00-18:00", &[]);
        let Openness::Closed { reopens } = s.at(shanghai("2026-12-05", "20:00")) else {
            panic!("Saturday evening is closed");
        };
        let zh = closed_note(Lang::Zh, reopens.as_ref());
        assert!(
            zh.contains("周一 12-07 09:00") && zh.contains("Asia/Shanghai"),
            "{zh}"
        );
        let en = closed_note(Lang::En, reopens.as_ref());
        assert!(en.contains("Mon Dec 7, 09:00"), "{en}");
        assert!(closed_note(Lang::En, None).contains("closed"));
    }
}
