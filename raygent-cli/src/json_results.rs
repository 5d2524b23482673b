//! `--result-format json`: each result line read as one JSON value.

use std::borrow::Cow;

use raygent_core::{Task, TaskError};
use raygent_savers::Value;

/// Wraps a task whose results are lines: each becomes the JSON value it
/// holds. A line that is not JSON fails the chunk, naming the record.
#[derive(Debug, Clone)]
pub struct JsonResults<T>(pub T);

/// The longest piece of a bad line quoted in a message.
const QUOTE: usize = 200;

fn parse(line: String, item: &str) -> Result<Value, TaskError> {
    match serde_json::from_str::<Value>(&line) {
        Ok(mut v) => {
            json_ints(&mut v);
            Ok(v)
        }
        Err(e) => {
            let mut quoted: String = line.chars().take(QUOTE).collect();
            if quoted.len() < line.len() {
                quoted.push_str("...");
            }
            Err(format!(
                "the result for record {item:?} is not JSON ({e}): {quoted:?}; with \
                 --result-format json every result line must be one JSON value"
            )
            .into())
        }
    }
}

/// JSON integers are signed (int64 columns): only those past `i64::MAX`
/// stay unsigned.
fn json_ints(v: &mut Value) {
    match v {
        Value::UInt(u) => {
            if let Ok(i) = i64::try_from(*u) {
                *v = Value::Int(i);
            }
        }
        Value::List(items) => items.iter_mut().for_each(json_ints),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, x)| json_ints(x)),
        _ => {}
    }
}

impl<T: Task<Input = String, Output = String>> Task for JsonResults<T> {
    type Input = String;
    type Output = Value;

    fn process_item(&mut self, item: &String) -> Result<Value, TaskError> {
        parse(self.0.process_item(item)?, item)
    }

    fn process_items(&mut self, items: &[String]) -> Result<Vec<Value>, TaskError> {
        let lines = self.0.process_items(items)?;
        lines
            .into_iter()
            .zip(items)
            .map(|(line, item)| parse(line, item))
            .collect()
    }

    fn name(&self) -> Cow<'static, str> {
        self.0.name()
    }

    fn version(&self) -> Cow<'static, str> {
        self.0.version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Task for Echo {
        type Input = String;
        type Output = String;
        fn process_item(&mut self, item: &String) -> Result<String, TaskError> {
            Ok(item.clone())
        }
    }

    #[test]
    fn lines_become_json_values_with_signed_ints() {
        let mut t = JsonResults(Echo);
        let got = t
            .process_items(&[
                r#"{"b": 1, "a": [2, -3, 1.5]}"#.to_owned(),
                "\"s\"".into(),
                "7".into(),
            ])
            .unwrap();
        assert_eq!(
            serde_json::to_string(&got[0]).unwrap(),
            r#"{"b":1,"a":[2,-3,1.5]}"#
        );
        assert_eq!(got[0].get("b"), Some(&Value::Int(1)));
        assert_eq!(got[1], Value::String("s".into()));
        assert_eq!(got[2], Value::Int(7));
        let err = t
            .process_item(&"not json".to_owned())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not JSON") && err.contains("\"not json\""),
            "{err}"
        );
    }
}
