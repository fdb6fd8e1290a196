//! trainwatch turns Samsara training-assignment data into scheduled reports.
//!
//! # Layout
//! Data flows one way: `config` → `window` → `samsara` (fetch) → report → deliver.
//! - [`config`]: raw TOML → typed [`config::Config`], every problem at once with file:line:col.
//! - [`check`]: the config checks that need templates and reports (the dry render); `check::load` is the full load.
//! - [`defaults`]: every default value, defined once.
//! - [`mailbox`]: `Name <address>` parsed once, for the config and the email sender.
//! - [`status`]: a training assignment's status (re-exported by `samsara`).
//! - [`window`]: pure (fire time, timezone, spec) → `[start, end)`.
//! - [`schedule`]: pure (cron, timezone, instant) → fire instants, DST-correct.
//! - [`samsara`]: the API client; the only place that speaks HTTP to Samsara.
//! - [`data`]: a run's fetched input (`JobData`) and the stream query it was fetched with.
//! - [`job`]: the one place that sequences a run (window → fetch → names → reports).
//! - [`ledger`]: the deliveries' claim → send → record protocol, and resume.
//! - [`report`]: the rollup into the report data every template sees.
//! - [`render`]: Tera templates → email bodies, Slack/Teams/JSON payloads, archive HTML.
//! - [`sink`]: each webhook kind (Slack, Teams, JSON) in one module, all in one list: names, escaping, limits, headers, success.
//! - [`deliver`]: where rendered reports leave: SMTP, webhooks, archive snapshots.
//! - [`store`]: run history and the delivery ledger (SQLite).
//! - [`ratelimit`]: request pacing (in-process GCRA) and the token's request slots, shared by the processes on one state store; built once by its owner, passed in.
//! - [`http`]: outgoing HTTP: one client builder, one retry loop, one failure classification.
//! - [`errors`]: one way to write an error with its causes.
//! - [`export`]: a job's window fetched and written as flat rows.
//! - [`init`]: `trainwatch init`: the token's scopes checked, a first config written.
//! - [`cli`]: the subcommands; `main.rs` only parses arguments and maps errors to exit codes.
//! - [`retry`]: which failures retry and how long to wait; shared by the client and the senders.
//! - [`daemon`]: fires → runs: no overlap, catch-up, drained shutdown.
//! - [`service`]: `trainwatch run`, the long-running service around the daemon.
//! - [`memory`]: what the start and each run leave behind handed back once nothing runs (heap trimmed, the binary's pages unmapped).
//! - [`learner`]: the one canonical learner id form.
//! - [`sample`]: bundled sample data served as the Samsara API on loopback (`samsara.sample_data`).
//! - [`metrics`]: run, delivery and API counters in the Prometheus text format.
//! - [`server`]: the optional `[server]` listener: `/healthz` and `/metrics`.
//! - [`names`]: untrusted names kept as data: path components, one-line text, CSV cells.

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod data;
pub mod defaults;
pub mod deliver;
pub mod errors;
pub mod export;
pub mod http;
pub mod init;
pub mod job;
pub mod learner;
pub mod ledger;
pub mod mailbox;
pub mod memory;
pub mod metrics;
pub mod mirror;
pub mod names;
pub mod outbox;
pub mod ratelimit;
pub mod render;
pub mod report;
pub mod retry;
pub mod sample;
pub mod samsara;
pub mod schedule;
pub mod server;
pub mod service;
pub mod sink;
pub mod status;
pub mod store;
pub mod teams;
pub mod window;
