//! Kindred's errors as Python exceptions: bad input (a spec, a parameter, a column) is a
//! `ValueError`, a file that cannot be read an `OSError`, a cancelled job `KeyboardInterrupt`,
//! anything else `kindred.KindredError`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::PyErr;

create_exception!(
    kindred,
    KindredError,
    PyException,
    "An error from Kindred that is not about the input (a failed fit, a corrupt model file)."
);

/// The Python exception for `error`.
pub fn to_py(error: kindred_core::Error) -> PyErr {
    use kindred_core::Error;
    match error {
        Error::Cancelled => PyKeyboardInterrupt::new_err("cancelled"),
        Error::Io { .. } => PyOSError::new_err(error.to_string()),
        Error::InvalidInput(_)
        | Error::Spec { .. }
        | Error::Parse { .. }
        | Error::Config { .. }
        | Error::BadFile { .. } => PyValueError::new_err(error.to_string()),
        other => KindredError::new_err(other.to_string()),
    }
}
