//! The automation worker: a loop over [`Worker::try_execute_one`].
//!
//! Each step takes a batch of events from the outbox (at most one per
//! subject), runs the matching hooks of every enabled script of each
//! event's workspace on snapshots of the subjects, and applies the
//! successful runs' plans in a transaction that also records the runs,
//! marks the events done and claims the next batch (in several, each
//! bounded by the bytes its plans write, when the plans are large); the tag changes it
//! makes write the next events, one step deeper. An error leaves the
//! events to be retried with backoff, and failed after the last attempt.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{automation_event, script, script_run, segment};
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use tokio::sync::Notify;
use tracing::Instrument;

use super::apply::{Run, apply_runs, prune_runs, record_runs};
use super::listener::{OutboxListener, ScriptFailure};
use super::script::{CompiledScript, HookEvent, HookKind, RunOutcome};
use super::scripts::{self, Scripts};
use super::{AutomationError, cause_of, hook_of, snapshot};
use crate::db::{WriteTxn, begin_write_first};
use crate::error::{Code, ErrorCode, INTERNAL_MESSAGE};
use crate::metrics::Metrics;
use crate::outbox;
use crate::segments::store::{self as segment_store, TagActions};
use crate::subjects::SubjectKind;
use crate::tagging::assign::{Actor, apply_tags};
use crate::tags::feed::ChangeFeed;
use crate::tags::write::Target;
use crate::tags::{Op, Source, history, store};
use crate::time::Clock;
use crate::vocab::EventKind;

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Deepest cascade of automated changes; deeper ones stop with an error.
    pub max_depth: i32,
    /// Attempts before an event is kept as failed.
    pub max_attempts: i32,
    /// How often to look for work when nothing wakes the worker.
    pub poll_interval: Duration,
    /// Runs kept per script; older ones are deleted.
    pub runs_kept: u64,
    /// Events claimed and applied together, in one transaction.
    pub batch: u64,
    /// How long to let events gather before claiming a batch that would not be full.
    pub gather: Duration,
    /// How long a claim lasts before another worker may take the event again.
    pub lease: Duration,
    /// Bytes of plans applied in one write transaction: a batch whose plans
    /// write more is applied in several, so no batch holds the database's
    /// writer for long (0: the whole batch in one).
    pub batch_bytes: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            max_depth: 8,
            max_attempts: 5,
            poll_interval: Duration::from_secs(1),
            runs_kept: 1000,
            batch: 64,
            gather: Duration::from_millis(1),
            lease: outbox::LEASE,
            batch_bytes: 256 * 1024,
        }
    }
}

/// Part of a batch applied in one write transaction.
struct Chunk<'a> {
    /// The events it finishes.
    events: &'a [automation_event::Model],
    jobs: Vec<Job>,
    /// For the batch's last chunk: what only it does.
    last: Option<Last>,
}

/// What the last chunk of a batch does besides its jobs.
struct Last {
    /// (workspace, event kind) that no script hears: pending events done.
    unheard: Vec<(i64, EventKind)>,
    /// Whether to prune the runs log of the scripts that ran.
    prune: bool,
    /// Whether the next claim looks for events whose worker died.
    expired: outbox::Expired,
}

/// What gathering a batch found: the jobs to run, and the (workspace,
/// event kind) pairs nobody hears, whose pending events are done too.
#[derive(Default)]
struct Gathered {
    jobs: Vec<Job>,
    unheard: Vec<(i64, EventKind)>,
}

/// What a workspace's events may meet.
struct Listeners {
    /// The enabled scripts, compiled.
    scripts: Vec<(Arc<script::Model>, Arc<CompiledScript>)>,
    /// The segments the events name.
    segments: HashMap<i64, Arc<segment::Model>>,
    /// The event kinds the listener (webhooks) keeps.
    listened: Vec<EventKind>,
}

/// An event that a script's hook or a segment's actions hear.
struct Heard<'a> {
    event: &'a automation_event::Model,
    hook: HookKind,
    scripts: Vec<(Arc<script::Model>, Arc<CompiledScript>)>,
    segment: Option<Arc<segment::Model>>,
}

impl Listeners {
    /// The events something hears. The others are completed with the
    /// batch; when no script hears a kind of tag event in the workspace
    /// (and the listener does not keep it), its pending others are done too
    /// (`unheard`; segment events differ by segment: each is looked at).
    fn hear<'a>(
        &self,
        workspace_id: i64,
        events: Vec<&'a automation_event::Model>,
        unheard: &mut Vec<(i64, EventKind)>,
    ) -> Vec<Heard<'a>> {
        let mut heard = Vec::new();
        for event in events {
            let hook = hook_of(event.kind);
            let scripts: Vec<_> = self
                .scripts
                .iter()
                .filter(|(_, compiled)| compiled.has_hook(hook))
                .cloned()
                .collect();
            let segment = event
                .segment_id
                .and_then(|id| self.segments.get(&id).cloned());
            let triggers = segment
                .as_ref()
                .is_some_and(|s| !trigger_actions(s, event.kind).is_empty());
            if scripts.is_empty() && !triggers {
                let kind = (workspace_id, event.kind);
                if !event.kind.is_segment_event()
                    && !self.listened.contains(&event.kind)
                    && !unheard.contains(&kind)
                {
                    unheard.push(kind);
                }
            } else {
                heard.push(Heard {
                    event,
                    hook,
                    scripts,
                    segment,
                });
            }
        }
        heard
    }
}

/// What applying a chunk's jobs produced, for [`Worker::finish`].
#[derive(Default)]
struct Applied {
    /// The runs to record.
    records: Vec<script_run::ActiveModel>,
    /// Events stopped at the depth limit, with their error.
    stopped: Vec<(i64, String)>,
    /// The failed runs, for the listener.
    script_failures: Vec<ScriptFailure>,
}

/// Splits jobs, in order, into chunks whose plans write at most
/// `max_bytes` together (0: no bound); a job larger than that is a chunk of
/// its own. There is always at least one chunk (maybe empty): the last
/// one finishes the batch.
fn chunk_by_bytes(jobs: Vec<Job>, max_bytes: usize) -> Vec<Vec<Job>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Job> = Vec::new();
    let mut bytes = 0usize;
    for job in jobs {
        let size = job.plan_bytes();
        if max_bytes > 0 && !current.is_empty() && bytes.saturating_add(size) > max_bytes {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        current.push(job);
    }
    chunks.push(current);
    chunks
}

/// One event's hooks to run.
struct Job {
    event_id: i64,
    /// The segment entered or left (segment events), for its actions.
    segment: Option<Arc<segment::Model>>,
    hook_event: HookEvent,
    scripts: Vec<(Arc<script::Model>, Arc<CompiledScript>)>,
    outcomes: Vec<RunOutcome>,
}

impl Job {
    /// Bytes the plans of the job's runs write (a failed run's plan is
    /// empty), with a little for each run and action, which write rows
    /// whatever their size.
    fn plan_bytes(&self) -> usize {
        self.outcomes
            .iter()
            .map(|outcome| {
                let actions: usize = outcome
                    .actions
                    .iter()
                    .map(|action| action.bytes().saturating_add(64))
                    .sum();
                actions.saturating_add(256)
            })
            .sum()
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A batch of this many events was handled (or its failure recorded).
    Done(usize),
    /// No event was due.
    Empty,
}

/// The worker: shares the scripts (and their compiled cache) with the server.
#[derive(Clone)]
pub struct Worker {
    pub db: DatabaseConnection,
    pub scripts: Arc<Scripts>,
    pub wake: Arc<Notify>,
    pub settings: WorkerSettings,
    /// Batches handled, for pruning the runs log now and then.
    pub batches: Arc<AtomicU64>,
    /// What segment filters read as `now` when the worker's changes move subjects.
    pub clock: Clock,
    /// Counts the script runs it records (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// The next batch, claimed in the transaction that finished the last one.
    pub next: Arc<Mutex<Vec<automation_event::Model>>>,
    /// Told when the worker's changes are committed (subscriptions).
    pub feed: ChangeFeed,
    /// Hears the events as they are completed (webhooks).
    pub listener: Option<Arc<dyn OutboxListener>>,
}

impl Worker {
    /// Handles the next batch of due events (at most one per subject), if
    /// any: the one claimed with the last batch, or a new claim.
    pub async fn try_execute_one(&self) -> Result<Outcome, AutomationError> {
        let mut events = self.take_next();
        if events.is_empty() {
            events =
                outbox::claim_batch(&self.db, self.settings.batch, self.settings.lease).await?;
        }
        if events.is_empty() {
            return Ok(Outcome::Empty);
        }
        let span = tracing::info_span!(
            "automation_batch",
            events = events.len(),
            first = events[0].id
        );
        match self.handle(&events).instrument(span).await {
            Ok(next) => *self.next.lock().unwrap_or_else(PoisonError::into_inner) = next,
            Err(e) => self.fail(&events, &e).await?,
        }
        Ok(Outcome::Done(events.len()))
    }

    /// The batch claimed with the last one, taken out.
    fn take_next(&self) -> Vec<automation_event::Model> {
        std::mem::take(&mut *self.next.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a batch's failed attempt: retried later, or failed for good.
    async fn fail(
        &self,
        events: &[automation_event::Model],
        e: &AutomationError,
    ) -> Result<(), AutomationError> {
        tracing::warn!(error = %e, "automation events failed; will retry");
        // `lastError` is read through the API: a database error stays in the log.
        let reason = match e.code() {
            Code::Internal => INTERNAL_MESSAGE.to_owned(),
            _ => e.to_string(),
        };
        for event in events {
            outbox::fail(&self.db, event, &reason, self.settings.max_attempts).await?;
        }
        Ok(())
    }

    /// Handles a batch: gathers the hooks its events call, runs them,
    /// applies their plans and finishes the events (the last write also
    /// claims the next batch, returned).
    async fn handle(
        &self,
        events: &[automation_event::Model],
    ) -> Result<Vec<automation_event::Model>, AutomationError> {
        let batch_number = self.batches.fetch_add(1, Ordering::Relaxed);
        if batch_number.is_multiple_of(256) {
            // Beside the batches, not before this one: an `ANALYZE` of
            // the outbox takes 15 ms or more, which every event of the
            // batch (and of the next) would wait for.
            let db = self.db.clone();
            tokio::spawn(async move {
                if let Err(e) = outbox::refresh_statistics(&db).await {
                    tracing::warn!(error = %e, "automation: refreshing the outbox's statistics failed");
                }
            });
        }
        let Gathered { jobs, unheard } = self.gather(events).await?;
        let jobs = self.run_hooks(jobs).await?;
        self.apply(events, jobs, unheard, batch_number).await
    }

    /// The jobs of a batch, workspace by workspace, and the event kinds
    /// nobody hears.
    async fn gather(
        &self,
        events: &[automation_event::Model],
    ) -> Result<Gathered, AutomationError> {
        let mut gathered = Gathered::default();
        let mut by_workspace: BTreeMap<i64, Vec<&automation_event::Model>> = BTreeMap::new();
        for event in events {
            by_workspace
                .entry(event.workspace_id)
                .or_default()
                .push(event);
        }
        for (workspace_id, events) in by_workspace {
            let listeners = self.listeners(workspace_id, &events).await?;
            let heard = listeners.hear(workspace_id, events, &mut gathered.unheard);
            gathered.jobs.extend(self.jobs(workspace_id, heard).await?);
        }
        Ok(gathered)
    }

    /// What a workspace's events may meet: its enabled scripts, the
    /// segments the events name, the event kinds the listener keeps.
    async fn listeners(
        &self,
        workspace_id: i64,
        events: &[&automation_event::Model],
    ) -> Result<Listeners, AutomationError> {
        let segment_ids: Vec<i64> = events.iter().filter_map(|e| e.segment_id).collect();
        // The reads of a step run at once: round trips, not the
        // database, are most of a batch's time.
        let (enabled, segments, listened) = tokio::try_join!(
            scripts::enabled(&self.db, workspace_id),
            async {
                Ok(
                    segment_store::find_many(&self.db, workspace_id, &segment_ids)
                        .await?
                        .into_iter()
                        .map(|s| (s.id, Arc::new(s)))
                        .collect::<HashMap<i64, Arc<segment::Model>>>(),
                )
            },
            async {
                Ok::<_, AutomationError>(match &self.listener {
                    Some(listener) => listener.kinds(&self.db, workspace_id).await?,
                    None => Vec::new(),
                })
            },
        )?;
        let scripts = enabled
            .into_iter()
            .filter_map(|script| {
                let compiled = self.scripts.compiled(&script).ok()?;
                Some((Arc::new(script), compiled))
            })
            .collect();
        Ok(Listeners {
            scripts,
            segments,
            listened,
        })
    }

    /// One job per heard event, with what its hooks read: the subject's
    /// snapshot, the tag's name, the source of the change.
    async fn jobs(
        &self,
        workspace_id: i64,
        heard: Vec<Heard<'_>>,
    ) -> Result<Vec<Job>, AutomationError> {
        if heard.is_empty() {
            return Ok(Vec::new());
        }
        let subjects: Vec<(SubjectKind, i64)> = heard
            .iter()
            .map(|h| (h.event.subject_kind, h.event.subject_id))
            .collect();
        let tag_ids: Vec<i64> = heard.iter().filter_map(|h| h.event.tag_id).collect();
        let change_ids: Vec<i64> = heard
            .iter()
            .filter(|h| !h.event.kind.is_segment_event())
            .filter_map(|h| h.event.change_id)
            .collect();
        let (snapshots, tags, sources) = tokio::try_join!(
            snapshot::load_many(&self.db, workspace_id, &subjects),
            async {
                Ok(store::find_many(&self.db, workspace_id, &tag_ids)
                    .await?
                    .into_iter()
                    .map(|t| (t.id, t.name))
                    .collect::<HashMap<i64, String>>())
            },
            async {
                Ok(history::find_many(&self.db, workspace_id, &change_ids)
                    .await?
                    .into_iter()
                    .map(|c| (c.id, c.source))
                    .collect::<HashMap<i64, Source>>())
            },
        )?;
        let mut jobs = Vec::with_capacity(heard.len());
        for Heard {
            event,
            hook,
            scripts,
            segment,
        } in heard
        {
            // A subject deleted since: nothing to run.
            let Some(subject) = snapshots.get(&(event.subject_kind, event.subject_id)) else {
                continue;
            };
            let source = match event.change_id {
                Some(id) if !event.kind.is_segment_event() => {
                    sources.get(&id).copied().unwrap_or(Source::Manual)
                }
                _ => Source::Trigger,
            };
            let hook_event = HookEvent {
                hook,
                tag: event.tag_id.and_then(|id| tags.get(&id).cloned()),
                segment: segment.as_ref().map(|s| s.name.clone()),
                source: source.as_str().into(),
                depth: Ord::max(event.depth, 0) as u32,
                subject: subject.clone(),
            };
            jobs.push(Job {
                event_id: event.id,
                segment,
                hook_event,
                scripts,
                outcomes: Vec::new(),
            });
        }
        Ok(jobs)
    }

    /// Runs every hook of the batch on the engine's threads, in one
    /// hand-off; each job gets its outcomes.
    async fn run_hooks(&self, mut jobs: Vec<Job>) -> Result<Vec<Job>, AutomationError> {
        let engine_scripts = Arc::clone(&self.scripts);
        Ok(tokio::task::spawn_blocking(move || {
            let runs = jobs
                .iter()
                .flat_map(|job| {
                    job.scripts
                        .iter()
                        .map(|(_, compiled)| ((**compiled).clone(), job.hook_event.clone()))
                })
                .collect();
            let mut outcomes = engine_scripts.engine.run_many(runs).into_iter();
            for job in &mut jobs {
                job.outcomes = outcomes.by_ref().take(job.scripts.len()).collect();
            }
            jobs
        })
        .await?)
    }

    /// Applies the batch's plans in chunks bounded by the bytes they write,
    /// each in a write transaction of its own: a heavy plan commits alone,
    /// and other writers (other workspaces' API requests) take their turns
    /// between chunks instead of waiting for the whole batch. Returns the
    /// next batch, claimed by the last chunk.
    async fn apply(
        &self,
        events: &[automation_event::Model],
        jobs: Vec<Job>,
        unheard: Vec<(i64, EventKind)>,
        batch_number: u64,
    ) -> Result<Vec<automation_event::Model>, AutomationError> {
        let chunks = chunk_by_bytes(jobs, self.settings.batch_bytes);
        let count = chunks.len();
        let mut scripts_run: Vec<i64> = Vec::new();
        let mut rest: Vec<automation_event::Model> = events.to_vec();
        let mut unheard = Some(unheard);
        let mut next = Vec::new();
        for (at, jobs) in chunks.into_iter().enumerate() {
            let last = at + 1 == count;
            // A chunk finishes its jobs' events; the last one also the
            // batch's events that had nothing to run.
            let chunk_events: Vec<automation_event::Model> = if last {
                std::mem::take(&mut rest)
            } else {
                let (mine, others) = rest
                    .into_iter()
                    .partition(|e| jobs.iter().any(|job| job.event_id == e.id));
                rest = others;
                mine
            };
            let chunk = Chunk {
                events: &chunk_events,
                jobs,
                last: last.then(|| Last {
                    unheard: unheard.take().unwrap_or_default(),
                    prune: batch_number.is_multiple_of(32),
                    // Now and then (a busy worker handles tens of batches a
                    // second; a claim of its own, when idle, always looks).
                    expired: if batch_number % 32 == 16 {
                        outbox::Expired::LookedFor
                    } else {
                        outbox::Expired::Skipped
                    },
                }),
            };
            next = self.apply_chunk(chunk, &mut scripts_run).await?;
        }
        Ok(next)
    }

    /// Applies one chunk of a batch in a write transaction of its own: the
    /// plans of its jobs and their runs, then [`Worker::finish`].
    async fn apply_chunk(
        &self,
        chunk: Chunk<'_>,
        scripts_run: &mut Vec<i64>,
    ) -> Result<Vec<automation_event::Model>, AutomationError> {
        let Chunk { events, jobs, last } = chunk;
        let txn = begin_write_first(&self.db).await?;
        // Only the events this worker still holds (a lease that ran out
        // meanwhile may have passed one to another worker).
        let held = if events.is_empty() {
            Vec::new()
        } else {
            outbox::still_claimed(&txn, events).await?
        };
        if held.len() < events.len() {
            tracing::warn!(
                lost = events.len() - held.len(),
                "automation: claims expired while the batch ran; another worker handles those events"
            );
        }
        let events: Vec<&automation_event::Model> =
            events.iter().filter(|e| held.contains(&e.id)).collect();
        let mut applied = Applied::default();
        // Real time, not `self.clock` (which tests move for segments).
        let now = crate::time::now();
        for job in jobs {
            let Some(event) = events.iter().copied().find(|e| e.id == job.event_id) else {
                continue;
            };
            for (script, _) in &job.scripts {
                if !scripts_run.contains(&script.id) {
                    scripts_run.push(script.id);
                }
            }
            self.apply_job(&txn, event, job, now, &mut applied).await?;
        }
        self.finish(txn, &events, applied, last, scripts_run).await
    }

    /// Applies one job in the chunk's transaction: the segment's trigger
    /// actions, then the plans of the successful runs (a cascade past the
    /// depth limit stops with an error instead).
    async fn apply_job(
        &self,
        txn: &DatabaseTransaction,
        event: &automation_event::Model,
        job: Job,
        now: DateTime<Utc>,
        applied: &mut Applied,
    ) -> Result<(), AutomationError> {
        for ((script, _), outcome) in job.scripts.iter().zip(&job.outcomes) {
            if !outcome.ok {
                applied.script_failures.push(ScriptFailure {
                    workspace_id: event.workspace_id,
                    script_id: script.id,
                    script_name: script.name.clone(),
                    script_version: script.version,
                    error: outcome.error.clone().unwrap_or_default(),
                    event_kind: event.kind,
                    tag: job.hook_event.tag.clone(),
                    segment: job.hook_event.segment.clone(),
                    subject_kind: event.subject_kind,
                    subject_id: event.subject_id,
                    at: now,
                });
            }
        }
        let runs = job
            .scripts
            .iter()
            .zip(job.outcomes)
            .map(|((script, _), outcome)| Run {
                script: script.as_ref(),
                outcome,
            })
            .collect();
        let too_deep =
            (event.depth + 1 > self.settings.max_depth).then_some(self.settings.max_depth);
        if let Some(segment) = &job.segment {
            let actions = trigger_actions(segment, event.kind);
            if !actions.is_empty() {
                match too_deep {
                    Some(max) => applied.stopped.push((
                        event.id,
                        format!(
                            "a cascade deeper than {max} automated steps stopped here: \
                             segment {:?}'s actions were not applied",
                            segment.name
                        ),
                    )),
                    None => apply_trigger(txn, event, segment, &actions, &self.clock).await?,
                }
            }
        }
        let max_attributes_bytes = self.scripts.engine.limits().max_attributes_bytes;
        applied.records.extend(
            apply_runs(
                txn,
                event,
                &job.hook_event.subject,
                runs,
                too_deep,
                max_attributes_bytes,
                &self.clock,
            )
            .await?,
        );
        Ok(())
    }

    /// Finishes a chunk in its transaction: records the runs, completes
    /// the events (telling the listener), stops those past the depth
    /// limit; the last chunk also prunes the runs log now and then,
    /// completes the unheard events and claims the next batch (returned).
    /// Then commits and tells who waits for the changes.
    async fn finish(
        &self,
        txn: WriteTxn,
        events: &[&automation_event::Model],
        applied: Applied,
        last: Option<Last>,
        scripts_run: &[i64],
    ) -> Result<Vec<automation_event::Model>, AutomationError> {
        let Applied {
            records,
            stopped,
            script_failures,
        } = applied;
        let event_ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        let runs = records.len() as u64;
        let failed_runs = records
            .iter()
            .filter(|r| matches!(r.ok, sea_orm::ActiveValue::Set(false)))
            .count() as u64;
        // A first attempt has no earlier runs to replace (a claim counts the
        // attempt; one given back unstarted is uncounted).
        let retried: Vec<i64> = events
            .iter()
            .filter(|e| e.attempts > 1)
            .map(|e| e.id)
            .collect();
        record_runs(&txn, &retried, records).await?;
        if !event_ids.is_empty() {
            outbox::complete_many(&txn, &event_ids).await?;
        }
        // The listener's rows (webhook deliveries) for the events completed
        // here, in this transaction: written if and only if they are done.
        let heard = match &self.listener {
            Some(listener) => listener.handled(&txn, events, &script_failures).await?,
            None => 0,
        };
        for (event_id, error) in stopped {
            outbox::stop(&txn, event_id, &error).await?;
        }
        let mut next = Vec::new();
        if let Some(Last {
            unheard,
            prune,
            expired,
        }) = last
        {
            // Prune the runs log now and then, not on every batch.
            if prune {
                for &script_id in scripts_run {
                    prune_runs(&txn, script_id, self.settings.runs_kept).await?;
                }
            }
            // Nobody listens to these kinds in these workspaces: their pending events are done too.
            for (workspace_id, kind) in unheard {
                outbox::complete_pending(&txn, workspace_id, kind).await?;
            }
            // The next batch, in this write turn: it sees the events this
            // batch's changes wrote, and those finished here no longer hold
            // back their subjects' next ones.
            next =
                outbox::claim_in(&txn, self.settings.batch, self.settings.lease, expired).await?;
        }
        txn.commit().await?;
        self.feed.committed();
        if heard > 0
            && let Some(listener) = &self.listener
        {
            listener.committed();
        }
        self.metrics.script_runs(runs, failed_runs);
        Ok(next)
    }

    /// Runs until `shutdown` resolves: handles events while there are some,
    /// then sleeps until woken (a change was committed) or the poll interval
    /// passes. A batch claimed but not started is given back at shutdown.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let step = tokio::select! {
                _ = &mut shutdown => break,
                step = self.try_execute_one() => step,
            };
            let pause = match step {
                Ok(Outcome::Done(_)) => {
                    failures = 0;
                    if !self
                        .next
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_empty()
                    {
                        continue;
                    }
                    // Nothing was due when the batch finished: wait for a
                    // change (its writer wakes the worker) or the poll.
                    self.settings.poll_interval
                }
                Ok(Outcome::Empty) => self.settings.poll_interval,
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "automation worker step failed");
                    Duration::from_millis(100 * 2u64.pow(Ord::min(failures, 6)))
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                // Let the next events gather: fewer, fuller transactions.
                _ = self.wake.notified() => tokio::time::sleep(self.settings.gather).await,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        if let Err(e) = self.release_claimed().await {
            tracing::warn!(error = %e, "automation: giving back the claimed events failed; they wait for their lease");
        }
    }

    /// Gives back the batch claimed with the last one, unstarted (see
    /// [`outbox::release`]): the next worker takes it at once.
    pub async fn release_claimed(&self) -> Result<(), sea_orm::DbErr> {
        outbox::release(&self.db, &self.take_next()).await
    }
}

/// The actions of a segment for an entry or an exit event.
fn trigger_actions(segment: &segment::Model, kind: EventKind) -> TagActions<i64> {
    if kind == EventKind::SegmentEntered {
        segment_store::actions(&segment.on_entry)
    } else {
        segment_store::actions(&segment.on_exit)
    }
}

/// Applies a segment's entry or exit actions to the event's subject: source
/// TRIGGER, the segment's name as actor, the entry or exit as cause.
async fn apply_trigger(
    txn: &DatabaseTransaction,
    event: &automation_event::Model,
    segment: &segment::Model,
    actions: &TagActions<i64>,
    clock: &Clock,
) -> Result<(), AutomationError> {
    let actor = Actor {
        source: Source::Trigger,
        name: Some(&segment.name),
        cause: cause_of(event),
        depth: event.depth + 1,
    };
    let kind = event.subject_kind;
    let targets = [(kind, Target::Ids(vec![event.subject_id]))];
    for (op, ids) in [(Op::Added, &actions.add), (Op::Removed, &actions.remove)] {
        if ids.is_empty() {
            continue;
        }
        let mut tags = store::find_many(txn, event.workspace_id, ids).await?;
        tags.retain(|t| t.deleted_at.is_none());
        apply_tags(txn, event.workspace_id, &targets, &tags, op, actor, clock).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::automation::script::{HookKind, PlannedAction, SubjectKind, SubjectSnapshot};

    /// A job whose one run set an attribute of `value_bytes` bytes.
    fn job(event_id: i64, value_bytes: usize) -> Job {
        let subject = SubjectSnapshot::new(SubjectKind::User, "u1");
        Job {
            event_id,
            segment: None,
            hook_event: HookEvent {
                hook: HookKind::TagAdded,
                tag: Some("t".into()),
                segment: None,
                source: Source::Manual.as_str().into(),
                depth: 0,
                subject,
            },
            scripts: Vec::new(),
            outcomes: vec![RunOutcome {
                ok: true,
                error: None,
                error_at: None,
                logs: Vec::new(),
                actions: vec![PlannedAction::SetAttribute {
                    target_kind: SubjectKind::User,
                    target_id: "u1".into(),
                    key: "k".into(),
                    // The JSON string's quotes are 2 of the bytes.
                    value: Value::String("x".repeat(value_bytes - 2)),
                }],
                duration: Duration::ZERO,
            }],
        }
    }

    fn ids(chunks: &[Vec<Job>]) -> Vec<Vec<i64>> {
        chunks
            .iter()
            .map(|chunk| chunk.iter().map(|job| job.event_id).collect())
            .collect()
    }

    #[test]
    fn batches_are_applied_in_chunks_bounded_by_plan_bytes() {
        // Each small job weighs 256 + 64 + 1 + 99 = 420 bytes.
        assert_eq!(job(1, 99).plan_bytes(), 420);
        let jobs = vec![
            job(1, 99),
            job(2, 99),
            job(3, 10_000),
            job(4, 99),
            job(5, 99),
        ];
        assert_eq!(
            ids(&chunk_by_bytes(jobs, 1_000)),
            [vec![1, 2], vec![3], vec![4, 5]],
            "small plans share a chunk; one past the bound is a chunk of its own"
        );
        let jobs = vec![job(1, 99), job(2, 10_000)];
        assert_eq!(ids(&chunk_by_bytes(jobs, 0)), [vec![1, 2]], "0: no bound");
        assert_eq!(
            ids(&chunk_by_bytes(Vec::new(), 1_000)),
            [Vec::<i64>::new()],
            "always a last chunk, which finishes the batch"
        );
    }
}
