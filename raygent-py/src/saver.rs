//! Savers and readers: a Python `Saver` driven by the runtime, the
//! runtime's `DatasetSaver` (local directory or S3), and `DatasetReader`.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyRange};
use raygent_core::{Batch, ResumePoint, SaveError, Saver};
use raygent_savers::{DatasetReader, DatasetSaver, Format, PartInfo, PartResults, S3Options};

use crate::errors;
use crate::task::describe_error;
use crate::value::{CsvRecord, CsvRow, Out, SaveMode, Value, with_mode};

/// S3 settings from a Python dict (`endpoint`, `region`, `access_key_id`,
/// `secret_access_key`, `session_token`, `allow_http`); keys left out come
/// from the AWS environment variables.
pub fn s3_options(d: Option<&Bound<'_, PyDict>>) -> PyResult<S3Options> {
    let mut o = S3Options::default();
    let Some(d) = d else { return Ok(o) };
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        o = match key.as_str() {
            "endpoint" | "endpoint_url" => o.with_endpoint(v.extract::<String>()?),
            "region" => o.with_region(v.extract::<String>()?),
            "access_key_id" => o.with_access_key_id(v.extract::<String>()?),
            "secret_access_key" => o.with_secret_access_key(v.extract::<String>()?),
            "session_token" => o.with_session_token(v.extract::<String>()?),
            "allow_http" => o.with_allow_http(v.extract::<bool>()?),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown S3 option {other:?}: use endpoint, region, access_key_id, \
                     secret_access_key, session_token or allow_http"
                )));
            }
        };
    }
    Ok(o)
}

/// The format named `name` (`cbor`, `jsonl`, `csv`).
pub fn format(name: &str) -> PyResult<Format> {
    name.parse::<Format>().map_err(|_| {
        PyValueError::new_err(format!(
            "unknown format {name:?}: use \"cbor\" (any picklable result), \"jsonl\" or \"csv\""
        ))
    })
}

/// The runtime's `DatasetSaver` for Python results: JSON Lines and CSV
/// refuse pickled results with a message instead of writing bytes.
pub struct NativeSaver {
    inner: DatasetSaver,
    mode: SaveMode,
}

impl NativeSaver {
    /// A saver for `url`.
    pub fn open(
        url: &str,
        format_name: &str,
        overwrite: bool,
        s3: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<NativeSaver> {
        let f = format(format_name)?;
        let opts = raygent_savers::SaverOptions::default()
            .with_format(f)
            .with_overwrite(overwrite)
            .with_s3(s3_options(s3)?);
        let inner = DatasetSaver::create(url, opts).map_err(|e| errors::save_error(&e))?;
        let mode = match f {
            Format::Cbor => SaveMode::Any,
            Format::Csv => SaveMode::Csv,
            _ => SaveMode::Plain,
        };
        Ok(NativeSaver { inner, mode })
    }
}

impl Saver<Out> for NativeSaver {
    fn save(&mut self, batch: &Batch<'_, Out>) -> Result<(), SaveError> {
        with_mode(self.mode, || Saver::<Out>::save(&mut self.inner, batch))
    }
    fn submit(&mut self, batch: &Batch<'_, Out>) -> Result<u64, SaveError> {
        with_mode(self.mode, || Saver::<Out>::submit(&mut self.inner, batch))
    }
    fn flush(&mut self) -> Result<(), SaveError> {
        Saver::<Out>::flush(&mut self.inner)
    }
    fn finish(&mut self) -> Result<(), SaveError> {
        Saver::<Out>::finish(&mut self.inner)
    }
    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        Saver::<Out>::resume(&mut self.inner, point)
    }
    fn can_resume(&self) -> bool {
        Saver::<Out>::can_resume(&self.inner)
    }
    fn check_empty(&mut self) -> Result<(), SaveError> {
        Saver::<Out>::check_empty(&mut self.inner)
    }
    fn describe(&self) -> String {
        Saver::<Out>::describe(&self.inner)
    }
}

/// A Python object implementing the seed's `Saver` interface:
/// `save(data, indices=None, **kwargs)`, and for checkpointed jobs
/// `resume(next_index)`.
pub struct PySaver {
    saver: Py<PyAny>,
    kwargs: Py<PyDict>,
    can_resume: bool,
    description: String,
    /// Batches saved so far (each `save` call).
    pub saves: Arc<Mutex<u64>>,
}

impl PySaver {
    /// Wraps `saver`; `kwargs` go to every `save` call.
    pub fn new(saver: &Bound<'_, PyAny>, kwargs: Bound<'_, PyDict>) -> PyResult<PySaver> {
        let can_resume = match saver.getattr_opt("resume")? {
            Some(r) => r.is_callable(),
            None => false,
        };
        let cls = saver.get_type();
        let mut description = format!(
            "python saver {}.{}",
            cls.module()?.to_cow()?,
            cls.qualname()?.to_cow()?
        );
        if let Some(d) = saver.getattr_opt("describe")?
            && d.is_callable()
        {
            let text: String = d.call0()?.str()?.extract()?;
            if !text.is_empty() {
                description = format!("{description} ({text})");
            }
        }
        Ok(PySaver {
            saver: saver.clone().unbind(),
            kwargs: kwargs.unbind(),
            can_resume,
            description,
            saves: Arc::new(Mutex::new(0)),
        })
    }

    fn call(
        &self,
        what: &str,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<()>,
    ) -> Result<(), SaveError> {
        Python::attach(|py| {
            f(py, self.saver.bind(py)).map_err(|e| {
                SaveError::Other(
                    format!(
                        "{} {what} failed: {}",
                        self.description,
                        describe_error(py, &e)
                    )
                    .into(),
                )
            })
        })
    }

    fn optional(&self, method: &str) -> Result<(), SaveError> {
        self.call(method, |_, s| {
            if let Some(m) = s.getattr_opt(method)?
                && m.is_callable()
            {
                m.call0()?;
            }
            Ok(())
        })
    }
}

impl Saver<Out> for PySaver {
    fn save(&mut self, batch: &Batch<'_, Out>) -> Result<(), SaveError> {
        self.call("save", |py, s| {
            let data = crate::blob::to_py_list(py, batch.results.iter().map(|v| &v.0))?;
            let n = data.len() as u64;
            let kwargs = self.kwargs.bind(py).copy()?;
            if batch.items.end - batch.items.start == n {
                let start = i64::try_from(batch.items.start).unwrap_or(i64::MAX);
                let end = i64::try_from(batch.items.end).unwrap_or(i64::MAX);
                kwargs.set_item("indices", PyRange::new(py, start as isize, end as isize)?)?;
            } else {
                kwargs.set_item("indices", py.None())?;
            }
            s.call_method("save", (data,), Some(&kwargs))?;
            Ok(())
        })?;
        *self.saves.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<(), SaveError> {
        self.optional("finish")
    }
    fn resume(&mut self, point: &ResumePoint) -> Result<(), SaveError> {
        self.call("resume", |_, s| {
            s.call_method1("resume", (point.next_item,))?;
            Ok(())
        })
    }
    fn can_resume(&self) -> bool {
        self.can_resume
    }
    fn check_empty(&mut self) -> Result<(), SaveError> {
        self.optional("check_empty")
    }
    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// Reads a dataset saved by `DatasetSaver` (or `raygent run`): every
/// committed result, in input order.
#[pyclass(module = "raygent._native", unsendable)]
pub struct NativeReader {
    reader: Arc<DatasetReader>,
}

#[pymethods]
impl NativeReader {
    #[new]
    #[pyo3(signature = (url, s3=None))]
    fn new(py: Python<'_>, url: &str, s3: Option<Bound<'_, PyDict>>) -> PyResult<Self> {
        let s3 = s3_options(s3.as_ref())?;
        let url = url.to_owned();
        let reader = py
            .detach(|| DatasetReader::open_with(&url, &s3))
            .map_err(|e| errors::save_error(&e))?;
        Ok(NativeReader {
            reader: Arc::new(reader),
        })
    }

    /// The number of committed results.
    fn __len__(&self) -> usize {
        usize::try_from(self.reader.result_count()).unwrap_or(usize::MAX)
    }

    /// Whether the job that wrote the dataset finished.
    #[getter]
    fn complete(&self) -> bool {
        self.reader.is_complete()
    }

    /// The format of the parts (`cbor`, `jsonl`, `csv`), or None when empty.
    #[getter]
    fn format(&self) -> Option<String> {
        self.reader.format().map(|f| f.to_string())
    }

    /// The committed parts: (first chunk, end chunk, results) each.
    #[getter]
    fn parts(&self) -> Vec<(u64, u64, u64)> {
        self.reader
            .parts()
            .iter()
            .map(|p: &PartInfo| {
                let c = p.chunks();
                (c.start, c.end, p.results)
            })
            .collect()
    }

    /// The dataset's URL.
    #[getter]
    fn url(&self) -> String {
        self.reader.url().to_owned()
    }

    fn __iter__(&self) -> ReaderIter {
        ReaderIter {
            reader: Arc::clone(&self.reader),
            next_part: 0,
            current: None,
            failed: false,
        }
    }
}

/// The results of one part, decoded as its format needs.
enum Current {
    Any(PartResults<Value>),
    CsvRows(PartResults<CsvRow>),
    CsvRecords(PartResults<CsvRecord>),
}

impl Current {
    fn open(reader: &DatasetReader, part: &PartInfo) -> Result<Current, raygent_savers::Error> {
        Ok(if part.format == "csv" && part.params.header {
            Current::CsvRows(reader.part_results(part)?)
        } else if part.format == "csv" {
            Current::CsvRecords(reader.part_results(part)?)
        } else {
            Current::Any(reader.part_results(part)?)
        })
    }

    fn next(&mut self) -> Option<Result<Value, raygent_savers::Error>> {
        match self {
            Current::Any(p) => p.next(),
            Current::CsvRows(p) => p.next().map(|r| r.map(|v| v.0)),
            Current::CsvRecords(p) => p.next().map(|r| r.map(|v| v.0)),
        }
    }
}

/// An iterator over a dataset's results, part by part.
#[pyclass(module = "raygent._native", unsendable)]
pub struct ReaderIter {
    reader: Arc<DatasetReader>,
    next_part: usize,
    current: Option<Current>,
    failed: bool,
}

#[pymethods]
impl ReaderIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.failed {
            return Ok(None);
        }
        loop {
            if let Some(cur) = self.current.as_mut() {
                match cur.next() {
                    Some(Ok(v)) => return v.to_py(py).map(Some),
                    Some(Err(e)) => {
                        self.failed = true;
                        return Err(errors::save_error(&e));
                    }
                    None => self.current = None,
                }
            }
            let Some(part) = self.reader.parts().get(self.next_part) else {
                return Ok(None);
            };
            let part = part.clone();
            self.next_part += 1;
            let reader = Arc::clone(&self.reader);
            match Current::open(&reader, &part) {
                Ok(p) => self.current = Some(p),
                Err(e) => {
                    self.failed = true;
                    return Err(errors::save_error(&e));
                }
            }
        }
    }
}
