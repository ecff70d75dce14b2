//! `sweep export --format tensorboard --out DIR`: TensorBoard event files, so that TensorBoard's
//! Scalars tab shows every trial's learning curves and its HParams tab the sweep as a table and
//! parallel coordinates.
//!
//! Layout: `DIR/<trial-id>/` holds one event file per trial (its scalars, `val/iou` at step =
//! epoch with the epoch's wall time, and the HParams session start and end), and `DIR/` itself
//! the HParams experiment (the hparams and metrics the plugin lays out). An event file is a
//! TFRecord stream of `Event` protobufs: per record, the length (u64 little-endian), its masked
//! CRC-32C, the bytes, their masked CRC-32C. The file names are fixed by the trial's creation
//! time, and each file is written whole to a temporary name and renamed, so exporting again
//! replaces the files instead of adding a second set that TensorBoard would read twice.
//!
//! The messages are declared below with `prost`, keeping only the fields we write, under the
//! field numbers of TensorBoard's `event.proto`, `summary.proto`, `plugins/hparams/api.proto` and
//! `plugin_data.proto` and of `google/protobuf/struct.proto`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use prost::Message as _;
use serde_json::Value;

use super::ExportError;
use crate::store::TrialData;
use crate::store::TrialStatus;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorboardReport {
    pub trials: usize,
    pub scalars: usize,
    /// The hparams the HParams tab shows, by dotted key.
    pub hparams: Vec<String>,
}

/// A metric's TensorBoard tag: `val_iou` -> `val/iou`, so that TensorBoard groups by split.
pub fn scalar_tag(split: &str, name: &str) -> String {
    format!("{split}/{name}")
}

/// Writes the event files of `records` under `dir`.
/// `groups`: each trial's seed group ([`super::Gathered`]), its HParams session group.
pub fn export(dir: &Path, records: &[TrialData], groups: &BTreeMap<String, String>) -> Result<TensorboardReport, ExportError> {
    let hparams = hparams(records);
    let keys = hparams.iter().map(|h| h.key.clone()).collect();
    let report = TensorboardReport { trials: records.len(), scalars: records.iter().map(|r| r.metrics.len()).sum(), hparams: keys };
    for rec in records {
        let events = trial_events(rec, &hparams, groups.get(&rec.row.id).map(String::as_str));
        write_events(&dir.join(&rec.row.id), rec.row.created, &events)?;
    }
    let created = records.iter().map(|r| r.row.created).fold(f64::INFINITY, f64::min);
    let created = if created.is_finite() { created } else { crate::util::now_unix() };
    write_events(dir, created, &[file_version(created), experiment_event(records, &hparams, created)])?;
    Ok(report)
}

/// The trial's events in order: the file version, the HParams session start, every scalar by
/// epoch, and the session end once the trial has ended.
fn trial_events(rec: &TrialData, hparams: &[HParam], group: Option<&str>) -> Vec<Event> {
    let start = rec.start_time();
    let mut events = vec![file_version(start), summary_event(start, 0, session_start(rec, hparams, group, start))];
    let mut metrics: Vec<_> = rec.metrics.iter().collect();
    metrics.sort_by(|a, b| (a.epoch, &a.split, &a.name).cmp(&(b.epoch, &b.split, &b.name)));
    events.extend(metrics.into_iter().map(|m| {
        let value = SummaryValue { tag: scalar_tag(&m.split, &m.name), simple_value: Some(m.value as f32), metadata: None };
        Event { wall_time: m.wall, step: m.epoch, what: Some(What::Summary(Summary { value: vec![value] })) }
    }));
    // What the trial costs, as `cost/<name>` at the epoch each was recorded (`train/seconds`
    // already holds each epoch's seconds).
    events.extend(cost_keys().filter_map(|key| rec.row.metrics.get(key).map(|s| (key, s))).map(|(key, s)| {
        let value = SummaryValue { tag: scalar_tag("cost", key), simple_value: Some(s.last as f32), metadata: None };
        Event { wall_time: super::mlflow::cost_time(&rec.row), step: s.last_epoch, what: Some(What::Summary(Summary { value: vec![value] })) }
    }));
    if rec.row.status.is_final() {
        let end = rec.row.finished.unwrap_or(start);
        let last_epoch = rec.row.epochs();
        events.push(summary_event(end, last_epoch, session_end(rec.row.status, end)));
    }
    events
}

/// A setting the HParams tab shows.
#[derive(Debug, Clone, PartialEq)]
struct HParam {
    key: String,
    source: Source,
}

/// Where a trial's value of an hparam comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// A swept parameter, as recorded (a trial whose condition left it out has no value).
    Param,
    /// Any other setting, from the resolved config.
    Setting,
    /// A tag people put on the trial (`tag.<name>`; a trial without it has no value).
    Tag,
}

impl HParam {
    fn value(&self, rec: &TrialData) -> Option<Value> {
        match self.source {
            Source::Param => rec.row.params.get(&self.key).cloned(),
            Source::Setting => rec.row.settings.get(&self.key).cloned(),
            Source::Tag => rec.row.tags.get(self.key.strip_prefix("tag.")?).map(|v| Value::String(v.clone())),
        }
    }
}

/// The settings the HParams tab shows: every swept parameter of the exported trials, every
/// other setting whose value differs between them, and every tag, as `tag.<name>`.
fn hparams(records: &[TrialData]) -> Vec<HParam> {
    let swept: BTreeSet<&String> = records.iter().flat_map(|r| r.row.params.keys()).collect();
    let mut keys: BTreeSet<&String> = swept.clone();
    if let Some(first) = records.first() {
        keys.extend(first.row.settings.iter().filter(|(k, v)| records.iter().any(|r| r.row.settings.get(*k) != Some(*v))).map(|(k, _)| k));
    }
    let source = |k: &String| if swept.contains(k) { Source::Param } else { Source::Setting };
    let mut out: Vec<HParam> = keys.into_iter().map(|k| HParam { key: k.clone(), source: source(k) }).collect();
    let tags: BTreeSet<&String> = records.iter().flat_map(|r| r.row.tags.keys()).collect();
    out.extend(tags.into_iter().map(|t| HParam { key: format!("tag.{t}"), source: Source::Tag }));
    out
}

fn proto_value(v: &Value) -> ProtoValue {
    let kind = match v {
        Value::Number(n) => Kind::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => Kind::Bool(*b),
        Value::String(s) => Kind::String(s.clone()),
        other => Kind::String(other.to_string()),
    };
    ProtoValue { kind: Some(kind) }
}

/// The HParams session of a trial; its `group_name` is its seed group, where it has one, so that
/// TensorBoard's HParams tab shows a configuration's seeds as one row with their mean.
fn session_start(rec: &TrialData, hparams: &[HParam], group: Option<&str>, start: f64) -> HParamsPluginData {
    let values = hparams.iter().filter_map(|h| h.value(rec).map(|v| (h.key.clone(), proto_value(&v)))).collect();
    let info = SessionStartInfo { hparams: values, group_name: group.unwrap_or(&rec.row.id).to_string(), start_time_secs: start };
    HParamsPluginData { version: 0, data: Some(PluginPayload::SessionStart(info)) }
}

/// TensorBoard's session status of a trial: it has no word for an early stop, so a pruned trial
/// (or a trial stopped by hand) is `STATUS_UNKNOWN` (its status is the `sweep.status` of the MLflow export).
pub fn session_status(status: TrialStatus) -> SessionStatus {
    match status {
        TrialStatus::Completed => SessionStatus::Success,
        TrialStatus::Failed | TrialStatus::Diverged => SessionStatus::Failure,
        TrialStatus::Running | TrialStatus::Queued => SessionStatus::Running,
        TrialStatus::Pruned | TrialStatus::Stopped | TrialStatus::Infeasible => SessionStatus::Unknown,
    }
}

fn session_end(status: TrialStatus, end: f64) -> HParamsPluginData {
    let info = SessionEndInfo { status: session_status(status) as i32, end_time_secs: end };
    HParamsPluginData { version: 0, data: Some(PluginPayload::SessionEnd(info)) }
}

fn experiment_event(records: &[TrialData], hparams: &[HParam], created: f64) -> Event {
    let sweeps: BTreeSet<&str> = records.iter().map(|r| r.row.sweep.as_str()).collect();
    let hparam_infos = hparams.iter().map(|h| hparam_info(records, h)).collect();
    let mut metrics: BTreeSet<(String, String)> = records.iter().flat_map(|r| r.metrics.iter().map(|m| (m.split.clone(), m.name.clone()))).collect();
    metrics.extend(records.iter().flat_map(|r| cost_keys().filter(|k| r.row.metrics.contains_key(*k)).map(|k| ("cost".to_string(), k.to_string()))));
    let metric_infos = metrics
        .into_iter()
        .map(|(split, name)| MetricInfo {
            name: Some(MetricName { group: String::new(), tag: scalar_tag(&split, &name) }),
            dataset_type: match split.as_str() {
                "train" => DatasetType::Training,
                "val" => DatasetType::Validation,
                _ => DatasetType::Unknown,
            } as i32,
        })
        .collect();
    let experiment = Experiment {
        name: sweeps.iter().copied().collect::<Vec<_>>().join(", "),
        description: format!("exported by sweep {}", env!("CARGO_PKG_VERSION")),
        time_created_secs: created,
        hparam_infos,
        metric_infos,
    };
    summary_event(created, 0, HParamsPluginData { version: 0, data: Some(PluginPayload::Experiment(experiment)) })
}

/// The costs exported as scalars: every one but `train_seconds`, which `train/seconds` holds
/// epoch by epoch.
fn cost_keys() -> impl Iterator<Item = &'static str> {
    crate::config::COST_METRICS.into_iter().filter(|k| *k != "train_seconds")
}

/// An hparam's type and domain from the values the trials took: an interval for numbers, the
/// values seen for booleans and strings (anything else is shown as its JSON text).
fn hparam_info(records: &[TrialData], h: &HParam) -> HParamInfo {
    let values: Vec<Value> = records.iter().filter_map(|r| h.value(r)).collect();
    let distinct: BTreeSet<String> = values.iter().map(|v| v.to_string()).collect();
    let (data_type, domain) = if !values.is_empty() && values.iter().all(|v| v.is_number()) {
        let xs = values.iter().filter_map(|v| v.as_f64());
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        (DataType::Float64, Domain::Interval(Interval { min_value: lo, max_value: hi }))
    } else {
        let all_bool = !values.is_empty() && values.iter().all(|v| v.is_boolean());
        let mut seen: Vec<ProtoValue> = Vec::new();
        for v in &values {
            let p = if all_bool { proto_value(v) } else { proto_value(&Value::String(super::mlflow::param_value(v))) };
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        (if all_bool { DataType::Bool } else { DataType::String }, Domain::Discrete(ListValue { values: seen }))
    };
    HParamInfo { name: h.key.clone(), data_type: data_type as i32, domain: Some(domain), differs: distinct.len() > 1 }
}

fn file_version(wall_time: f64) -> Event {
    Event { wall_time, step: 0, what: Some(What::FileVersion("brain.Event:2".to_string())) }
}

/// An event holding one HParams plugin summary (metadata only, as TensorBoard's own writers do).
fn summary_event(wall_time: f64, step: i64, data: HParamsPluginData) -> Event {
    let tag = match data.data {
        Some(PluginPayload::Experiment(_)) => "_hparams_/experiment",
        Some(PluginPayload::SessionStart(_)) => "_hparams_/session_start_info",
        _ => "_hparams_/session_end_info",
    };
    let metadata = SummaryMetadata { plugin_data: Some(PluginData { plugin_name: "hparams".to_string(), content: data.encode_to_vec() }) };
    let value = SummaryValue { tag: tag.to_string(), simple_value: None, metadata: Some(metadata) };
    Event { wall_time, step, what: Some(What::Summary(Summary { value: vec![value] })) }
}

/// Writes `events` as `dir/events.out.tfevents.<created>.sweep`, replacing an earlier export.
fn write_events(dir: &Path, created: f64, events: &[Event]) -> Result<PathBuf, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("events.out.tfevents.{:010}.sweep", created.max(0.0) as u64));
    let mut bytes = Vec::new();
    for event in events {
        append_record(&mut bytes, &event.encode_to_vec());
    }
    crate::util::atomic_write(&path, &bytes).map_err(io(&path))?;
    Ok(path)
}

/// TFRecord framing: length, masked CRC of the length, data, masked CRC of the data.
pub fn append_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// TFRecord's masked CRC-32C (Castagnoli): rotated right by 15 bits plus a constant, so that a
/// CRC stored inside the data it covers does not checksum to a fixed point.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

// `tensorboard.Event` and the parts of `tensorboard.Summary` we write.

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
    /// One member of the `value` oneof: a scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
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

// `tensorboard.hparams`: the plugin's data (plugin_data.proto) and its API types (api.proto).

#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(oneof = "PluginPayload", tags = "2, 3, 4")]
    pub data: Option<PluginPayload>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PluginPayload {
    #[prost(message, tag = "2")]
    Experiment(Experiment),
    #[prost(message, tag = "3")]
    SessionStart(SessionStartInfo),
    #[prost(message, tag = "4")]
    SessionEnd(SessionEndInfo),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Experiment {
    #[prost(string, tag = "6")]
    pub name: String,
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(double, tag = "3")]
    pub time_created_secs: f64,
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "DataType", tag = "4")]
    pub data_type: i32,
    #[prost(oneof = "Domain", tags = "5, 6")]
    pub domain: Option<Domain>,
    #[prost(bool, tag = "7")]
    pub differs: bool,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Domain {
    #[prost(message, tag = "5")]
    Discrete(ListValue),
    #[prost(message, tag = "6")]
    Interval(Interval),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    Unset = 0,
    String = 1,
    Bool = 2,
    Float64 = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Interval {
    #[prost(double, tag = "1")]
    pub min_value: f64,
    #[prost(double, tag = "2")]
    pub max_value: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
    #[prost(enumeration = "DatasetType", tag = "5")]
    pub dataset_type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricName {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub tag: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum DatasetType {
    Unknown = 0,
    Training = 1,
    Validation = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, ProtoValue>,
    #[prost(string, tag = "4")]
    pub group_name: String,
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    #[prost(enumeration = "SessionStatus", tag = "1")]
    pub status: i32,
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum SessionStatus {
    Unknown = 0,
    Success = 1,
    Failure = 2,
    Running = 3,
}

// `google.protobuf.Value` and `ListValue`, for hparam values and discrete domains.

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoValue {
    #[prost(oneof = "Kind", tags = "2, 3, 4")]
    pub kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<ProtoValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C is the Castagnoli polynomial (its standard check value), and the mask of a zero CRC
    /// is TFRecord's constant. (TensorBoard's own reader checks real files in tests/export.rs.)
    #[test]
    fn masked_crc_is_tfrecords() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283, "CRC-32C check value");
        assert_eq!(masked_crc(b""), 0xa282_ead8);
    }

    #[test]
    fn a_record_is_length_crc_data_crc() {
        let mut out = Vec::new();
        append_record(&mut out, b"abc");
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(&out[15..], &masked_crc(b"abc").to_le_bytes());
    }
}
