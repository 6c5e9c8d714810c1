//! What a server and a device say to each other in the `iot` scenario.

use granary::remote::register_message;
use granary::{Actor, Context, Handler, Message};
use serde::{Deserialize, Serialize};

/// The name each device exposes its reporter under.
pub(super) const REPORTER: &str = "reporter";

/// Values in one report (seed 003 §5.3: 64-bit integers numbered 1 to 1,000).
pub(super) const REPORT_LEN: i64 = 1_000;

/// What every correct report sums to.
pub(super) const REPORT_SUM: i64 = REPORT_LEN * (REPORT_LEN + 1) / 2;

/// Server → device: "send me a report".
#[derive(Serialize, Deserialize)]
pub(super) struct ReportRequest;

impl Message for ReportRequest {
    type Reply = Report;
}
register_message!(ReportRequest, "granary-bench.iot.ReportRequest");

/// Device → server: the values aggregated since the last report.
#[derive(Serialize, Deserialize)]
pub(super) struct Report(pub(super) Vec<i64>);
register_message!(Report, "granary-bench.iot.Report");

/// The device-side actor that answers report requests.
pub(super) struct Reporter;

impl Actor for Reporter {}

impl Handler<ReportRequest> for Reporter {
    async fn handle(&mut self, _msg: ReportRequest, _ctx: &mut Context<Self>) -> Report {
        Report((1..=REPORT_LEN).collect())
    }
}
