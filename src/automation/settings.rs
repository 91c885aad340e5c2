//! What the settings (`config`) mean for automation: the sandbox limits of
//! script runs and how the worker behaves. Here, not in `config`, so that
//! settings stay a leaf that every module may read.

use super::script::Limits;
use super::worker::WorkerSettings;
use crate::config::{AutomationSettings, ScriptSettings};

impl ScriptSettings {
    /// The sandbox limits of script runs.
    pub fn limits(&self) -> Limits {
        Limits {
            wall_clock: std::time::Duration::from_millis(self.script_timeout_ms),
            max_operations: self.script_max_operations,
            max_output_bytes: self.script_max_output_bytes,
            max_attributes_bytes: self.max_attributes_bytes,
            ..Default::default()
        }
    }
}

impl AutomationSettings {
    /// The sandbox limits of script runs.
    pub fn script_limits(&self) -> Limits {
        self.scripts.limits()
    }

    /// How often the sweep of time-based segments runs.
    pub fn sweep_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.segment_sweep_ms.max(10))
    }

    /// How often the worker and the dispatcher look for work unannounced.
    pub fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.automation_poll_ms.max(10))
    }

    /// How the worker behaves.
    pub fn worker(&self) -> WorkerSettings {
        WorkerSettings {
            max_depth: self.automation_max_depth,
            max_attempts: self.automation_max_attempts,
            runs_kept: self.script_runs_kept,
            lease: std::time::Duration::from_millis(self.automation_lease_ms.max(100)),
            poll_interval: self.poll_interval(),
            // One largest plan per write transaction at most (and the
            // small plans of a batch together).
            batch_bytes: match self.scripts.script_max_output_bytes {
                0 => WorkerSettings::default().batch_bytes,
                n => n,
            },
            ..Default::default()
        }
    }
}
