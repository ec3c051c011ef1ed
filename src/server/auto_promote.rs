//! Automatic promotion of learners (opt-in, `auto-promote-learners`;
//! beyond etcd, whose #15107 is still open): the leader promotes a learner
//! once it passes the same checks a `member promote` would (in sync with
//! the leader's log, a quorum of started members), one promotion at a
//! time.
//!
//! Owns the schedule only; the checks and the proposal are `Reconfig`'s.

use super::reconfig::Reconfig;
use crate::plumbing::notice::{LeaderInfo, Notices};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(500);

pub struct AutoPromote {
    pub reconfig: Reconfig,
    pub leader: Arc<Notices<LeaderInfo>>,
    pub stop: Arc<AtomicBool>,
}

impl AutoPromote {
    /// Runs until `stop` is raised.
    pub fn run(self) {
        let busy = Arc::new(AtomicBool::new(false));
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(EVERY);
            if !self.leader.current().is_self || busy.load(Ordering::SeqCst) {
                continue;
            }
            let Some(id) = self.reconfig.learners_in_sync().into_iter().next() else { continue };
            busy.store(true, Ordering::SeqCst);
            let done = busy.clone();
            self.reconfig.promote_then(
                id,
                Box::new(move |r| {
                    match r {
                        Ok(_) => log::info!("promoted learner {id:x}: it caught up with the leader"),
                        Err(e) => log::info!("promoting learner {id:x} automatically failed: {e}"),
                    }
                    done.store(false, Ordering::SeqCst);
                }),
            );
        }
    }
}
