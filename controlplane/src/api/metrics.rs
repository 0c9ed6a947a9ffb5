//! `GET /metrics` on the control plane's own port (never passed through by dataplanes): the
//! published configuration version, snapshot builds, and what each dataplane last acknowledged,
//! with the records it set aside. Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;

pub async fn get(State(state): State<ApiState>) -> impl IntoResponse {
    let publisher = &state.manage.publisher;
    let m = &publisher.metrics;
    let mut out = String::with_capacity(1024);
    let _ = writeln!(
        out,
        "# HELP switchyard_config_version The configuration version last published."
    );
    let _ = writeln!(out, "# TYPE switchyard_config_version gauge");
    let _ = writeln!(
        out,
        "switchyard_config_version {}",
        publisher.current_version()
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_snapshot_quarantined_records Records of the published snapshot that dataplanes will set aside."
    );
    let _ = writeln!(out, "# TYPE switchyard_snapshot_quarantined_records gauge");
    let _ = writeln!(
        out,
        "switchyard_snapshot_quarantined_records {}",
        publisher.current().quarantine.records().len()
    );
    let _ = writeln!(out, "# TYPE switchyard_snapshot_builds_total counter");
    for (outcome, v) in [("ok", &m.builds), ("failed", &m.build_failures)] {
        let _ = writeln!(
            out,
            "switchyard_snapshot_builds_total{{outcome=\"{outcome}\"}} {}",
            v.load(Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_snapshot_deltas_total Versions published as a key delta (builds count whole snapshots)."
    );
    let _ = writeln!(out, "# TYPE switchyard_snapshot_deltas_total counter");
    let _ = writeln!(
        out,
        "switchyard_snapshot_deltas_total {}",
        m.deltas.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_snapshot_compactions_total Whole snapshots brought forward over the key deltas after them."
    );
    let _ = writeln!(out, "# TYPE switchyard_snapshot_compactions_total counter");
    let _ = writeln!(
        out,
        "switchyard_snapshot_compactions_total {}",
        m.compactions.load(Relaxed)
    );
    let _ = writeln!(out, "# TYPE switchyard_snapshot_acks_total counter");
    for (outcome, v) in [
        ("accepted", &m.acks_accepted),
        ("rejected", &m.acks_rejected),
    ] {
        let _ = writeln!(
            out,
            "switchyard_snapshot_acks_total{{outcome=\"{outcome}\"}} {}",
            v.load(Relaxed)
        );
    }
    let mut acks: Vec<_> = publisher.acks().into_iter().collect();
    acks.sort_by(|a, b| a.0.cmp(&b.0));
    let _ = writeln!(
        out,
        "# HELP switchyard_dataplane_snapshot_version The version each dataplane last acknowledged."
    );
    let _ = writeln!(out, "# TYPE switchyard_dataplane_snapshot_version gauge");
    for (id, ack) in &acks {
        let _ = writeln!(
            out,
            "switchyard_dataplane_snapshot_version{{dataplane=\"{}\",accepted=\"{}\"}} {}",
            label(id),
            ack.accepted,
            ack.version
        );
    }
    let _ = writeln!(out, "# TYPE switchyard_dataplane_quarantined_records gauge");
    for (id, ack) in &acks {
        let _ = writeln!(
            out,
            "switchyard_dataplane_quarantined_records{{dataplane=\"{}\"}} {}",
            label(id),
            ack.quarantined.len()
        );
    }
    let _ = writeln!(
        out,
        "# TYPE switchyard_dataplane_last_ack_timestamp_seconds gauge"
    );
    for (id, ack) in &acks {
        let _ = writeln!(
            out,
            "switchyard_dataplane_last_ack_timestamp_seconds{{dataplane=\"{}\"}} {}",
            label(id),
            ack.at_ms / 1000
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// A label value with the characters Prometheus escapes escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
