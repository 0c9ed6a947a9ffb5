//! Printing results as an aligned table, JSON or YAML. A [`Record`] keeps its fields in the
//! order they are declared, so the three formats show the same columns in the same order.

use clap::ValueEnum;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// One object to print: named fields, in order. Details (long JSON, nested lists) appear in
/// JSON and YAML only, so that tables stay one short line per object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    fields: Vec<(&'static str, Value)>,
    details: Vec<(&'static str, Value)>,
}

impl Record {
    pub fn new() -> Record {
        Record::default()
    }

    pub fn with(mut self, name: &'static str, value: impl Into<Value>) -> Record {
        self.fields.push((name, value.into()));
        self
    }

    pub fn detail(mut self, name: &'static str, value: impl Into<Value>) -> Record {
        self.details.push((name, value.into()));
        self
    }
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len() + self.details.len()))?;
        for (k, v) in self.fields.iter().chain(&self.details) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Renders a list; tables get a header row, JSON and YAML a list of objects.
pub fn list(format: Format, records: &[Record]) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(records)? + "\n"),
        Format::Yaml => Ok(serde_yaml_ng::to_string(records)?),
        Format::Table => Ok(table(records)),
    }
}

/// Renders one object; a table shows it as one row.
pub fn one(format: Format, record: &Record) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(record)? + "\n"),
        Format::Yaml => Ok(serde_yaml_ng::to_string(record)?),
        Format::Table => Ok(table(std::slice::from_ref(record))),
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn table(records: &[Record]) -> String {
    let Some(first) = records.first() else {
        return "(none)\n".into();
    };
    let header: Vec<String> = first
        .fields
        .iter()
        .map(|(k, _)| k.to_ascii_uppercase())
        .collect();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| r.fields.iter().map(|(_, v)| cell(v)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Record> {
        vec![
            Record::new()
                .with("id", "org_1")
                .with("cap", 10)
                .detail("extra", "x"),
            Record::new().with("id", "org_22").with("cap", Value::Null),
        ]
    }

    #[test]
    fn tables_align_and_keep_field_order() {
        assert_eq!(
            list(Format::Table, &rows()).unwrap(),
            "ID      CAP\norg_1   10\norg_22  -\n"
        );
        assert_eq!(list(Format::Table, &[]).unwrap(), "(none)\n");
    }

    #[test]
    fn json_and_yaml_keep_field_order() {
        let json = list(Format::Json, &rows()).unwrap();
        assert!(json.find("\"id\"").unwrap() < json.find("\"cap\"").unwrap());
        let yaml = one(Format::Yaml, &rows()[0]).unwrap();
        assert_eq!(yaml, "id: org_1\ncap: 10\nextra: x\n");
    }
}
