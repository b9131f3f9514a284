//! Running a connection's blocking store calls with few thread wake-ups.
//!
//! A [`Combiner`] queues blocking calls and runs them on at most `width`
//! tasks of tokio's blocking pool; each task takes every call queued while it
//! runs ("flat combining") and ends when the queue is empty. A request that
//! finds a task busy only queues its call: no thread is woken for it.
//!
//! One `spawn_blocking` per chunk cost the server a third of its CPU in
//! thread wake-ups on 50,000 small files, for uploads and for restores alike
//! (docs/performance.md, "The speed milestone").

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

type Call = Box<dyn FnOnce() + Send>;

/// Queued blocking calls and the tasks running them.
pub(crate) struct Combiner {
    queue: Mutex<Queue>,
    width: usize,
}

struct Queue {
    calls: VecDeque<Call>,
    /// Blocking tasks taking calls from `calls`.
    running: usize,
}

impl Combiner {
    /// Runs calls on at most `width` blocking tasks at once (1: one after
    /// the other, in the order they were queued).
    pub(crate) fn new(width: usize) -> Arc<Self> {
        Arc::new(Combiner {
            queue: Mutex::new(Queue {
                calls: VecDeque::new(),
                running: 0,
            }),
            width: width.max(1),
        })
    }

    /// Runs `f` on the blocking pool and returns its result; `None` if it
    /// panicked.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let call: Call = Box::new(move || {
            let _ = done.send(f());
        });
        let start = {
            let mut queue = self.queue.lock().unwrap();
            queue.calls.push_back(call);
            let start = queue.running < self.width;
            queue.running += usize::from(start);
            start
        };
        if start {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.drain());
        }
        result.await.ok()
    }

    /// Runs queued calls until none is left.
    fn drain(&self) {
        loop {
            let call = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                match queue.calls.pop_front() {
                    Some(call) => call,
                    None => {
                        // Under the lock: a call queued after this starts a
                        // task of its own.
                        queue.running -= 1;
                        return;
                    }
                }
            };
            // A panicking call drops its sender (its caller gets `None`);
            // the others still run.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(call));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every task ends once the queue is empty. A caller gets its result
    /// before the task that ran it looks at the queue again, so this waits
    /// (at most 5 s) for the count to reach zero rather than reading it once.
    async fn assert_tasks_end(combiner: &Combiner) {
        for _ in 0..500 {
            if combiner.queue.lock().unwrap().running == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("a blocking task is still running with nothing queued");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_runs_and_at_most_width_at_once() {
        let combiner = Combiner::new(2);
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..200usize {
            let (c, now, most) = (combiner.clone(), now.clone(), most.clone());
            calls.spawn(async move {
                c.run(move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    now.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                })
                .await
                .map(|r| (i, r))
            });
        }
        let mut seen = 0;
        while let Some(r) = calls.join_next().await {
            let (i, r) = r.unwrap().expect("no call panicked");
            assert_eq!(r, i * 2);
            seen += 1;
        }
        assert_eq!(seen, 200);
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} calls ran at once");
        assert_tasks_end(&combiner).await;
    }

    #[tokio::test]
    async fn a_panicking_call_fails_alone() {
        let combiner = Combiner::new(1);
        let bad = combiner.clone();
        let panicked = tokio::spawn(async move { bad.run(|| -> u32 { panic!("boom") }).await });
        assert_eq!(panicked.await.unwrap(), None);
        assert_eq!(combiner.run(|| 7).await, Some(7));
        assert_tasks_end(&combiner).await;
    }
}
