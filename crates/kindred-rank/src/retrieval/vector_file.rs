//! Vector matrices on disk, in the two formats other vector-search tools read and write, so the
//! same file can be indexed by Kindred and by hnswlib or faiss side by side:
//! - `.npy` (NumPy's array format, versions 1 to 3): a two-dimensional little-endian array of
//!   `float32` (or `float64`, narrowed on reading), C order; ground-truth id arrays are written
//!   as `int32`.
//! - `.fvecs` (the format of the classic SIFT/GIST benchmark sets): each row is its dimension as
//!   a little-endian `i32`, then that many `f32` values.
//!
//! Every error names the file and what was wrong in it: the header field, or the row.

use std::path::Path;

use kindred_core::{Error, Result};

/// A row-major matrix read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatrix {
    pub dim: usize,
    /// `rows() * dim` values, row after row.
    pub values: Vec<f32>,
}

impl VectorMatrix {
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads `.npy` or `.fvecs` by the file's extension.
pub fn read_vectors(path: &Path) -> Result<VectorMatrix> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => parse_npy(path, &bytes),
        Some("fvecs") => parse_fvecs(path, &bytes),
        _ => Err(Error::BadFile {
            file: path.to_path_buf(),
            message: "unknown vector file type: expected a .npy or .fvecs file".into(),
        }),
    }
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::BadFile {
        file: path.to_path_buf(),
        message: message.into(),
    }
}

fn header_field(path: &Path, field: &str, message: impl Into<String>) -> Error {
    Error::Parse {
        file: path.to_path_buf(),
        line: 1,
        field: format!("npy header {field}"),
        message: message.into(),
    }
}

/// The value text of `key` in the header's Python dict literal, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        return rest.find(')').map(|end| &rest[..=end]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// A checked `.npy` array: its element type, row width and data bytes (a whole number of rows).
struct NpyArray<'a> {
    descr: &'a str,
    dim: usize,
    data: &'a [u8],
}

/// Reads and checks a `.npy` header: magic, version, C order, two dimensions, and a data length
/// that matches the shape for element types `<f4`, `<f8` and `<i4`.
fn npy_array<'a>(path: &Path, bytes: &'a [u8]) -> Result<NpyArray<'a>> {
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(bad(path, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad(path, format!("unsupported .npy version {major}"))),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .ok_or_else(|| bad(path, "the .npy header runs past the end of the file"))?;
    let header =
        std::str::from_utf8(header).map_err(|_| bad(path, "the .npy header is not text"))?;
    let descr = dict_value(header, "descr")
        .ok_or_else(|| header_field(path, "descr", "missing"))?
        .trim_matches(|c| c == '\'' || c == '"');
    let width = match descr {
        "<f4" | "<i4" => 4,
        "<f8" => 8,
        other => {
            return Err(header_field(
                path,
                "descr",
                format!("`{other}`: expected little-endian float32 (`<f4`), float64 (`<f8`) or int32 (`<i4`)"),
            ))
        }
    };
    match dict_value(header, "fortran_order") {
        Some("False") => {}
        Some("True") => {
            return Err(header_field(
                path,
                "fortran_order",
                "the array is in Fortran order: save it in C order (numpy.ascontiguousarray)",
            ))
        }
        _ => {
            return Err(header_field(
                path,
                "fortran_order",
                "missing or not a boolean",
            ))
        }
    }
    let shape_text =
        dict_value(header, "shape").ok_or_else(|| header_field(path, "shape", "missing"))?;
    let shape: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            header_field(
                path,
                "shape",
                format!("`{shape_text}` is not a tuple of sizes"),
            )
        })?;
    let [rows, dim] = shape[..] else {
        return Err(header_field(
            path,
            "shape",
            format!("`{shape_text}`: expected two dimensions (rows, dim)"),
        ));
    };
    if dim == 0 {
        return Err(header_field(path, "shape", "the dimension is 0"));
    }
    let want = rows
        .checked_mul(dim)
        .and_then(|v| v.checked_mul(width))
        .ok_or_else(|| header_field(path, "shape", "too large"))?;
    let data = &bytes[data_start..];
    if data.len() != want {
        return Err(bad(
            path,
            format!(
                "shape ({rows}, {dim}) needs {want} bytes of data, the file has {}",
                data.len()
            ),
        ));
    }
    Ok(NpyArray { descr, dim, data })
}

fn parse_npy(path: &Path, bytes: &[u8]) -> Result<VectorMatrix> {
    let NpyArray { descr, dim, data } = npy_array(path, bytes)?;
    let values: Vec<f32> = match descr {
        "<f4" => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        other => {
            return Err(header_field(
                path,
                "descr",
                format!("`{other}`: vectors must be float32 (`<f4`) or float64 (`<f8`)"),
            ))
        }
    };
    check_finite(path, dim, &values)?;
    Ok(VectorMatrix { dim, values })
}

/// Reads an int32 `.npy` array (ground-truth ids, as [`write_npy_i32`] writes them): its row
/// width and the values, row after row.
pub fn read_npy_i32(path: &Path) -> Result<(usize, Vec<i32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let array = npy_array(path, &bytes)?;
    if array.descr != "<i4" {
        return Err(header_field(
            path,
            "descr",
            format!("`{}`: expected int32 (`<i4`)", array.descr),
        ));
    }
    let values = array
        .data
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((array.dim, values))
}

fn parse_fvecs(path: &Path, bytes: &[u8]) -> Result<VectorMatrix> {
    let row_error = |row: usize, field: &str, message: String| Error::Parse {
        file: path.to_path_buf(),
        line: row as u64 + 1,
        field: field.into(),
        message,
    };
    let mut values = Vec::new();
    let mut dim = 0usize;
    let mut at = 0usize;
    let mut row = 0usize;
    while at < bytes.len() {
        let head = bytes.get(at..at + 4).ok_or_else(|| {
            row_error(row, "dim", "the file ends inside a row's dimension".into())
        })?;
        let d = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if d <= 0 {
            return Err(row_error(
                row,
                "dim",
                format!("dimension {d} is not positive"),
            ));
        }
        let d = d as usize;
        if row == 0 {
            dim = d;
        } else if d != dim {
            return Err(row_error(
                row,
                "dim",
                format!("dimension {d} differs from the first row's {dim}"),
            ));
        }
        let body = bytes.get(at + 4..at + 4 + 4 * d).ok_or_else(|| {
            row_error(
                row,
                "values",
                format!("the file ends inside the row's {d} values"),
            )
        })?;
        values.extend(
            body.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        at += 4 + 4 * d;
        row += 1;
    }
    if row == 0 {
        return Err(bad(path, "the file holds no vectors"));
    }
    check_finite(path, dim, &values)?;
    Ok(VectorMatrix { dim, values })
}

fn check_finite(path: &Path, dim: usize, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(pos) => Err(Error::Parse {
            file: path.to_path_buf(),
            line: (pos / dim) as u64 + 1,
            field: format!("column {}", pos % dim),
            message: format!(
                "value {} is not finite (the line is the row, from 1)",
                values[pos]
            ),
        }),
    }
}

/// The `.npy` header for a C-order array of `descr` and `shape`, padded so the data starts on a
/// 64-byte boundary as the format asks.
fn npy_header(descr: &str, rows: usize, dim: usize) -> Vec<u8> {
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let unpadded = NPY_MAGIC.len() + 4 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(unpadded + padding);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

fn write_npy(
    path: &Path,
    descr: &str,
    dim: usize,
    rows: usize,
    body: impl Iterator<Item = [u8; 4]>,
) -> Result<()> {
    let mut bytes = npy_header(descr, rows, dim);
    bytes.reserve(rows * dim * 4);
    body.for_each(|b| bytes.extend_from_slice(&b));
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Writes `values` (row-major, `dim` columns) as a float32 `.npy` array.
pub fn write_npy_f32(path: &Path, dim: usize, values: &[f32]) -> Result<()> {
    let rows = check_shape(path, dim, values.len())?;
    write_npy(
        path,
        "<f4",
        dim,
        rows,
        values.iter().map(|v| v.to_le_bytes()),
    )
}

/// Writes `values` (row-major, `dim` columns) as an int32 `.npy` array (ground-truth ids).
pub fn write_npy_i32(path: &Path, dim: usize, values: &[i32]) -> Result<()> {
    let rows = check_shape(path, dim, values.len())?;
    write_npy(
        path,
        "<i4",
        dim,
        rows,
        values.iter().map(|v| v.to_le_bytes()),
    )
}

fn check_shape(path: &Path, dim: usize, len: usize) -> Result<usize> {
    if dim == 0 || !len.is_multiple_of(dim) {
        return Err(bad(
            path,
            format!("cannot write {len} values as rows of dimension {dim}"),
        ));
    }
    Ok(len / dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory (removed when dropped) and the path of file `name` in it.
    fn temp(name: &str) -> (kindred_testkit::TestDir, std::path::PathBuf) {
        let dir = kindred_testkit::TestDir::new("vector-file");
        let path = dir.join(name);
        (dir, path)
    }

    #[test]
    fn npy_round_trips_and_the_data_starts_on_a_64_byte_boundary() {
        let (_dir, path) = temp("a.npy");
        let values: Vec<f32> = (0..15).map(|v| v as f32 * 0.5 - 3.0).collect();
        write_npy_f32(&path, 5, &values).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            (bytes.len() - 60) % 64,
            0,
            "header is a multiple of 64 bytes"
        );
        let read = read_vectors(&path).unwrap();
        assert_eq!(read.dim, 5);
        assert_eq!(read.rows(), 3);
        assert_eq!(read.values, values);
    }

    #[test]
    fn npy_written_by_numpy_is_read() {
        // The bytes numpy 1.26 writes for np.array([[1, 2], [3, 4]], dtype='<f8').
        let mut bytes = b"\x93NUMPY\x01\x00v\x00".to_vec();
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }";
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend(std::iter::repeat_n(b' ', 118 - dict.len() - 1));
        bytes.push(b'\n');
        for v in [1f64, 2.0, 3.0, 4.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let (_dir, path) = temp("numpy.npy");
        std::fs::write(&path, bytes).unwrap();
        let read = read_vectors(&path).unwrap();
        assert_eq!((read.dim, read.values), (2, vec![1.0, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn npy_errors_name_the_header_field() {
        let (_dir, path) = temp("bad.npy");
        let ints: Vec<i32> = vec![1, 2, 3, 4];
        write_npy_i32(&path, 2, &ints).unwrap();
        let err = read_vectors(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.npy") && err.contains("descr") && err.contains("<i4"),
            "{err}"
        );

        let mut bytes = npy_header("<f4", 2, 3);
        bytes.extend_from_slice(&[0u8; 20]);
        std::fs::write(&path, &bytes).unwrap();
        let err = read_vectors(&path).unwrap_err().to_string();
        assert!(
            err.contains("needs 24 bytes") && err.contains("has 20"),
            "{err}"
        );

        let mut bytes = npy_header("<f4", 1, 2);
        bytes.extend_from_slice(&1f32.to_le_bytes());
        bytes.extend_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = read_vectors(&path).unwrap_err().to_string();
        assert!(err.contains(":1:") && err.contains("column 1"), "{err}");

        std::fs::write(&path, b"not numpy").unwrap();
        assert!(read_vectors(&path)
            .unwrap_err()
            .to_string()
            .contains("magic"));
    }

    #[test]
    fn fvecs_rows_are_read_and_a_ragged_row_is_named() {
        let (_dir, path) = temp("a.fvecs");
        let mut bytes = Vec::new();
        for row in [[1f32, 2.0, 3.0], [4.0, 5.0, 6.0]] {
            bytes.extend_from_slice(&3i32.to_le_bytes());
            row.iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        std::fs::write(&path, &bytes).unwrap();
        let read = read_vectors(&path).unwrap();
        assert_eq!((read.dim, read.rows()), (3, 2));
        assert_eq!(read.values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

        bytes.extend_from_slice(&2i32.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(&path, &bytes).unwrap();
        let err = read_vectors(&path).unwrap_err().to_string();
        assert!(err.contains(":3:") && err.contains("differs"), "{err}");

        let truncated = &bytes[..bytes.len() - 18];
        std::fs::write(&path, truncated).unwrap();
        assert!(read_vectors(&path)
            .unwrap_err()
            .to_string()
            .contains("ends inside"));
    }

    #[test]
    fn an_unknown_extension_is_refused() {
        let (_dir, path) = temp("a.csv");
        std::fs::write(&path, b"1,2").unwrap();
        assert!(read_vectors(&path)
            .unwrap_err()
            .to_string()
            .contains(".npy or .fvecs"));
    }
}
