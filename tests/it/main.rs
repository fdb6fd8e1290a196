//! trainwatch's integration tests, one crate (one binary to build and link)
//! instead of one per file. Each module is a former `tests/<name>.rs`, so a
//! failure still names its file: `mirror::some_test`. Run one of them with
//! `cargo test --test it mirror::`.

// The harness (TestRun) and the helpers shared by the modules below.
mod architecture;
mod support;

mod common;
mod render_fixture;
mod sample_support;
mod smtp_support;
mod webhook_support;

mod archive_streamed;
mod broken_pipe;
mod changes_agree;
mod changes_email;
mod cli_export;
mod config_bounds;
mod config_errors;
mod config_example;
mod config_resolve;
mod config_retention;
mod config_store;
mod config_teams;
mod daemon_binary;
mod daemon_core;
mod daemon_scheduler;
mod deliver_outbox;
mod deliver_resume;
mod deliver_runs;
mod escalation_outbox;
mod export_out;
mod job_fanout;
mod mirror;
mod mirror_bulk;
mod mirror_columns;
mod mirror_load;
mod numbers_agree;
mod outbox_binary;
mod properties;
mod rate_limiter;
mod render_limits;
mod render_templates;
mod replicas_binary;
mod report_rollup;
mod sample_config;
mod sample_reports;
mod sample_server;
mod samsara_bounds;
mod samsara_client;
mod samsara_fixtures;
mod schedule_croner;
mod schedule_fires;
mod schedule_list;
mod server_health;
mod server_metrics;
mod shared_rate_limit;
mod sink;
mod smtp_send;
mod state_concurrency;
mod store_migrate;
mod streamed_binary;
mod teams_tags;
mod webhook_msteams_json;
mod webhook_slack;
mod windows;
