//! Threads with large stacks that run scripts.
//!
//! Rhai evaluates, clones, compares, prints and drops values recursively.
//! The limits bound that recursion (call levels, expression depth, and the
//! nesting of arrays and maps through their sizes) but not to what fits in
//! a 2 MiB thread stack, and overflowing a stack aborts the process. So
//! every run happens on one of a few long-lived threads whose stack is
//! [`Limits::stack_size`](super::Limits::stack_size), started on demand.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool of script threads; dropping it lets the threads end.
pub(super) struct Runners {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    /// Threads started, and threads waiting for a job.
    started: Mutex<usize>,
    idle: Arc<AtomicUsize>,
    max_threads: usize,
    stack_size: usize,
}

/// Why a job could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RunnerError(pub(super) String);

impl Runners {
    pub(super) fn new(max_threads: usize, stack_size: usize) -> Self {
        let (jobs, queue) = mpsc::channel();
        Runners {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            started: Mutex::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
            max_threads: max_threads.max(1),
            stack_size,
        }
    }

    /// Runs `job` on a script thread and waits for its result.
    pub(super) fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RunnerError> {
        self.ensure_thread()?;
        let (reply, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = reply.send(job());
        });
        self.jobs
            .send(job)
            .map_err(|_| RunnerError("the script threads have stopped".to_owned()))?;
        result
            .recv()
            .map_err(|_| RunnerError("a script thread stopped during the run".to_owned()))
    }

    /// Starts a thread when none is idle and the pool is not full.
    fn ensure_thread(&self) -> Result<(), RunnerError> {
        if self.idle.load(Ordering::Acquire) > 0 {
            return Ok(());
        }
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        if *started >= self.max_threads {
            return Ok(()); // queue behind a busy thread
        }
        let queue = Arc::clone(&self.queue);
        let idle = Arc::clone(&self.idle);
        let spawned = thread::Builder::new()
            .name("tagsmith-script".to_owned())
            .stack_size(self.stack_size)
            .spawn(move || serve(&queue, &idle));
        match spawned {
            Ok(_) => {
                *started += 1;
                Ok(())
            }
            // With another thread started, the job can wait for it.
            Err(_) if *started > 0 => Ok(()),
            Err(error) => Err(RunnerError(format!(
                "could not start a script thread: {error}"
            ))),
        }
    }
}

fn serve(queue: &Mutex<Receiver<Job>>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        idle.fetch_sub(1, Ordering::AcqRel);
        match job {
            // Jobs catch their own panics; this keeps the thread alive regardless.
            Ok(job) => {
                let _ = panic::catch_unwind(AssertUnwindSafe(job));
            }
            Err(_) => return, // the pool was dropped
        }
    }
}
