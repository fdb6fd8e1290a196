//! The sample data in memory: stream records, courses, drivers and tags,
//! loaded from a folder or given by a test, with what the filters need.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{STREAM_PAGE_SIZE, SampleContent};
use crate::learner::LearnerId;

/// One stream record as sent, with what the filters need.
pub(super) struct Record {
    pub(super) raw: Value,
    pub(super) created: DateTime<Utc>,
    pub(super) updated: DateTime<Utc>,
    /// Filter form, `driver-281474`.
    pub(super) learner: String,
    pub(super) course: String,
    pub(super) status: String,
    pub(super) overdue: bool,
}

pub(super) struct CourseRec {
    pub(super) raw: Value,
    pub(super) id: String,
    pub(super) category: Option<String>,
    pub(super) status: Option<String>,
}

pub(super) struct Data {
    pub(super) stream: Vec<Record>,
    pub(super) courses: Vec<CourseRec>,
    /// Category id of each course id.
    pub(super) categories: HashMap<String, String>,
    /// Active and deactivated drivers; replaceable while serving.
    pub(super) drivers: std::sync::RwLock<(Vec<Value>, Vec<Value>)>,
    pub(super) tags: Vec<Value>,
    pub(super) requests: AtomicU64,
    /// Nanoseconds: versions modified at or after it are not served yet.
    pub(super) now: AtomicI64,
    /// 1-based stream page from which requests fail (0: never).
    pub(super) fail_from_page: AtomicU64,
    pub(super) page_size: usize,
}

impl Data {
    pub(super) fn load(dir: &Path) -> anyhow::Result<Data> {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("stream-page-") && n.ends_with(".json"))
            })
            .collect();
        pages.sort();
        let mut stream = Vec::new();
        for page in &pages {
            for (i, raw) in read_page(page)?.into_iter().enumerate() {
                let record = Record::parse(raw)
                    .with_context(|| format!("{}: record {} of data", page.display(), i + 1))?;
                stream.push(record);
            }
        }
        let courses_path = dir.join("courses.json");
        let mut courses = Vec::new();
        for (i, raw) in read_page(&courses_path)?.into_iter().enumerate() {
            let course = CourseRec::parse(raw)
                .with_context(|| format!("{}: course {}", courses_path.display(), i + 1))?;
            courses.push(course);
        }
        let categories = courses
            .iter()
            .filter_map(|c| Some((c.id.clone(), c.category.clone()?)))
            .collect();
        let drivers = |status: &str| -> anyhow::Result<Vec<Value>> {
            let path = dir.join(format!("drivers-{status}.json"));
            if path.exists() {
                read_page(&path)
            } else {
                Ok(Vec::new())
            }
        };
        let tags_path = dir.join("tags.json");
        let tags = if tags_path.exists() {
            read_page(&tags_path)?
        } else {
            Vec::new()
        };
        Ok(Data {
            stream,
            courses,
            categories,
            drivers: std::sync::RwLock::new((drivers("active")?, drivers("deactivated")?)),
            tags,
            requests: AtomicU64::new(0),
            now: AtomicI64::new(i64::MAX),
            fail_from_page: AtomicU64::new(0),
            page_size: STREAM_PAGE_SIZE,
        })
    }

    pub(super) fn from_content(c: SampleContent) -> anyhow::Result<Data> {
        let stream = c
            .stream
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Record::parse(raw).with_context(|| format!("stream record {}", i + 1)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let courses = c
            .courses
            .into_iter()
            .enumerate()
            .map(|(i, raw)| CourseRec::parse(raw).with_context(|| format!("course {}", i + 1)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let categories = courses
            .iter()
            .filter_map(|c| Some((c.id.clone(), c.category.clone()?)))
            .collect();
        Ok(Data {
            stream,
            courses,
            categories,
            drivers: std::sync::RwLock::new((c.active, c.deactivated)),
            tags: c.tags,
            requests: AtomicU64::new(0),
            now: AtomicI64::new(i64::MAX),
            fail_from_page: AtomicU64::new(0),
            page_size: if c.page_size == 0 {
                STREAM_PAGE_SIZE
            } else {
                c.page_size
            },
        })
    }
}

/// The `data` of a page file.
pub(super) fn read_page(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    match body.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        _ => bail!(
            "{}: expected a page, {{\"data\": [...], \"pagination\": {{...}}}}",
            path.display()
        ),
    }
}

pub(super) fn str_field<'v>(v: &'v Value, pointer: &str) -> anyhow::Result<&'v str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .with_context(|| format!("missing string {}", &pointer[1..].replace('/', ".")))
}

pub(super) fn time_field(v: &Value, pointer: &str) -> anyhow::Result<DateTime<Utc>> {
    let text = str_field(v, pointer)?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{} `{text}` is not RFC 3339", &pointer[1..]))
}

impl Record {
    pub(super) fn parse(raw: Value) -> anyhow::Result<Record> {
        let learner_id = str_field(&raw, "/learner/id")?;
        let kind = raw
            .pointer("/learner/type")
            .and_then(Value::as_str)
            .unwrap_or("");
        Ok(Record {
            created: time_field(&raw, "/createdAtTime")?,
            updated: time_field(&raw, "/updatedAtTime")?,
            learner: LearnerId::from_wire(learner_id, kind).as_str().to_string(),
            course: str_field(&raw, "/course/id")?.to_string(),
            status: str_field(&raw, "/status")?.to_string(),
            overdue: raw
                .get("isOverdue")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            raw,
        })
    }
}

impl CourseRec {
    pub(super) fn parse(raw: Value) -> anyhow::Result<CourseRec> {
        Ok(CourseRec {
            id: str_field(&raw, "/id")?.to_string(),
            category: raw
                .pointer("/category/id")
                .and_then(Value::as_str)
                .map(str::to_string),
            status: raw
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_string),
            raw,
        })
    }
}
