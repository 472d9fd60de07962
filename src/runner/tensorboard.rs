//! TensorBoard event files: `events.out.tfevents.*` in the run directory,
//! holding the scalars of every logged event, per-epoch parameter
//! histograms and the run's hyperparameters for the HParams table.
//!
//! The messages are the fields of TensorBoard's own protos that nnc writes
//! (`event.proto`, `summary.proto`, `tensor.proto`, the HParams plugin's
//! `plugin_data.proto`), with their field numbers; prost encodes them. A
//! file is a sequence of TFRecords: the length, its masked CRC-32C, the
//! bytes, their masked CRC-32C.

use super::RunError;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    #[prost(oneof = "Kind", tags = "2, 5, 8")]
    pub kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(float, tag = "2")]
    SimpleValue(f32),
    #[prost(message, tag = "5")]
    Histo(Histogram),
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(double, tag = "1")]
    pub min: f64,
    #[prost(double, tag = "2")]
    pub max: f64,
    #[prost(double, tag = "3")]
    pub num: f64,
    #[prost(double, tag = "4")]
    pub sum: f64,
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// The right edge of each bucket; the first starts at `min`.
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// Only what the HParams plugin's summaries carry: an empty float vector.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(oneof = "Session", tags = "3, 4")]
    pub data: Option<Session>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Session {
    #[prost(message, tag = "3")]
    Start(SessionStartInfo),
    #[prost(message, tag = "4")]
    End(SessionEndInfo),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    #[prost(map = "string, message", tag = "1")]
    pub hparams: HashMap<String, ProtoValue>,
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    /// `tensorboard.hparams.Status`: 1 success, 2 failure.
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `google.protobuf.Value`, the number and string cases.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoValue {
    #[prost(oneof = "Scalar", tags = "2, 3")]
    pub kind: Option<Scalar>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Scalar {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Text(String),
}

const DT_FLOAT: i32 = 1;
const HPARAMS_VERSION: i32 = 0;
const HISTOGRAM_BUCKETS: usize = 30;

pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// A new events file in `dir`; a resumed run gets a file of its own,
    /// which TensorBoard reads after the earlier ones (names sort by time).
    pub(super) fn create(dir: &Path) -> Result<EventWriter, RunError> {
        let now = now_secs();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
        let name = format!("events.out.tfevents.{}.{}.{}.nnc", now as u64, host.trim(), std::process::id());
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| io_error(&path, e))?;
        let mut w = EventWriter { path, file };
        w.write(&Event { wall_time: now, step: 0, what: Some(What::FileVersion("brain.Event:2".into())) })?;
        Ok(w)
    }

    /// One record per call, written straight to the file, so a crash loses
    /// at most the event being written.
    fn write(&mut self, event: &Event) -> Result<(), RunError> {
        let bytes = frame(&prost::Message::encode_to_vec(event));
        self.file.write_all(&bytes).map_err(|e| io_error(&self.path, e))
    }

    fn summary(&mut self, step: u64, value: Vec<SummaryValue>) -> Result<(), RunError> {
        let what = Some(What::Summary(Summary { value }));
        self.write(&Event { wall_time: now_secs(), step: step as i64, what })
    }

    /// The numbers of a `metrics.jsonl` event as scalars: `batch/…` for a
    /// logged step (with `lr` and `samples_per_sec`), `train/…` for an
    /// epoch's means, `eval/…` for an evaluation.
    pub fn event(&mut self, event: &Value) -> Result<(), RunError> {
        let Some((step, scalars)) = scalars(event) else { return Ok(()) };
        let value = scalars
            .into_iter()
            .map(|(tag, v)| SummaryValue { tag, metadata: None, kind: Some(Kind::SimpleValue(v as f32)) })
            .collect();
        self.summary(step, value)
    }

    /// A histogram of each tensor's values at `step`, tagged by its name.
    pub fn histograms<'a>(
        &mut self,
        step: u64,
        tensors: impl Iterator<Item = (&'a str, &'a [f32])>,
    ) -> Result<(), RunError> {
        let value = tensors
            .filter_map(|(name, v)| {
                let histo = histogram(v)?;
                Some(SummaryValue { tag: name.to_string(), metadata: None, kind: Some(Kind::Histo(histo)) })
            })
            .collect();
        self.summary(step, value)
    }

    /// The run's hyperparameters, as the HParams plugin's session start: a
    /// sweep's runs line up in its table, with every scalar as a metric.
    pub fn session_start(&mut self, hparams: &[(String, String)]) -> Result<(), RunError> {
        let hparams = hparams.iter().map(|(k, v)| (k.clone(), proto_value(v))).collect();
        let start = Session::Start(SessionStartInfo { hparams, start_time_secs: now_secs() });
        self.hparams("_hparams_/session_start_info", start)
    }

    pub fn session_end(&mut self, ok: bool) -> Result<(), RunError> {
        let end = Session::End(SessionEndInfo { status: if ok { 1 } else { 2 }, end_time_secs: now_secs() });
        self.hparams("_hparams_/session_end_info", end)
    }

    fn hparams(&mut self, tag: &str, data: Session) -> Result<(), RunError> {
        let content = prost::Message::encode_to_vec(&HParamsPluginData { version: HPARAMS_VERSION, data: Some(data) });
        let plugin_data = Some(PluginData { plugin_name: "hparams".into(), content });
        let empty = TensorProto { dtype: DT_FLOAT, tensor_shape: Some(TensorShape { dim: vec![Dim { size: 0 }] }) };
        let value = SummaryValue {
            tag: tag.into(),
            metadata: Some(SummaryMetadata { plugin_data }),
            kind: Some(Kind::Tensor(empty)),
        };
        self.summary(0, vec![value])
    }
}

/// The step and tagged numbers of a logged event; `None` for events that
/// are not measurements (reloads, restarts).
fn scalars(event: &Value) -> Option<(u64, Vec<(String, f64)>)> {
    let o = event.as_object()?;
    let step = o.get("step")?.as_u64()?;
    let prefix = match o.get("event")?.as_str()? {
        "train_step" => "batch",
        "train" => "train",
        "eval" => "eval",
        _ => return None,
    };
    let tag = |k: &str| match k {
        "lr" | "samples_per_sec" => k.to_string(),
        _ => format!("{prefix}/{k}"),
    };
    let skip = ["step", "epoch", "time"];
    let values = o
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((tag(k), v.as_f64()?)))
        .collect();
    Some((step, values))
}

/// Equal-width buckets between the finite values' extremes; `None` when
/// there is no finite value to draw.
fn histogram(values: &[f32]) -> Option<Histogram> {
    let finite = || values.iter().map(|&v| f64::from(v)).filter(|v| v.is_finite());
    let min = finite().fold(f64::INFINITY, f64::min);
    let max = finite().fold(f64::NEG_INFINITY, f64::max);
    if min > max {
        return None;
    }
    let n = if max > min { HISTOGRAM_BUCKETS } else { 1 };
    let width = (max - min) / n as f64;
    let mut bucket = vec![0.0; n];
    for v in finite() {
        let i = if width > 0.0 { ((v - min) / width) as usize } else { 0 };
        bucket[i.min(n - 1)] += 1.0;
    }
    let bucket_limit = (1..=n).map(|i| if i == n { max } else { min + width * i as f64 }).collect();
    Some(Histogram {
        min,
        max,
        num: finite().count() as f64,
        sum: finite().sum(),
        sum_squares: finite().map(|v| v * v).sum(),
        bucket_limit,
        bucket,
    })
}

/// Numbers stay numbers, so the HParams table can sort and filter them.
fn proto_value(text: &str) -> ProtoValue {
    let kind = match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Scalar::Number(x),
        _ => Scalar::Text(text.to_string()),
    };
    ProtoValue { kind: Some(kind) }
}

/// A TFRecord: length, masked CRC of the length, data, masked CRC of the data.
fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// TFRecord's CRC mask: a CRC of data that holds CRCs is itself weak.
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn now_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn io_error(path: &Path, e: std::io::Error) -> RunError {
    RunError::Io { path: path.to_path_buf(), message: format!("cannot write the TensorBoard events: {e}") }
}

/// Reads an events file back, checking every record's framing and CRCs.
pub fn read(path: &Path) -> Result<Vec<Event>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (head, tail) = rest.split_at_checked(12).ok_or("a record is cut short in its header")?;
        let (len, crc) = head.split_at(8);
        if masked_crc(len).to_le_bytes() != crc {
            return Err("a record's length fails its CRC".into());
        }
        let n = u64::from_le_bytes(len.try_into().map_err(|_| "length")?) as usize;
        let (data, tail) = tail.split_at_checked(n).ok_or("a record is cut short in its data")?;
        let (crc, tail) = tail.split_at_checked(4).ok_or("a record is cut short in its CRC")?;
        if masked_crc(data).to_le_bytes() != crc {
            return Err("a record's data fails its CRC".into());
        }
        events.push(<Event as prost::Message>::decode(data).map_err(|e| e.to_string())?);
        rest = tail;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC-32C check value, and its TFRecord mask worked by hand:
    /// ((c >> 15) | (c << 17)) + 0xa282ead8, modulo 2^32.
    #[test]
    fn crc_is_castagnoli_and_masked() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn histogram_counts_every_finite_value() {
        let h = histogram(&[0.0, 1.0, 2.0, 3.0, f32::NAN, 3.0]).unwrap();
        assert_eq!((h.min, h.max, h.num, h.sum), (0.0, 3.0, 5.0, 9.0));
        assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
        assert_eq!(h.bucket[HISTOGRAM_BUCKETS - 1], 2.0);
        assert_eq!(*h.bucket_limit.last().unwrap(), 3.0);
        let flat = histogram(&[0.5; 4]).unwrap();
        assert_eq!((flat.bucket.clone(), flat.bucket_limit.clone()), (vec![4.0], vec![0.5]));
        assert!(histogram(&[f32::INFINITY]).is_none());
    }

    #[test]
    fn events_round_trip() {
        let dir = std::env::temp_dir().join(format!("nnc-tb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = EventWriter::create(&dir).unwrap();
        w.session_start(&[("width".into(), "64".into()), ("act".into(), "relu".into())]).unwrap();
        let step = serde_json::json!({"event": "train_step", "step": 50, "epoch": 1, "loss": 0.5, "lr": 0.01});
        w.event(&step).unwrap();
        w.event(&serde_json::json!({"event": "reload", "step": 60})).unwrap();
        w.histograms(50, [("dense.w", &[1.0f32, 2.0][..])].into_iter()).unwrap();
        w.session_end(true).unwrap();
        let events = read(&w.path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(events.len(), 5, "the reload event is not a measurement");
        assert_eq!(events[0].what, Some(What::FileVersion("brain.Event:2".into())));
        let Some(What::Summary(s)) = &events[2].what else { panic!("not a summary: {:?}", events[2]) };
        let mut tags: Vec<(&str, Option<&Kind>)> = s.value.iter().map(|v| (v.tag.as_str(), v.kind.as_ref())).collect();
        tags.sort_by_key(|t| t.0);
        assert_eq!(tags, [("batch/loss", Some(&Kind::SimpleValue(0.5))), ("lr", Some(&Kind::SimpleValue(0.01)))]);
        assert_eq!(events[2].step, 50);
        let Some(What::Summary(s)) = &events[1].what else { panic!("not a summary") };
        let content = &s.value[0].metadata.as_ref().unwrap().plugin_data.as_ref().unwrap().content;
        let Some(Session::Start(start)) = <HParamsPluginData as prost::Message>::decode(&content[..]).unwrap().data
        else {
            panic!("not a session start")
        };
        assert_eq!(start.hparams["width"].kind, Some(Scalar::Number(64.0)));
        assert_eq!(start.hparams["act"].kind, Some(Scalar::Text("relu".into())));
    }
}
