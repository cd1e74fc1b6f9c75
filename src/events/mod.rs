//! Delivers recorded events to subscribers: one replica at a time (the `event-delivery`
//! lease) hands each recorded event to the targets of the rules whose EventBridge pattern it
//! matches, then delivers per target, at least once, in order per (target, repository), with
//! exponential backoff and jitter up to the retry window and a dead letter after it; it prunes
//! events past their retention. Each target has its own task, so a slow or dead target holds up
//! no other, and nothing here is on the push path (pushes only record events).

pub mod envelope;
pub mod send;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::meta::{now_millis, HandOver, LeaseHolder, OutboxEvent, PendingDelivery};
use crate::metrics::counter::Counter;
use crate::metrics::family::Family;
use crate::metrics::gauge::Gauge;
use crate::metrics::{FloatGauge, Metrics};
use crate::policy::event_rules::{EventFormat, EventTarget};
use crate::service::{EventRule, Registry};

pub use envelope::Origin;

/// The lease of the replica that delivers.
const LEASE: &str = "event-delivery";
/// The lease outlives a few renewals, so a busy holder keeps it.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often the holder renews its lease, and a replica without it asks again.
const LEASE_RENEW: Duration = Duration::from_secs(5);
/// Events handed over per transaction.
const DISPATCH_BATCH: i64 = 500;
/// Repository heads one target tries at once when its window is stuck (see `deliver_loop`).
const TARGET_BATCH: i64 = 32;
/// A target's oldest pending deliveries read per round.
const DELIVERY_WINDOW: i64 = 256;
/// Repositories whose events one target sends at the same time.
const REPOSITORIES_AT_ONCE: usize = 16;
/// How often delivered events are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// The first retry waits about this long; each later one twice as long as the one before.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// No retry waits longer than this.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The body `target` receives for `event`.
pub fn render(event: &OutboxEvent, format: EventFormat, origin: &Origin) -> Bytes {
    let value = match format {
        EventFormat::EventBridge => envelope::eventbridge(event, origin),
        EventFormat::CloudEvents => envelope::cloudevent(event, origin),
    };
    Bytes::from(value.to_string())
}

/// The wait before retry number `attempts + 1`: doubling from [`FIRST_RETRY`] up to
/// [`MAX_RETRY`], with "equal jitter" (between half and all of it) so that retries of many
/// deliveries spread out.
pub fn backoff(attempts: i64) -> Duration {
    let exponent = attempts.clamp(0, 16) as u32;
    let full = FIRST_RETRY.saturating_mul(1 << exponent).min(MAX_RETRY);
    let half = full / 2;
    half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
}

/// How often the delivery gauges are read from the database.
const GAUGE_INTERVAL: Duration = Duration::from_secs(15);

type TargetLabels = Vec<(String, String)>;

fn target_labels(rule: &str, target: &str) -> TargetLabels {
    vec![("target".to_owned(), format!("{rule}/{target}"))]
}

/// Event delivery's metric families (`target` is `<rule>/<target id>`).
#[derive(Clone, Default)]
struct DeliveryMetrics {
    attempts: Family<Vec<(String, String)>, Counter>,
    pending: Family<TargetLabels, Gauge>,
    dead: Family<TargetLabels, Gauge>,
    oldest: Family<TargetLabels, FloatGauge>,
}

impl DeliveryMetrics {
    fn register(metrics: &Metrics) -> DeliveryMetrics {
        let m = DeliveryMetrics::default();
        metrics.register(
            "event_deliveries",
            "Event delivery attempts by target and outcome (delivered, retried, dead_lettered)",
            m.attempts.clone(),
        );
        metrics.register(
            "event_deliveries_pending",
            "Events waiting for delivery, by target (read from the database every 15 s)",
            m.pending.clone(),
        );
        metrics.register(
            "event_deliveries_dead_lettered",
            "Dead letters (deliveries given up on after the retry window), by target",
            m.dead.clone(),
        );
        metrics.register(
            "event_delivery_oldest_pending_age_seconds",
            "How long the oldest pending event of each target has waited",
            m.oldest.clone(),
        );
        m
    }

    fn attempt(&self, key: &TargetKey, outcome: &str) {
        let mut labels = target_labels(&key.rule, &key.target);
        labels.push(("outcome".to_owned(), outcome.to_owned()));
        self.attempts.get_or_create(&labels).inc();
    }
}

/// One target of one rule, as the delivery tasks know it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TargetKey {
    rule: String,
    target: String,
}

struct TargetTask {
    target: EventTarget,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

/// This replica's event worker.
pub struct EventWorker {
    registry: Arc<Registry>,
    origin: Origin,
    holder: LeaseHolder,
    senders: Arc<send::Senders>,
    retry_window: Duration,
    retention: Duration,
    poll: Duration,
    metrics: DeliveryMetrics,
}

impl EventWorker {
    pub fn new(registry: Arc<Registry>, config: &Config, holder: LeaseHolder) -> EventWorker {
        EventWorker {
            origin: Origin {
                account: config.registry_id.clone(),
                region: config.region.clone(),
            },
            holder,
            senders: Arc::new(send::Senders::new(
                &config.events.nats_url,
                Duration::from_secs(config.events.timeout_secs),
            )),
            retry_window: Duration::from_secs(config.events.retry_window_secs),
            retention: Duration::from_secs(config.events.retention_secs),
            poll: Duration::from_millis(config.events.poll_interval_millis),
            metrics: DeliveryMetrics::register(registry.metrics()),
            registry,
        }
    }

    /// Reads the delivery gauges from the database (every replica reports the same values).
    async fn refresh_gauges(&self) {
        let counts = match self.registry.events().delivery_counts(None).await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read event delivery counts");
                return;
            }
        };
        let now = now_millis();
        // Targets gone since the last read drop out.
        self.metrics.pending.clear();
        self.metrics.dead.clear();
        self.metrics.oldest.clear();
        for c in counts {
            let labels = target_labels(&c.rule, &c.target);
            self.metrics.pending.get_or_create(&labels).set(c.pending);
            self.metrics.dead.get_or_create(&labels).set(c.dead);
            self.metrics.oldest.get_or_create(&labels).set(
                c.oldest_pending_at
                    .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0),
            );
        }
    }

    /// Runs until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tasks: HashMap<TargetKey, TargetTask> = HashMap::new();
        let mut holding = false;
        let mut lease_asked: Option<Instant> = None;
        let mut pruned: Option<Instant> = None;
        let mut gauges: Option<Instant> = None;
        loop {
            if due(gauges, GAUGE_INTERVAL) {
                gauges = Some(Instant::now());
                self.refresh_gauges().await;
            }
            if due(lease_asked, LEASE_RENEW) {
                lease_asked = Some(Instant::now());
                let held = match self
                    .registry
                    .replicas()
                    .try_lease(LEASE, &self.holder, LEASE_TTL)
                    .await
                {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot take the event-delivery lease; will retry");
                        false
                    }
                };
                if held != holding {
                    tracing::info!(holding = held, "event delivery lease");
                }
                holding = held;
            }
            if holding {
                match self.dispatch().await {
                    Ok(true) => {
                        for task in tasks.values() {
                            task.wake.notify_one();
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot hand events to their targets; will retry")
                    }
                }
                if let Err(e) = self.sync_tasks(&mut tasks, &cancel).await {
                    tracing::warn!(error = %e, "cannot read the event rules; will retry");
                }
                if due(pruned, PRUNE_INTERVAL) {
                    pruned = Some(Instant::now());
                    let cutoff = now_millis() - self.retention.as_millis() as i64;
                    match self.registry.events().prune(cutoff).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(pruned = n, "pruned events past their retention"),
                        Err(e) => tracing::warn!(error = %e, "cannot prune events; will retry"),
                    }
                }
            } else {
                for (_, task) in tasks.drain() {
                    task.cancel.cancel();
                }
            }
            let wait = if holding { self.poll } else { LEASE_RENEW };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.registry.events().wait_for_recorded(wait) => {}
            }
        }
        for (_, task) in tasks.drain() {
            task.cancel.cancel();
        }
    }

    /// Hands every recorded event not yet handed over to the targets of the rules it matches;
    /// whether any delivery was created.
    async fn dispatch(&self) -> crate::error::Result<bool> {
        let events = self.registry.events();
        let mut created = false;
        loop {
            let batch = events.undispatched(DISPATCH_BATCH).await?;
            if batch.is_empty() {
                return Ok(created);
            }
            let rules = events.rules_in_force().await?;
            let handed: Vec<HandOver> = batch
                .iter()
                .map(|event| {
                    let envelope = envelope::eventbridge(event, &self.origin);
                    let targets: Vec<(String, String)> = rules
                        .iter()
                        .filter(|rule| rule.enabled && rule.pattern.matches(&envelope))
                        .flat_map(|rule| {
                            rule.targets
                                .iter()
                                .map(|t| (rule.name.clone(), t.id.clone()))
                        })
                        .collect();
                    HandOver {
                        event: event.id,
                        repository: event.repository.clone(),
                        targets,
                    }
                })
                .collect();
            created |= handed.iter().any(|h| !h.targets.is_empty());
            events.dispatch(&handed).await?;
            if (batch.len() as i64) < DISPATCH_BATCH {
                return Ok(created);
            }
        }
    }

    /// One task per target of the rules in force: new targets get one, removed or changed ones
    /// lose theirs.
    async fn sync_tasks(
        self: &Arc<Self>,
        tasks: &mut HashMap<TargetKey, TargetTask>,
        cancel: &CancellationToken,
    ) -> crate::error::Result<()> {
        let rules = self.registry.events().rules_in_force().await?;
        let mut wanted: HashMap<TargetKey, (Arc<EventRule>, EventTarget)> = HashMap::new();
        for rule in rules.iter() {
            for target in &rule.targets {
                wanted.insert(
                    TargetKey {
                        rule: rule.name.clone(),
                        target: target.id.clone(),
                    },
                    (rule.clone(), target.clone()),
                );
            }
        }
        tasks.retain(|key, task| {
            let keep = wanted
                .get(key)
                .is_some_and(|(_, target)| *target == task.target);
            if !keep {
                task.cancel.cancel();
            }
            keep
        });
        for (key, (_, target)) in wanted {
            if tasks.contains_key(&key) {
                continue;
            }
            let task = TargetTask {
                target: target.clone(),
                wake: Arc::new(Notify::new()),
                cancel: cancel.child_token(),
            };
            let worker = self.clone();
            let (wake, task_cancel, task_key) =
                (task.wake.clone(), task.cancel.clone(), key.clone());
            tokio::spawn(async move {
                worker
                    .deliver_loop(task_key, target, wake, task_cancel)
                    .await;
            });
            tasks.insert(key, task);
        }
        Ok(())
    }

    /// Delivers one target's due deliveries until cancelled. Each round reads the target's
    /// oldest pending deliveries (a window), sends each repository's in order, the repositories
    /// side by side, and records the acknowledged ones in one statement: one read and one write
    /// per round, not per event. When a full window makes no progress (its repositories all wait
    /// for retries), the first delivery of every repository is tried instead, so that one
    /// repository's backlog never starves the others.
    async fn deliver_loop(
        self: Arc<Self>,
        key: TargetKey,
        target: EventTarget,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) {
        let events = self.registry.events();
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let window = match events
                .pending_window(&key.rule, &key.target, DELIVERY_WINDOW)
                .await
            {
                Ok(window) => window,
                Err(e) => {
                    tracing::warn!(rule = %key.rule, target = %key.target, error = %e, "cannot read pending deliveries; will retry");
                    Vec::new()
                }
            };
            let full = window.len() as i64 == DELIVERY_WINDOW;
            let mut progressed = self.deliver_in_order(&key, &target, window).await;
            if !progressed && full {
                let heads = events
                    .due_heads(&key.rule, &key.target, now_millis(), TARGET_BATCH)
                    .await
                    .unwrap_or_default();
                progressed = self.deliver_in_order(&key, &target, heads).await;
            }
            if progressed {
                continue;
            }
            // Nothing due: sleep until the next retry is due, new deliveries arrive, or a poll.
            let next = events
                .next_attempt_at(&key.rule, &key.target)
                .await
                .ok()
                .flatten();
            let wait = match next {
                Some(at) => Duration::from_millis((at - now_millis()).max(0) as u64).min(self.poll),
                None => self.poll,
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends `deliveries` (oldest first) in order per repository, repositories concurrently,
    /// each repository stopping at a delivery that is not due or fails; records the outcomes.
    /// Whether any delivery was attempted.
    async fn deliver_in_order(
        &self,
        key: &TargetKey,
        target: &EventTarget,
        deliveries: Vec<PendingDelivery>,
    ) -> bool {
        if deliveries.is_empty() {
            return false;
        }
        let mut by_repository: Vec<Vec<PendingDelivery>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for d in deliveries {
            match index.get(&d.event.repository) {
                Some(&i) => by_repository[i].push(d),
                None => {
                    index.insert(d.event.repository.clone(), by_repository.len());
                    by_repository.push(vec![d]);
                }
            }
        }
        let now = now_millis();
        let sent: Vec<(Vec<i64>, bool)> = futures::stream::iter(
            by_repository
                .into_iter()
                .map(|queue| self.deliver_queue(key, target, queue, now)),
        )
        .buffer_unordered(REPOSITORIES_AT_ONCE)
        .collect()
        .await;
        let attempted = sent.iter().any(|(_, attempted)| *attempted);
        let delivered: Vec<i64> = sent.into_iter().flat_map(|(ids, _)| ids).collect();
        if !delivered.is_empty() {
            if let Err(e) = self.registry.events().delivered_many(&delivered).await {
                // They are sent again: at least once, never lost.
                tracing::warn!(rule = %key.rule, target = %key.target, error = %e, "cannot record delivered events");
            }
        }
        attempted
    }

    /// One repository's deliveries, in order, until one is not due or fails: the ids sent, and
    /// whether anything was attempted. A failure is recorded at once (retry or dead letter); a
    /// dead letter no longer holds the repository back.
    async fn deliver_queue(
        &self,
        key: &TargetKey,
        target: &EventTarget,
        queue: Vec<PendingDelivery>,
        now: i64,
    ) -> (Vec<i64>, bool) {
        let mut sent = Vec::new();
        let mut attempted = false;
        for delivery in queue {
            if delivery.next_attempt_at > now {
                break;
            }
            attempted = true;
            let body = render(&delivery.event, target.format, &self.origin);
            match self
                .senders
                .send(target, &delivery.event.event_id, body)
                .await
            {
                Ok(()) => {
                    self.metrics.attempt(key, "delivered");
                    sent.push(delivery.id);
                }
                Err(error) => {
                    if !self.failed(key, &delivery, &error).await {
                        break;
                    }
                }
            }
        }
        (sent, attempted)
    }

    /// Records a failed attempt: a retry with backoff, or a dead letter past the retry window.
    /// Whether it was dead-lettered (and so no longer holds its repository back).
    async fn failed(&self, key: &TargetKey, delivery: &PendingDelivery, error: &str) -> bool {
        let now = now_millis();
        let retry_at = now + backoff(delivery.attempts).as_millis() as i64;
        let window_end = delivery.window_start + self.retry_window.as_millis() as i64;
        let retry_at = (retry_at <= window_end).then_some(retry_at);
        self.metrics.attempt(
            key,
            if retry_at.is_some() {
                "retried"
            } else {
                "dead_lettered"
            },
        );
        if retry_at.is_none() {
            tracing::warn!(rule = %key.rule, target = %key.target, event = %delivery.event.event_id, %error, "event delivery failed past its retry window; dead-lettered");
        } else {
            tracing::debug!(rule = %key.rule, target = %key.target, event = %delivery.event.event_id, %error, "event delivery failed; will retry");
        }
        if let Err(e) = self
            .registry
            .events()
            .failed(delivery.id, error, retry_at)
            .await
        {
            tracing::warn!(rule = %key.rule, target = %key.target, error = %e, "cannot record a delivery's outcome");
            return false;
        }
        retry_at.is_none()
    }
}

/// Whether a periodic step last taken at `last` (never: `None`) is due again after `period`.
fn due(last: Option<Instant>, period: Duration) -> bool {
    last.map_or(true, |at| at.elapsed() >= period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempts in 0..20 {
            let full = FIRST_RETRY
                .saturating_mul(1 << attempts.min(16))
                .min(MAX_RETRY);
            let wait = backoff(attempts);
            assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait:?}");
        }
        assert!(backoff(100) <= MAX_RETRY);
    }
}
