//! Step checkpoints (datarax's `IteratorCheckpoint`) and stage checkpoints
//! (agatha's `checkpoint`) on `raygent-ckpt`, for `raygent.checkpoint`.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use raygent_ckpt::{MetaValue, SaveOptions, StageCheckpoints, StepCheckpointer, step_dir_name};
use raygent_savers::Location;

use crate::errors::{ckpt_error, save_error};
use crate::saver::s3_options;
use crate::value::Value;

fn open(url: &str, s3: Option<&Bound<'_, PyDict>>) -> PyResult<Location> {
    Location::parse_with(url, &s3_options(s3)?).map_err(|e| save_error(&e))
}

/// Step-indexed checkpoints of any state under one URL.
#[pyclass(module = "raygent._native")]
pub struct StepStore {
    inner: Option<StepCheckpointer>,
    url: String,
}

impl StepStore {
    fn steps(&self) -> PyResult<&StepCheckpointer> {
        self.inner
            .as_ref()
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("checkpointer is closed"))
    }
}

fn meta_value(v: &Bound<'_, PyAny>, key: &str) -> PyResult<MetaValue> {
    if v.is_instance_of::<PyBool>() {
        Ok(MetaValue::Bool(v.extract()?))
    } else if v.is_instance_of::<PyInt>() {
        Ok(MetaValue::Int(v.extract()?))
    } else if v.is_instance_of::<PyFloat>() {
        Ok(MetaValue::Float(v.extract()?))
    } else if v.is_instance_of::<PyString>() {
        Ok(MetaValue::Str(v.extract()?))
    } else {
        Err(PyTypeError::new_err(format!(
            "metadata value for {key:?} is a {}: metadata values must be int, str, float or bool",
            v.get_type().name()?
        )))
    }
}

fn meta_to_py<'py>(py: Python<'py>, v: &MetaValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        MetaValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        MetaValue::Int(i) => i.into_pyobject(py)?.into_any(),
        MetaValue::Float(f) => PyFloat::new(py, *f).into_any(),
        MetaValue::Str(s) => PyString::new(py, s).into_any(),
    })
}

#[pymethods]
impl StepStore {
    #[new]
    #[pyo3(signature = (url, async_mode=false, s3=None))]
    fn new(url: &str, async_mode: bool, s3: Option<Bound<'_, PyDict>>) -> PyResult<Self> {
        let loc = open(url, s3.as_ref())?;
        let steps = StepCheckpointer::new(Arc::clone(loc.store()), loc.prefix().clone())
            .map_err(|e| ckpt_error(&e))?
            .with_async(async_mode);
        let steps = match loc.local_dir() {
            Some(dir) => steps.with_local_dir(dir),
            None => steps,
        };
        Ok(StepStore {
            inner: Some(steps),
            url: loc.url().trim_end_matches('/').to_owned(),
        })
    }

    /// Saves `state` as step `step`, keeping the `keep` newest steps
    /// (None: all); returns the step's location.
    #[pyo3(signature = (step, state, keep=None, overwrite=false, metadata=None))]
    fn save(
        &mut self,
        py: Python<'_>,
        step: u64,
        state: &Bound<'_, PyAny>,
        keep: Option<usize>,
        overwrite: bool,
        metadata: Option<Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let value = Value::from_py(state)?;
        let mut opts = SaveOptions::new().with_overwrite(overwrite);
        if let Some(m) = metadata {
            for (k, v) in m.iter() {
                let key: String = k
                    .extract()
                    .map_err(|_| PyTypeError::new_err("metadata keys must be strings"))?;
                let mv = meta_value(&v, &key)?;
                opts = opts.with_meta(key, mv);
            }
        }
        if let Some(k) = keep
            && let Some(s) = self.inner.take()
        {
            self.inner = Some(s.with_keep(k));
        }
        let steps = self.steps()?;
        py.detach(|| steps.save_state(step, &value, opts))
            .map_err(|e| ckpt_error(&e))?;
        Ok(format!("{}/{}", self.url, step_dir_name(step)))
    }

    /// The state saved at `step`.
    fn load<'py>(&self, py: Python<'py>, step: u64) -> PyResult<Bound<'py, PyAny>> {
        let steps = self.steps()?;
        let v: Value = py
            .detach(|| steps.load_state::<Value>(step))
            .map_err(|e| ckpt_error(&e))?;
        v.to_py(py)
    }

    /// The committed steps, oldest first.
    fn list_steps(&self, py: Python<'_>) -> PyResult<Vec<u64>> {
        let steps = self.steps()?;
        py.detach(|| steps.list_steps()).map_err(|e| ckpt_error(&e))
    }

    /// The newest committed step, or None.
    fn latest_step(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let steps = self.steps()?;
        py.detach(|| steps.latest_step())
            .map_err(|e| ckpt_error(&e))
    }

    /// The metadata of `step`: the user's, plus `step` and `created_at_ms`.
    fn metadata<'py>(&self, py: Python<'py>, step: u64) -> PyResult<Bound<'py, PyDict>> {
        let steps = self.steps()?;
        let m = py
            .detach(|| steps.metadata(step))
            .map_err(|e| ckpt_error(&e))?;
        let d = PyDict::new(py);
        for (k, v) in &m.user {
            d.set_item(k, meta_to_py(py, v)?)?;
        }
        d.set_item("step", m.step)?;
        d.set_item("created_at_ms", m.created_at_ms)?;
        Ok(d)
    }

    /// Waits for background saves; raises the first that failed.
    fn wait_until_finished(&self, py: Python<'_>) -> PyResult<()> {
        let steps = self.steps()?;
        py.detach(|| steps.wait_until_finished())
            .map_err(|e| ckpt_error(&e))
    }

    /// Deletes every step.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let steps = self.steps()?;
        py.detach(|| steps.clear()).map_err(|e| ckpt_error(&e))
    }

    /// The location of `step`.
    fn step_url(&self, step: u64) -> String {
        format!("{}/{}", self.url, step_dir_name(step))
    }

    /// The location of the checkpoints.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }
}

/// Named, partitioned checkpoints under one root URL.
#[pyclass(module = "raygent._native")]
pub struct StageStore {
    inner: StageCheckpoints,
    url: String,
}

#[pymethods]
impl StageStore {
    #[new]
    #[pyo3(signature = (url, s3=None))]
    fn new(url: &str, s3: Option<Bound<'_, PyDict>>) -> PyResult<Self> {
        let loc = open(url, s3.as_ref())?;
        let inner = StageCheckpoints::new(Arc::clone(loc.store()), loc.prefix().clone())
            .map_err(|e| ckpt_error(&e))?;
        Ok(StageStore {
            inner,
            url: loc.url().trim_end_matches('/').to_owned(),
        })
    }

    /// Whether checkpoint `name` is finished.
    fn is_done(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        py.detach(|| self.inner.is_done(name))
            .map_err(|e| ckpt_error(&e))
    }

    /// The number of partitions of finished checkpoint `name`.
    fn partitions(&self, py: Python<'_>, name: &str) -> PyResult<usize> {
        py.detach(|| self.inner.partitions(name))
            .map_err(|e| ckpt_error(&e))
    }

    /// Partition `index` of finished checkpoint `name`.
    fn load_partition<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        index: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let v: Vec<Value> = py
            .detach(|| self.inner.load_partition::<Value>(name, index))
            .map_err(|e| ckpt_error(&e))?;
        let objs = v
            .iter()
            .map(|x| x.to_py(py))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, objs)?.into_any())
    }

    /// The partitions below `n` an unfinished checkpoint already holds.
    fn written_partitions(&self, py: Python<'_>, name: &str, n: usize) -> PyResult<Vec<usize>> {
        py.detach(|| self.inner.written_partitions(name, n))
            .map_err(|e| ckpt_error(&e))
    }

    /// Writes partition `index` (a list) of checkpoint `name`.
    fn write_partition(
        &self,
        py: Python<'_>,
        name: &str,
        index: usize,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let values = data
            .try_iter()?
            .map(|x| x.and_then(|x| Value::from_py(&x)))
            .collect::<PyResult<Vec<Value>>>()?;
        py.detach(|| self.inner.write_partition(name, index, &values))
            .map_err(|e| ckpt_error(&e))
    }

    /// Marks checkpoint `name` finished with `n` partitions.
    fn finish(&self, py: Python<'_>, name: &str, n: usize) -> PyResult<()> {
        py.detach(|| self.inner.finish(name, n))
            .map_err(|e| ckpt_error(&e))
    }

    /// Deletes checkpoint `name`.
    fn clear(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        py.detach(|| self.inner.clear(name))
            .map_err(|e| ckpt_error(&e))
    }

    /// Deletes every checkpoint under the root.
    fn clear_all(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.clear_all())
            .map_err(|e| ckpt_error(&e))
    }

    /// The names of the checkpoints matching `glob`, sorted.
    fn list(&self, py: Python<'_>, glob: &str) -> PyResult<Vec<String>> {
        py.detach(|| self.inner.list(glob))
            .map_err(|e| ckpt_error(&e))
    }

    /// The root's location.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }
}
