//! Background jobs the admin API starts (imports, evaluations, training): run one at a time in
//! the order submitted, with progress, and kept after they end so that a reloaded page (or a
//! script polling `GET /v1/admin/jobs/{id}`) still reads how they went. A full queue refuses new
//! jobs (`overloaded`) instead of growing without end. Jobs live in this process: a restart
//! forgets them (an import is one transaction, so none is left half-written).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use kefu_protocol::ErrorCode;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::store::{new_id, now_ms, rfc3339};

/// Jobs waiting for their turn before new ones are refused.
pub const MAX_QUEUED: usize = 8;
/// Ended jobs remembered (the oldest are forgotten first).
pub const KEEP_ENDED: usize = 200;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

/// Why a job failed, in the API's error vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobError {
    #[schema(schema_with = crate::http::openapi::error_code_schema)]
    pub code: ErrorCode,
    pub message: String,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    /// What it does (`import`, …).
    pub kind: String,
    /// What it works on (a knowledge base's name, …).
    pub target: String,
    /// What else names it (an uploaded file's name, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub status: JobStatus,
    /// 0 to 1.
    pub progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// What a finished job produced (an import's report, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

struct Job {
    view: JobView,
    finished_ms: Option<i64>,
}

/// The job table (cheap to clone).
#[derive(Clone)]
pub struct Jobs {
    table: Arc<Mutex<VecDeque<Job>>>,
    /// One job runs at a time: each already uses every core it can.
    turn: Arc<Semaphore>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self {
            table: Arc::new(Mutex::new(VecDeque::new())),
            turn: Arc::new(Semaphore::new(1)),
        }
    }
}

/// What a running job reports through.
#[derive(Clone)]
pub struct JobHandle {
    id: String,
    jobs: Jobs,
}

impl JobHandle {
    /// Reports progress (clamped to 0..1).
    pub fn progress(&self, fraction: f64) {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.jobs.update(&self.id, |v| v.progress = fraction);
    }
}

impl Jobs {
    /// Queues `work` and returns the new job's id; `None` when `MAX_QUEUED` jobs are waiting.
    pub fn submit<F, Fut>(
        &self,
        kind: &str,
        target: &str,
        detail: Option<&str>,
        work: F,
    ) -> Option<String>
    where
        F: FnOnce(JobHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        let id = new_id("job_");
        {
            let mut table = self.lock();
            let queued = table
                .iter()
                .filter(|j| j.view.status == JobStatus::Queued)
                .count();
            if queued >= MAX_QUEUED {
                return None;
            }
            table.push_back(Job {
                view: JobView {
                    id: id.clone(),
                    kind: kind.to_string(),
                    target: target.to_string(),
                    detail: detail.map(str::to_string),
                    status: JobStatus::Queued,
                    progress: 0.0,
                    error: None,
                    result: None,
                    created_at: rfc3339(now_ms()),
                    finished_at: None,
                },
                finished_ms: None,
            });
            forget_old(&mut table);
        }
        let jobs = self.clone();
        let handle = JobHandle {
            id: id.clone(),
            jobs: self.clone(),
        };
        tokio::spawn(async move {
            let Ok(_turn) = Arc::clone(&jobs.turn).acquire_owned().await else {
                return;
            };
            jobs.update(&handle.id, |v| v.status = JobStatus::Running);
            let job_id = handle.id.clone();
            // Run on its own task: a panic fails the job instead of leaving it "running".
            let outcome = tokio::spawn(work(handle)).await;
            let outcome = outcome.unwrap_or_else(|e| {
                tracing::error!(job = %job_id, error = %e, "job panicked");
                Err(JobError {
                    code: ErrorCode::Internal,
                    message: "internal error".into(),
                })
            });
            if let Err(e) = &outcome {
                tracing::warn!(job = %job_id, code = e.code.as_str(), message = %e.message, "job failed");
            }
            jobs.finish(&job_id, outcome);
        });
        Some(id)
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<JobView> {
        self.lock()
            .iter()
            .find(|j| j.view.id == id)
            .map(|j| j.view.clone())
    }

    /// Every remembered job, newest first.
    pub fn list(&self) -> Vec<JobView> {
        self.lock().iter().rev().map(|j| j.view.clone()).collect()
    }

    fn finish(&self, id: &str, outcome: Result<Value, JobError>) {
        let now = now_ms();
        let mut table = self.lock();
        if let Some(job) = table.iter_mut().find(|j| j.view.id == id) {
            job.finished_ms = Some(now);
            job.view.finished_at = Some(rfc3339(now));
            match outcome {
                Ok(result) => {
                    job.view.status = JobStatus::Done;
                    job.view.progress = 1.0;
                    job.view.result = Some(result);
                }
                Err(e) => {
                    job.view.status = JobStatus::Failed;
                    job.view.error = Some(e);
                }
            }
        }
        forget_old(&mut table);
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut JobView)) {
        if let Some(job) = self.lock().iter_mut().find(|j| j.view.id == id) {
            change(&mut job.view);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Drops the oldest ended jobs beyond `KEEP_ENDED`.
fn forget_old(table: &mut VecDeque<Job>) {
    let mut ended = table.iter().filter(|j| j.finished_ms.is_some()).count();
    table.retain(|j| {
        if ended > KEEP_ENDED && j.finished_ms.is_some() {
            ended -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    async fn ended(jobs: &Jobs, id: &str) -> JobView {
        for _ in 0..200 {
            let v = jobs.get(id).expect("job");
            if matches!(v.status, JobStatus::Done | JobStatus::Failed) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} did not end");
    }

    #[tokio::test]
    async fn jobs_run_one_at_a_time_report_progress_results_and_failures() {
        let jobs = Jobs::default();
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let first = jobs
            .submit("import", "default", Some("faq.csv"), |h| async move {
                h.progress(0.5);
                let _ = hold.await;
                Ok(json!({"entries": 3}))
            })
            .expect("queued");
        let second = jobs
            .submit("import", "faq", None, |_| async move {
                Err(JobError {
                    code: ErrorCode::ParseError,
                    message: "faq.csv:2: answer is empty".into(),
                })
            })
            .expect("queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let v = jobs.get(&first).expect("first");
        assert_eq!((v.status, v.progress), (JobStatus::Running, 0.5));
        assert_eq!(jobs.get(&second).expect("second").status, JobStatus::Queued);
        release.send(()).expect("release");
        let v = ended(&jobs, &first).await;
        assert_eq!(v.status, JobStatus::Done);
        assert_eq!(v.result, Some(json!({"entries": 3})));
        let v = ended(&jobs, &second).await;
        assert_eq!(v.status, JobStatus::Failed);
        assert_eq!(v.error.expect("error").code, ErrorCode::ParseError);
        assert_eq!(jobs.list()[0].id, second, "newest first");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_and_a_full_queue_refuses() {
        let jobs = Jobs::default();
        let id = jobs
            .submit("import", "x", None, |_| async move {
                if true {
                    panic!("boom");
                }
                Ok(Value::Null)
            })
            .expect("queued");
        let v = ended(&jobs, &id).await;
        assert_eq!(v.error.expect("error").code, ErrorCode::Internal);

        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        jobs.submit("hold", "x", None, |_| async move {
            let _ = hold.await;
            Ok(Value::Null)
        })
        .expect("queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..MAX_QUEUED {
            jobs.submit("wait", "x", None, |_| async { Ok(Value::Null) })
                .expect("room in the queue");
        }
        assert!(jobs
            .submit("wait", "x", None, |_| async { Ok(Value::Null) })
            .is_none());
        release.send(()).expect("release");
    }
}
