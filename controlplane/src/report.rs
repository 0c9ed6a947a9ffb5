//! Usage exports rendered for people: CSV (the `csv` crate) and a PDF report (`pdf-writer`, the
//! typst project's PDF writer: the standard Helvetica font, so nothing is embedded). Both render
//! the same [`Export`], so their numbers are the same numbers, exact to the picodollar as the
//! ledger records them.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use switchyard_policy::Money;

use crate::manage::activity::{Export, ExportLine};

/// One line per group and a total; costs are exact decimal USD.
pub fn csv(export: &Export) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        export.group.as_str(),
        "label",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "reasoning_tokens",
        "cached_tokens",
        "usage_usd",
        "byok_usage_usd",
    ])?;
    for line in export.lines.iter().chain(std::iter::once(&export.total)) {
        let t = &line.totals;
        out.write_record([
            line.group.clone(),
            line.label.clone(),
            t.requests.to_string(),
            t.prompt_tokens.to_string(),
            t.completion_tokens.to_string(),
            t.reasoning_tokens.to_string(),
            t.cached_tokens.to_string(),
            line.usage.to_string(),
            line.byok_usage.to_string(),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// A4, in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const ROW: f32 = 14.0;
/// Where the table's rows stop on a page.
const BOTTOM: f32 = 60.0;
const REGULAR: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");

/// Text for a standard font (WinAnsi): printable ASCII as is, anything else as `?`.
fn text(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) {
                c as u8
            } else {
                b'?'
            }
        })
        .collect()
}

/// Helvetica's advance widths (per 1000 em) for what numbers hold; others taken as 556.
fn width(s: &str, size: f32) -> f32 {
    let units: u32 = s
        .chars()
        .map(|c| match c {
            '.' | ',' | ' ' => 278,
            '-' => 333,
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let kept: String = s.chars().take(max.saturating_sub(3)).collect();
        format!("{kept}...")
    }
}

struct Writer {
    content: Content,
}

impl Writer {
    fn at(&mut self, font: Name, size: f32, x: f32, y: f32, s: &str) {
        self.content.begin_text();
        self.content.set_font(font, size);
        self.content.next_line(x, y);
        self.content.show(Str(&text(s)));
        self.content.end_text();
    }

    /// Right-aligned at `right`.
    fn right(&mut self, font: Name, size: f32, right: f32, y: f32, s: &str) {
        self.at(font, size, right - width(s, size), y, s);
    }

    fn rule(&mut self, y: f32) {
        self.content.set_stroke_rgb(0.6, 0.6, 0.6);
        self.content.set_line_width(0.5);
        self.content.move_to(MARGIN, y);
        self.content.line_to(PAGE_W - MARGIN, y);
        self.content.stroke();
    }
}

/// The table's columns: where each right-aligned number ends.
const COLUMNS: [(&str, f32); 4] = [
    ("Requests", 265.0),
    ("Tokens", 325.0),
    // Exact amounts run to 12 decimals: room for them.
    ("Usage (USD)", 435.0),
    ("BYOK (USD)", PAGE_W - MARGIN),
];

fn table_header(w: &mut Writer, y: f32, group: &str) {
    w.at(BOLD, 9.0, MARGIN, y, group);
    for (title, right) in COLUMNS {
        w.right(BOLD, 9.0, right, y, title);
    }
    w.rule(y - 4.0);
}

fn table_row(w: &mut Writer, y: f32, line: &ExportLine, font: Name) {
    let t = &line.totals;
    w.at(font, 9.0, MARGIN, y, &shorten(&line.label, 34));
    let cells = [
        t.requests.to_string(),
        (t.prompt_tokens + t.completion_tokens).to_string(),
        line.usage.to_string(),
        line.byok_usage.to_string(),
    ];
    for ((_, right), cell) in COLUMNS.iter().zip(cells) {
        w.right(font, 9.0, *right, y, &cell);
    }
}

/// The spend-per-day chart: a bar per day, scaled to the busiest, between `bottom` and `top`.
fn chart(w: &mut Writer, daily: &[(String, Money)], bottom: f32, top: f32) {
    let left = MARGIN;
    let right = PAGE_W - MARGIN;
    w.content.set_stroke_rgb(0.6, 0.6, 0.6);
    w.content.set_line_width(0.5);
    w.content.rect(left, bottom, right - left, top - bottom);
    w.content.stroke();
    let max = daily.iter().map(|(_, m)| *m).max().unwrap_or(Money::ZERO);
    let scale = max.as_usd_f64();
    if !daily.is_empty() && scale > 0.0 {
        let slot = (right - left) / daily.len() as f32;
        w.content.set_fill_rgb(0.16, 0.38, 0.75);
        for (i, (_, spend)) in daily.iter().enumerate() {
            let h = ((spend.as_usd_f64() / scale) as f32) * (top - bottom - 4.0);
            if h > 0.0 {
                let x = left + slot * i as f32 + slot * 0.15;
                w.content.rect(x, bottom, slot * 0.7, h);
                w.content.fill_nonzero();
            }
        }
        w.content.set_fill_rgb(0.0, 0.0, 0.0);
    }
    w.at(
        REGULAR,
        8.0,
        left + 2.0,
        top + 3.0,
        &format!("max {max} USD per day"),
    );
    if let (Some((first, _)), Some((last, _))) = (daily.first(), daily.last()) {
        w.at(REGULAR, 8.0, left, bottom - 10.0, first);
        w.right(REGULAR, 8.0, right, bottom - 10.0, last);
    }
}

/// The report: title, organization, period, the chart and the table with its total, over as
/// many A4 pages as the table needs. `generated` is printed as given (the caller's clock).
pub fn pdf(export: &Export, generated: &str) -> Vec<u8> {
    let mut pages: Vec<Content> = Vec::new();
    let mut w = Writer {
        content: Content::new(),
    };
    w.at(BOLD, 20.0, MARGIN, PAGE_H - 60.0, "Usage report");
    let facts = [
        format!(
            "Organization: {} ({})",
            export.organization_name, export.organization_id
        ),
        format!(
            "Period: {} to {} (UTC, inclusive)",
            export.start, export.end
        ),
        format!("Grouped by: {}", export.group.as_str()),
        format!("Generated: {generated}"),
    ];
    for (i, fact) in facts.iter().enumerate() {
        w.at(REGULAR, 10.0, MARGIN, PAGE_H - 85.0 - 14.0 * i as f32, fact);
    }
    w.at(
        BOLD,
        11.0,
        MARGIN,
        PAGE_H - 160.0,
        "Spend per day (credits, USD)",
    );
    chart(&mut w, &export.daily, PAGE_H - 330.0, PAGE_H - 175.0);
    let mut y = PAGE_H - 370.0;
    table_header(&mut w, y, export.group.as_str());
    y -= ROW + 2.0;
    for line in &export.lines {
        if y < BOTTOM + ROW {
            pages.push(std::mem::replace(&mut w.content, Content::new()));
            y = PAGE_H - 60.0;
            table_header(&mut w, y, export.group.as_str());
            y -= ROW + 2.0;
        }
        table_row(&mut w, y, line, REGULAR);
        y -= ROW;
    }
    w.rule(y + ROW - 4.0);
    table_row(&mut w, y - 2.0, &export.total, BOLD);
    pages.push(w.content);

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_page = 6;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first_page + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(TextStr("Usage report"))
        .producer(TextStr("Switchyard"));
    for (i, content) in pages.into_iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        resources.fonts().pair(REGULAR, regular).pair(BOLD, bold);
        resources.finish();
        page.finish();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}
