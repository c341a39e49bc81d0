//! The faults: when they land (a seeded schedule over the sending window) and what each
//! one does to the running processes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use sympozium_testkit::nats::NatsServer;

use super::Options;
use super::processes::{Controllers, Instance, Platform};
use super::report::Fault;

/// xorshift64*: the schedule only needs to be varied and repeatable from `--seed`.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

/// `count` faults, the kinds in turn, each at a random moment between 10 % and 85 % of
/// `window`; sorted by time.
pub fn schedule(rng: &mut Rng, count: usize, window: Duration) -> Vec<(Duration, Fault)> {
    let kinds = [Fault::NatsRestart, Fault::ChannelKill, Fault::ControllerKill];
    let mut schedule: Vec<(Duration, Fault)> = (0..count)
        .map(|k| (window.mul_f64(0.1 + 0.75 * (rng.below(1000) as f64 / 1000.0)), kinds[k % kinds.len()]))
        .collect();
    schedule.sort();
    schedule
}

/// What a fault can break.
pub struct Stage<'a> {
    pub nats: &'a mut NatsServer,
    pub instances: &'a [Arc<Instance>],
    pub controllers: &'a Controllers,
    pub opts: &'a Options,
}

/// Injects `fault` and returns once what it broke runs again.
pub async fn inject(fault: Fault, stage: Stage<'_>, rng: &mut Rng, t0: Instant) -> anyhow::Result<()> {
    let Stage { nats, instances, controllers, opts } = stage;
    match fault {
        Fault::NatsRestart => {
            eprintln!("[{:>5.0}s] fault: NATS restart", t0.elapsed().as_secs_f64());
            nats.kill();
            tokio::time::sleep(rng.between(Duration::from_secs(1), Duration::from_secs(4))).await;
            nats.restart().await?;
        }
        Fault::ChannelKill => {
            let inst = instances[rng.below(instances.len() as u64) as usize].clone();
            eprintln!(
                "[{:>5.0}s] fault: kill -9 channel pod of {} ({})",
                t0.elapsed().as_secs_f64(),
                inst.name,
                inst.platform.kind()
            );
            let discord = matches!(inst.platform, Platform::Discord(_));
            if discord {
                inst.offline.store(true, Ordering::SeqCst);
                // What was written just before is on the bus before the bot goes away.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            inst.kill();
            tokio::time::sleep(rng.between(Duration::from_secs(1), Duration::from_secs(3))).await;
            inst.spawn(opts)?;
            if !inst.healthy(Duration::from_secs(60)).await {
                bail!("channel pod of {} did not come back", inst.name);
            }
            inst.offline.store(false, Ordering::SeqCst);
        }
        Fault::ControllerKill => {
            let replica = rng.below(2) as usize;
            eprintln!("[{:>5.0}s] fault: kill -9 controller replica {replica}", t0.elapsed().as_secs_f64());
            controllers.kill(replica);
            tokio::time::sleep(rng.between(Duration::from_secs(1), Duration::from_secs(2))).await;
            controllers.spawn(opts, replica)?;
        }
    }
    Ok(())
}
