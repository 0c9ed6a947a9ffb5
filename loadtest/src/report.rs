//! Turning a `Recorder` into what people read: a JSON document, a text summary and an SVG
//! percentile-spectrum plot.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde_json::{Value, json};

use crate::load::{Mode, Plan, Recorder};

fn percentiles(h: &Histogram<u64>, scale: f64) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let at = |q: f64| h.value_at_quantile(q) as f64 / scale;
    json!({
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p99_9": at(0.999),
        "max": h.max() as f64 / scale,
        "mean": h.mean() / scale,
    })
}

/// The run as JSON. Latencies are in milliseconds.
pub fn json(plan: &Plan, recorder: &Recorder, target: &str) -> Value {
    let seconds = plan.duration.as_secs_f64();
    let ok: u64 = recorder
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    let mut doc = json!({
        "target": target,
        "mode": match plan.mode { Mode::Open { .. } => "open", Mode::Closed => "closed" },
        "requested_rate": match plan.mode { Mode::Open { rate } => json!(rate), Mode::Closed => Value::Null },
        "connections": plan.connections,
        "duration_s": seconds,
        "warmup_s": plan.warmup.as_secs_f64(),
        "body_bytes": plan.body.len(),
        "stream": plan.stream,
        "requests": recorder.sent,
        "ok": ok,
        "achieved_rps": recorder.sent as f64 / seconds,
        "ok_rps": ok as f64 / seconds,
        "statuses": recorder.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "transport_errors": recorder.transport_errors,
        "latency_ms": percentiles(&recorder.latency, 1000.0),
    });
    if plan.stream {
        doc["stream_stats"] = json!({
            "time_to_first_token_ms": percentiles(&recorder.first_token, 1000.0),
            "time_to_last_token_ms": percentiles(&recorder.latency, 1000.0),
            "tokens_per_s": percentiles(&recorder.tokens_per_s_milli, 1000.0),
            "tokens": recorder.tokens,
        });
    }
    doc
}

/// A few human lines.
pub fn summary(doc: &Value) -> String {
    let l = &doc["latency_ms"];
    let mut text = format!(
        "{} requests in {:.1}s: {:.0} req/s achieved, {} ok\nlatency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\nstatuses: {}  transport errors: {}",
        doc["requests"],
        doc["duration_s"].as_f64().unwrap_or(0.0),
        doc["achieved_rps"].as_f64().unwrap_or(0.0),
        doc["ok"],
        l["p50"].as_f64().unwrap_or(0.0),
        l["p90"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0),
        l["p99_9"].as_f64().unwrap_or(0.0),
        l["max"].as_f64().unwrap_or(0.0),
        doc["statuses"],
        doc["transport_errors"],
    );
    if let Some(s) = doc.get("stream_stats") {
        text.push_str(&format!(
            "\nstream: first token p50 {:.3} ms p99 {:.3} ms; last token p50 {:.3} ms; {:.0} tokens/s p50",
            s["time_to_first_token_ms"]["p50"].as_f64().unwrap_or(0.0),
            s["time_to_first_token_ms"]["p99"].as_f64().unwrap_or(0.0),
            s["time_to_last_token_ms"]["p50"].as_f64().unwrap_or(0.0),
            s["tokens_per_s"]["p50"].as_f64().unwrap_or(0.0),
        ));
    }
    text
}

/// Draws HdrHistogram percentile spectra (x: 1/(1-p) on a log axis, y: latency in ms) for one
/// or more named histograms.
pub fn plot_svg(
    path: &Path,
    title: &str,
    series: &[(&str, &Histogram<u64>)],
) -> Result<(), String> {
    let points: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| {
            let pts = h
                .iter_quantiles(1)
                .map(|v| {
                    let q = v.quantile_iterated_to().min(0.999_999);
                    (1.0 / (1.0 - q), v.value_iterated_to() as f64 / 1000.0)
                })
                .collect();
            (*name, pts)
        })
        .collect();
    let max_x = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(10.0, f64::max);
    let max_y = points
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(0.001, f64::max);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..max_x).log_scale(), 0.0..max_y * 1.1)
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{:.4}%", 100.0 * (1.0 - 1.0 / x)))
        .draw()
        .map_err(|e| draw(&e))?;
    let colors = [&BLUE, &RED, &GREEN, &MAGENTA, &BLACK];
    for (i, (name, pts)) in points.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| draw(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))
}
