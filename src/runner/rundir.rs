//! The run directory: the resolved configuration, a JSON-lines metrics log
//! and its TensorBoard twin, the final summary and the checkpoints of one run.

use super::RunError;
use super::tensorboard::EventWriter;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct RunDir {
    pub path: PathBuf,
    metrics: File,
    pub tensorboard: EventWriter,
}

/// What to do when the run directory already holds a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Refuse: two runs in one directory mix their metrics, and pruning
    /// would delete the new run's checkpoints in favour of the old ones.
    Refuse,
    /// `--resume`: the same run goes on, appending to its log.
    Append,
    /// `--overwrite`: the old run's files are removed first.
    Overwrite,
}

/// The files a run writes; their presence means a directory holds a run.
const RUN_FILES: &[&str] =
    &["metrics.jsonl", "config.json", "summary.json", "vocab.json", "classes.json", "checkpoints"];

impl RunDir {
    /// `out`, or `runs/<experiment>-<UTC timestamp>` (suffixed if taken).
    pub fn create(out: Option<&Path>, experiment: &str, reuse: Reuse) -> Result<RunDir, RunError> {
        let path = match out {
            Some(p) => p.to_path_buf(),
            None => fresh(&Path::new("runs").join(format!("{experiment}-{}", timestamp()))),
        };
        let fail = |e: std::io::Error| RunError::Io {
            path: path.clone(),
            message: format!("cannot create the run directory: {e}; choose another with `--out DIR`"),
        };
        let held: Vec<&str> = RUN_FILES.iter().copied().filter(|f| path.join(f).exists()).collect();
        match reuse {
            Reuse::Refuse if !held.is_empty() => {
                return Err(RunError::Io {
                    path: path.clone(),
                    message: format!(
                        "already holds a run ({}); continue it with `--resume {}/checkpoints/last.safetensors`, \
                         replace it with `--overwrite`, or choose another `--out DIR`",
                        held.join(", "),
                        path.display()
                    ),
                });
            }
            Reuse::Overwrite => {
                held.iter().try_for_each(|f| remove(&path.join(f))).map_err(fail)?;
                remove_event_files(&path).map_err(fail)?;
            }
            Reuse::Refuse | Reuse::Append => {}
        }
        std::fs::create_dir_all(&path).map_err(fail)?;
        let log = path.join("metrics.jsonl");
        drop_torn_line(&log).map_err(fail)?;
        let metrics = OpenOptions::new().create(true).append(true).open(log).map_err(fail)?;
        let tensorboard = EventWriter::create(&path)?;
        Ok(RunDir { path, metrics, tensorboard })
    }

    pub fn write_json(&self, name: &str, value: &Value) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(value).unwrap_or_default();
        super::checkpoint::write_atomic(&self.path.join(name), format!("{text}\n").as_bytes())
    }

    /// Append one event to `metrics.jsonl`, flushed so a crash loses
    /// nothing, stamped with `time` (seconds since the Unix epoch).
    pub fn log(&mut self, event: &Value) -> Result<(), RunError> {
        let mut event = event.clone();
        if let Value::Object(m) = &mut event {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            m.insert("time".into(), Value::from((now.as_secs_f64() * 1e3).round() / 1e3));
        }
        let line = format!("{event}\n");
        self.metrics.write_all(line.as_bytes()).and_then(|_| self.metrics.flush()).map_err(|e| RunError::Io {
            path: self.path.join("metrics.jsonl"),
            message: format!("cannot write: {e}"),
        })?;
        self.tensorboard.event(&event)
    }
}

fn remove(p: &Path) -> std::io::Result<()> {
    if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) }
}

/// An overwritten run's TensorBoard files would otherwise show beside the
/// new run's, as one run.
fn remove_event_files(dir: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("events.out.tfevents.") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A log whose last line was cut short (the disk filled mid-append, the
/// process was killed) ends without a newline: cut that partial event off,
/// so the next event starts a line of its own and every line parses.
fn drop_torn_line(log: &Path) -> std::io::Result<()> {
    let Ok(bytes) = std::fs::read(log) else { return Ok(()) };
    if bytes.last().is_none_or(|&b| b == b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new().write(true).open(log)?.set_len(keep as u64)
}

fn fresh(base: &Path) -> PathBuf {
    if !base.exists() {
        return base.to_path_buf();
    }
    (2..).map(|i| PathBuf::from(format!("{}-{i}", base.display()))).find(|p| !p.exists()).unwrap_or_default()
}

/// `YYYYmmdd-HHMMSS` in UTC, from the system clock.
fn timestamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn torn_last_line_is_cut_off() {
        let dir = std::env::temp_dir().join(format!("nnc-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("metrics.jsonl");
        std::fs::write(&log, "{\"a\": 1}\n{\"b\": 2").unwrap();
        super::drop_torn_line(&log).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "{\"a\": 1}\n");
        std::fs::write(&log, "{\"b\"").unwrap();
        super::drop_torn_line(&log).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_786), (2026, 11, 29));
    }
}
