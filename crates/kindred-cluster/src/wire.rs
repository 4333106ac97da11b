//! The byte layout of messages between workers: little-endian numbers and length-prefixed
//! strings appended to a buffer, read back in the same order. Hand-rolled rather than serde so
//! that bulk factor rows are plain `memcpy`-sized appends and the bytes a job exchanges are
//! exactly the bytes counted.

use crate::error::{Error, Result};

/// Appends values to a message.
#[derive(Debug, Default)]
pub struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, v: &str) {
        self.u32(v.len() as u32);
        self.bytes.extend_from_slice(v.as_bytes());
    }
    pub fn f64s(&mut self, v: &[f64]) {
        self.bytes.reserve(v.len() * 8);
        for x in v {
            self.f64(*x);
        }
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.bytes.reserve(v.len() * 4);
        for x in v {
            self.f32(*x);
        }
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Reads values back from a received message; errors name the sending worker.
pub struct Reader<'a> {
    bytes: &'a [u8],
    from: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], from: usize) -> Self {
        Self { bytes, from }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::Wire {
                from: self.from,
                message: format!("needed {n} more bytes, {} left", self.bytes.len()),
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    pub fn str(&mut self) -> Result<&'a str> {
        let n = self.u32()? as usize;
        let from = self.from;
        std::str::from_utf8(self.take(n)?).map_err(|e| Error::Wire {
            from,
            message: format!("string is not UTF-8: {e}"),
        })
    }
    /// Appends `n` f64 values to `out`.
    pub fn f64s_into(&mut self, n: usize, out: &mut Vec<f64>) -> Result<()> {
        let raw = self.take(n * 8)?;
        out.extend(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
        );
        Ok(())
    }
    /// Appends `n` f32 values to `out`.
    pub fn f32s_into(&mut self, n: usize, out: &mut Vec<f32>) -> Result<()> {
        let raw = self.take(n * 4)?;
        out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_is_an_error() {
        let mut w = Writer::default();
        w.u8(3);
        w.u32(70_000);
        w.u64(u64::MAX - 1);
        w.f32(1.5);
        w.f64(-2.25);
        w.str("user é");
        w.f64s(&[1.0, 2.0]);
        w.f32s(&[3.0]);
        let mut r = Reader::new(&w.bytes, 1);
        assert_eq!(r.u8().unwrap(), 3);
        assert_eq!(r.u32().unwrap(), 70_000);
        assert_eq!(r.u64().unwrap(), u64::MAX - 1);
        assert_eq!(r.f32().unwrap(), 1.5);
        assert_eq!(r.f64().unwrap(), -2.25);
        assert_eq!(r.str().unwrap(), "user é");
        let mut v = Vec::new();
        r.f64s_into(2, &mut v).unwrap();
        assert_eq!(v, vec![1.0, 2.0]);
        let mut v32 = Vec::new();
        r.f32s_into(1, &mut v32).unwrap();
        assert_eq!(v32, vec![3.0]);
        assert!(r.is_empty());
        let err = r.u32().unwrap_err().to_string();
        assert!(
            err.contains("worker 1") && err.contains("needed 4"),
            "{err}"
        );
    }
}
