//! `raygent cat --format csv`: results as CSV rows.

use std::io::Write;

use raygent_savers::Value;

/// Writes results as CSV: the header comes from the first result (its
/// fields, or one column named `value`), each later result must fit it.
#[derive(Debug, Default)]
pub struct CsvOut {
    /// The columns; `None` until the first result, empty for plain values.
    header: Option<Vec<String>>,
    row: Vec<String>,
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => serde_json::to_string(f).unwrap_or_else(|_| f.to_string()),
        // Nested values as JSON, in one cell.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn record(w: &mut impl Write, fields: &[String]) -> std::io::Result<()> {
    let mut c = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(64));
    c.write_record(fields).map_err(std::io::Error::other)?;
    let bytes = c
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    w.write_all(&bytes)
}

impl CsvOut {
    /// Writes result `index` (`v`), with the header before the first one.
    pub fn write(&mut self, w: &mut impl Write, index: usize, v: Value) -> std::io::Result<()> {
        let header = match &self.header {
            Some(h) => h,
            None => {
                let h: Vec<String> = match &v {
                    Value::Map(entries) => entries.iter().map(|(k, _)| k.to_string()).collect(),
                    _ => Vec::new(),
                };
                if h.is_empty() {
                    record(w, &["value".to_owned()])?;
                } else {
                    record(w, &h)?;
                }
                self.header.insert(h)
            }
        };
        self.row.clear();
        match v {
            Value::Map(entries) if !header.is_empty() => {
                self.row.resize(header.len(), String::new());
                for (i, (k, x)) in entries.iter().enumerate() {
                    let at = match header.get(i) {
                        Some(h) if h == k => Some(i),
                        _ => header.iter().position(|h| h == k),
                    };
                    match at {
                        Some(j) => self.row[j] = cell(x),
                        None => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!(
                                    "result {index} has a field `{k}` that the first result has \
                                     not, and CSV needs one set of columns (use --format jsonl)"
                                ),
                            ));
                        }
                    }
                }
            }
            other if header.is_empty() => self.row.push(cell(&other)),
            other => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "result {index} is a {}, but the first result was a struct with columns; \
                         CSV needs one set of columns (use --format jsonl)",
                        other.type_name()
                    ),
                ));
            }
        }
        record(w, &self.row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_get_a_header_and_plain_values_a_value_column() {
        let mut out = Vec::new();
        let mut csv = CsvOut::default();
        let rows: Vec<Value> = [
            r#"{"a": 1, "b": "x, y"}"#,
            r#"{"b": "z", "a": null}"#,
            r#"{"a": 2, "b": [1, 2]}"#,
        ]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
        for (i, r) in rows.into_iter().enumerate() {
            csv.write(&mut out, i, r).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b\n1,\"x, y\"\n,z\n2,\"[1,2]\"\n"
        );
        let mut out = Vec::new();
        let mut csv = CsvOut::default();
        csv.write(&mut out, 0, Value::Float(1.5)).unwrap();
        csv.write(&mut out, 1, Value::String("two".into())).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "value\n1.5\ntwo\n");
        // A struct among plain values is one JSON cell.
        let mut out = Vec::new();
        let c: Value = serde_json::from_str(r#"{"c": 1}"#).unwrap();
        csv.write(&mut out, 2, c.clone()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"{\"\"c\"\":1}\"\n");
        // A field the header lacks is refused, naming the result.
        let mut csv = CsvOut::default();
        let a: Value = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        csv.write(&mut Vec::new(), 0, a).unwrap();
        let err = csv.write(&mut Vec::new(), 1, c).unwrap_err();
        assert!(err.to_string().contains("result 1"), "{err}");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
