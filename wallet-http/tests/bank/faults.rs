//! The fault schedule: one fault every interval, the four kinds in turn,
//! each finished (the server or the instance back) before the next.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wallet_pg::testing::cluster::{Cluster, StopMode};

use crate::instances::Instance;

/// How long PostgreSQL stays down after an immediate stop.
const DATABASE_DOWN_FOR: Duration = Duration::from_millis(1500);
/// How long a paused instance stays stopped.
const PAUSED_FOR: Duration = Duration::from_secs(3);

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL of an instance, then a restart.
    KillInstance,
    /// `pg_ctl stop -m immediate`, then a start.
    StopDatabase,
    /// `pg_terminate_backend` of every session of the database.
    TerminateBackends,
    /// SIGSTOP of an instance, SIGCONT a few seconds later.
    PauseInstance,
}

const SCHEDULE: [Fault; 4] = [
    Fault::KillInstance,
    Fault::StopDatabase,
    Fault::TerminateBackends,
    Fault::PauseInstance,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillInstance => "instance killed (SIGKILL) and restarted",
            Fault::StopDatabase => "PostgreSQL stopped immediately and started",
            Fault::TerminateBackends => "backends terminated",
            Fault::PauseInstance => "instance paused (SIGSTOP, SIGCONT)",
        }
    }
}

/// The running schedule.
pub struct Faults {
    stop: watch::Sender<bool>,
    task: JoinHandle<(Vec<Instance>, BTreeMap<Fault, u64>)>,
}

impl Faults {
    /// Starts the schedule; it ends at `deadline` or at [`Faults::stop`].
    pub fn start(
        cluster: Arc<Cluster>,
        mut fleet: Vec<Instance>,
        database: &'static str,
        every: Duration,
        deadline: Instant,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut counts = BTreeMap::new();
            let mut turn = 0usize;
            loop {
                let next = Instant::now() + every;
                if next >= deadline {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {}
                    _ = stopped.changed() => break,
                }
                let fault = SCHEDULE[turn % SCHEDULE.len()];
                // Each instance in turn takes the faults aimed at one.
                let target = (turn / SCHEDULE.len()) % fleet.len();
                apply(fault, &cluster, &mut fleet[target], database).await;
                *counts.entry(fault).or_insert(0) += 1;
                turn += 1;
            }
            (fleet, counts)
        });
        Faults { stop, task }
    }

    /// Ends the schedule (after the fault in progress) and hands back the
    /// instances, all running, with the count of each fault.
    pub async fn stop(self) -> (Vec<Instance>, BTreeMap<Fault, u64>) {
        let _ = self.stop.send(true);
        self.task.await.expect("the fault schedule ends")
    }
}

async fn apply(fault: Fault, cluster: &Arc<Cluster>, instance: &mut Instance, db: &str) {
    match fault {
        Fault::KillInstance => instance.kill_and_restart().await,
        Fault::StopDatabase => {
            let stopping = Arc::clone(cluster);
            tokio::task::spawn_blocking(move || stopping.stop(StopMode::Immediate))
                .await
                .expect("the cluster stops");
            tokio::time::sleep(DATABASE_DOWN_FOR).await;
            let starting = Arc::clone(cluster);
            tokio::task::spawn_blocking(move || starting.start_again())
                .await
                .expect("the cluster starts again");
        }
        Fault::TerminateBackends => {
            cluster
                .terminate_backends(db)
                .await
                .expect("terminate the backends");
        }
        Fault::PauseInstance => {
            instance.pause();
            tokio::time::sleep(PAUSED_FOR).await;
            instance.resume();
        }
    }
}
