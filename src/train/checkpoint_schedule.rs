//! When to write a checkpoint within an epoch (`train --checkpoint-every`): after a span of
//! training time or a number of optimiser steps, besides the one at every epoch's end. An
//! ImageNet epoch takes hours on a CPU; a crash loses only the work since the last checkpoint.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How often to checkpoint within an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointEvery {
    /// After this much time since the last checkpoint (or the start).
    Time(Duration),
    /// After this many optimiser steps since the last checkpoint (or the start).
    Steps(u64),
    /// Only at epoch ends (and on Ctrl-C or --max-steps).
    EpochEnd,
}

impl Default for CheckpointEvery {
    /// Every 30 minutes.
    fn default() -> Self {
        CheckpointEvery::Time(Duration::from_secs(30 * 60))
    }
}

impl FromStr for CheckpointEvery {
    type Err = String;

    /// `30m`, `2h`, `90s`, `1h30m`, `500steps`, or `epoch`.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "`{text}` is not a checkpoint interval: expected a duration (90s, 30m, 2h, 1h30m), \
                 a step count (500steps) or `epoch`"
            )
        };
        if text == "epoch" {
            return Ok(CheckpointEvery::EpochEnd);
        }
        if let Some(count) = text.strip_suffix("steps").or(text.strip_suffix("step")) {
            let steps: u64 = count.trim().parse().map_err(|_| bad())?;
            return if steps == 0 {
                Err(bad())
            } else {
                Ok(CheckpointEvery::Steps(steps))
            };
        }
        let mut seconds = 0u64;
        let mut number = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return Err(bad()),
            };
            let value: u64 = number.parse().map_err(|_| bad())?;
            seconds = value
                .checked_mul(unit)
                .and_then(|v| seconds.checked_add(v))
                .ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() || seconds == 0 {
            return Err(bad());
        }
        Ok(CheckpointEvery::Time(Duration::from_secs(seconds)))
    }
}

impl fmt::Display for CheckpointEvery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointEvery::Time(d) => write!(f, "{}s", d.as_secs()),
            CheckpointEvery::Steps(n) => write!(f, "{n}steps"),
            CheckpointEvery::EpochEnd => write!(f, "epoch"),
        }
    }
}

/// The clock and step count since the last checkpoint.
pub struct CheckpointSchedule {
    every: CheckpointEvery,
    since: Instant,
    last_step: u64,
}

impl CheckpointSchedule {
    /// Starting at `step` (a resumed run's position) now.
    pub fn new(every: CheckpointEvery, step: u64) -> Self {
        CheckpointSchedule {
            every,
            since: Instant::now(),
            last_step: step,
        }
    }

    /// Whether a checkpoint is due after optimiser step `step`.
    pub fn due(&self, step: u64) -> bool {
        match self.every {
            CheckpointEvery::Time(span) => self.since.elapsed() >= span,
            CheckpointEvery::Steps(n) => step >= self.last_step + n,
            CheckpointEvery::EpochEnd => false,
        }
    }

    /// A checkpoint was written after `step` (within an epoch or at its end).
    pub fn written(&mut self, step: u64) {
        self.since = Instant::now();
        self.last_step = step;
    }
}
