//! fetch → reports → outbox: the one sequence a run, `preview`,
//! `run-once --dry-run` and `export` share.

use chrono::{DateTime, Utc};

use super::JobData;
use crate::config::{Config, Job};
use crate::outbox::Outbox;
use crate::render::Renderer;
use crate::samsara::Client;

/// What a run is prepared with: the job, its config, and where it reads.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub config: &'a Config,
    pub job: &'a Job,
    pub client: &'a Client,
}

/// How far a preparation goes.
#[derive(Clone, Copy)]
pub enum Upto<'a> {
    /// The fetch alone, without the earlier states a report is compared
    /// with (`export`'s rows): the outbox stays empty, and a current state
    /// from the mirror is not held but read as the rows are written
    /// ([`JobData::streamed`]).
    Data,
    /// Fetch, reports, and every delivery rendered with this renderer.
    Outbox(&'a Renderer),
}

/// A fetched, rolled-up and rendered run: nothing sent yet.
#[derive(Debug)]
pub struct Prepared {
    pub fire: DateTime<Utc>,
    pub data: JobData,
    pub outbox: Outbox,
}

impl Context<'_> {
    /// Fetches the job as fired at `fire` (`last_success_end` feeds
    /// `since_last_run` windows), and, `upto` the outbox, builds its
    /// reports (generated at `generated_at`) and renders every delivery.
    pub async fn prepare(
        self,
        fire: DateTime<Utc>,
        last_success_end: Option<DateTime<Utc>>,
        generated_at: DateTime<Utc>,
        upto: Upto<'_>,
    ) -> anyhow::Result<Prepared> {
        let data = self.fetch(fire, last_success_end, upto).await?;
        match upto {
            Upto::Data => Ok(Prepared {
                fire,
                data,
                outbox: Outbox::default(),
            }),
            Upto::Outbox(renderer) => self.render(fire, data, generated_at, renderer),
        }
    }

    /// The first half of [`Context::prepare`]: the fetch, with the earlier
    /// states only when `upto` the outbox.
    pub async fn fetch(
        self,
        fire: DateTime<Utc>,
        last_success_end: Option<DateTime<Utc>>,
        upto: Upto<'_>,
    ) -> anyhow::Result<JobData> {
        let Self {
            config,
            job,
            client,
        } = self;
        match upto {
            // Rows written as they are read: a current state from the
            // mirror is not held.
            Upto::Data => {
                super::fetch_with(config, job, client, fire, last_success_end, None, false).await
            }
            Upto::Outbox(renderer) => {
                // Without detail lists, nothing that grows with the state is
                // held: it is read once for the reports and again for each
                // file of rows.
                let details = renderer.keeps(config, job).details;
                let (history, hold) = (Some(details), details);
                super::fetch_with(config, job, client, fire, last_success_end, history, hold).await
            }
        }
    }

    /// The second half of [`Context::prepare`]: `data`'s reports, and
    /// every delivery of them rendered and addressed.
    pub fn render(
        self,
        fire: DateTime<Utc>,
        data: JobData,
        generated_at: DateTime<Utc>,
        renderer: &Renderer,
    ) -> anyhow::Result<Prepared> {
        let Self { config, job, .. } = self;
        // Only the lists some delivery reads: a million rows nobody reads cost gigabytes.
        let keep = renderer.keeps(config, job);
        // And of the rows only those read in memory: the files are written from `data`.
        let held = renderer.rows_held(config, job);
        let mut data = data;
        let reports = super::reports_holding(config, job, &data, generated_at, keep, held)?;
        data.settle_counts();
        let outbox = crate::outbox::build_for(config, job, &data, &reports, renderer)?;
        Ok(Prepared { fire, data, outbox })
    }
}
