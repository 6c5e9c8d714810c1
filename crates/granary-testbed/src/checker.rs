//! The history checker: reads a run's merged history ([`crate::history::read_run`])
//! and reports every anomaly it finds. (Filled in by the checker's own change.)
