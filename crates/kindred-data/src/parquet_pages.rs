//! A bound on what a Parquet page may make the decoder reserve, checked before any page is
//! decoded.
//!
//! The `parquet` crate reserves a compressed page's declared uncompressed size (an `i32` of the
//! page header, up to 2 GiB) before it decompresses the page, so a file of a few kilobytes can
//! ask for gigabytes. Snappy, the one codec Kindred's build reads, cannot expand data by more
//! than about 21.3 times (its longest copy writes 64 bytes from a 3-byte tag), so a page that
//! declares more than [`MAX_EXPANSION`] times its stored size is malformed. This module walks the
//! page headers of every Snappy column chunk (Thrift compact protocol; only the two sizes are
//! read, every other field is skipped) and refuses such a file before the decoder sees it. Pages
//! stored uncompressed are decoded in place, and other codecs are refused by the reader, so
//! neither needs the walk.

use parquet::basic::Compression;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

/// Largest uncompressed/stored ratio accepted for a Snappy page (Snappy's own limit is ~21.3).
const MAX_EXPANSION: u64 = 32;
/// Added to the bound so that tiny pages (a few stored bytes) are never refused.
const SLACK_BYTES: u64 = 64;
/// How much of the file is read at first to parse one page header, and the most ever read for
/// one (headers carry statistics, so they have no fixed size; a real one is far smaller).
const FIRST_HEADER_READ: u64 = 4 * 1024;
const MAX_HEADER_READ: u64 = 16 * 1024 * 1024;
/// Nesting depth of Thrift values skipped; deeper is malformed (and would exhaust the stack).
const MAX_DEPTH: u32 = 32;

/// Checks the declared size of every page of every Snappy column chunk; the error says where
/// the file is malformed.
pub(crate) fn check_page_sizes<R: ChunkReader>(
    file: &R,
    metadata: &ParquetMetaData,
) -> Result<(), String> {
    let file_len = file.len();
    for (group_index, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            if column.compression() != Compression::SNAPPY {
                continue;
            }
            let place = || format!("row group {group_index}, column `{}`", column.column_path());
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let (Ok(start), Ok(len)) = (
                u64::try_from(start),
                u64::try_from(column.compressed_size()),
            ) else {
                return Err(format!("{}: negative offset or size", place()));
            };
            let end = start
                .checked_add(len)
                .filter(|&end| end <= file_len)
                .ok_or_else(|| {
                    format!("{}: column chunk ends past the end of the file", place())
                })?;
            let mut at = start;
            while at < end {
                let page = read_page_sizes(file, at, end)
                    .map_err(|why| format!("{}: page header at byte {at}: {why}", place()))?;
                if page.uncompressed > MAX_EXPANSION * page.stored + SLACK_BYTES {
                    return Err(format!(
                        "{}: the page at byte {at} declares {} bytes uncompressed from {} stored \
                         (more than Snappy can produce)",
                        place(),
                        page.uncompressed,
                        page.stored
                    ));
                }
                at = at
                    .checked_add(page.header_len + page.stored)
                    .ok_or_else(|| format!("{}: page at byte {at} overflows", place()))?;
            }
        }
    }
    Ok(())
}

/// The sizes a page header declares.
#[derive(Debug, PartialEq)]
struct PageSizes {
    /// Bytes of the header itself.
    header_len: u64,
    uncompressed: u64,
    /// Bytes of the page body after the header, as stored.
    stored: u64,
}

/// Parses the header at `at`, reading more of the file while the header runs past what was read.
fn read_page_sizes<R: ChunkReader>(file: &R, at: u64, end: u64) -> Result<PageSizes, String> {
    let mut window = FIRST_HEADER_READ;
    loop {
        let take = window.min(end - at);
        let bytes = file
            .get_bytes(at, take as usize)
            .map_err(|e| format!("unreadable: {e}"))?;
        match parse_page_sizes(&bytes) {
            Ok(sizes) => return Ok(sizes),
            Err(Malformed::Truncated) if take < end - at && window < MAX_HEADER_READ => window *= 4,
            Err(Malformed::Truncated) => return Err("truncated".into()),
            Err(Malformed::Invalid(why)) => return Err(why.into()),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Malformed {
    /// The bytes end before the header does.
    Truncated,
    Invalid(&'static str),
}

/// Reads fields 2 (`uncompressed_page_size`) and 3 (`compressed_page_size`) of a Thrift
/// compact-protocol `PageHeader` struct and the header's length.
fn parse_page_sizes(bytes: &[u8]) -> Result<PageSizes, Malformed> {
    let mut cursor = Cursor { bytes, at: 0 };
    let (mut uncompressed, mut stored) = (None, None);
    let mut field = 0i64;
    loop {
        let head = cursor.byte()?;
        if head == 0 {
            break;
        }
        let kind = head & 0x0f;
        field = match head >> 4 {
            0 => cursor.zigzag()?,
            delta => field + i64::from(delta),
        };
        // The sizes are i32s. The `parquet` crate reads a field by its id whatever wire type
        // the header gives it, so any other type there is refused rather than guessed at.
        let slot = match field {
            2 => &mut uncompressed,
            3 => &mut stored,
            _ => {
                cursor.skip_value(kind, 0, false)?;
                continue;
            }
        };
        if !matches!(kind, I16 | I32 | I64) {
            return Err(Malformed::Invalid("page size of the wrong type"));
        }
        let value = u32::try_from(cursor.zigzag()?)
            .ok()
            .filter(|&v| v <= i32::MAX as u32)
            .ok_or(Malformed::Invalid("page size out of range"))?;
        *slot = Some(u64::from(value));
    }
    let (Some(uncompressed), Some(stored)) = (uncompressed, stored) else {
        return Err(Malformed::Invalid("no page sizes"));
    };
    Ok(PageSizes {
        header_len: cursor.at as u64,
        uncompressed,
        stored,
    })
}

// Thrift compact-protocol type codes.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let byte = *self.bytes.get(self.at).ok_or(Malformed::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed::Invalid("varint longer than 10 bytes"))
    }

    fn zigzag(&mut self) -> Result<i64, Malformed> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn advance(&mut self, n: u64) -> Result<(), Malformed> {
        let n = usize::try_from(n).map_err(|_| Malformed::Truncated)?;
        let end = self.at.checked_add(n).ok_or(Malformed::Truncated)?;
        if end > self.bytes.len() {
            return Err(Malformed::Truncated);
        }
        self.at = end;
        Ok(())
    }

    /// Skips one value of type `kind`: a struct field's value (`in_collection` false: a boolean
    /// carries its value in the type code) or an element of a list, set or map.
    fn skip_value(&mut self, kind: u8, depth: u32, in_collection: bool) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed::Invalid("values nested too deep"));
        }
        match kind {
            // A boolean inside a list, set or map takes one byte; as a field, none.
            BOOL_TRUE | BOOL_FALSE => {
                if in_collection {
                    self.advance(1)?;
                }
            }
            BYTE => self.advance(1)?,
            I16 | I32 | I64 => {
                self.varint()?;
            }
            DOUBLE => self.advance(8)?,
            UUID => self.advance(16)?,
            BINARY => {
                let len = self.varint()?;
                self.advance(len)?;
            }
            LIST | SET => {
                let head = self.byte()?;
                let count = match head >> 4 {
                    15 => self.varint()?,
                    short => u64::from(short),
                };
                self.skip_elements(count, &[head & 0x0f], depth)?;
            }
            MAP => {
                let count = self.varint()?;
                if count > 0 {
                    let types = self.byte()?;
                    self.skip_elements(count, &[types >> 4, types & 0x0f], depth)?;
                }
            }
            STRUCT => loop {
                let head = self.byte()?;
                if head == 0 {
                    break;
                }
                if head >> 4 == 0 {
                    self.zigzag()?;
                }
                self.skip_value(head & 0x0f, depth + 1, false)?;
            },
            _ => return Err(Malformed::Invalid("unknown Thrift type")),
        }
        Ok(())
    }

    /// Skips `count` elements, each one value of every type in `kinds` in turn.
    fn skip_elements(&mut self, count: u64, kinds: &[u8], depth: u32) -> Result<(), Malformed> {
        for _ in 0..count {
            // Every element takes at least one byte: a count beyond what is left is malformed
            // (or truncated), not a reason to loop billions of times.
            if self.at >= self.bytes.len() {
                return Err(Malformed::Truncated);
            }
            for &kind in kinds {
                self.skip_value(kind, depth + 1, true)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact-protocol page header: type (field 1), uncompressed size (2), stored size (3),
    /// then `tail` (more fields and the stop byte).
    fn header(uncompressed: i32, stored: i32, tail: &[u8]) -> Vec<u8> {
        fn zigzag(v: i32, out: &mut Vec<u8>) {
            let mut z = ((v << 1) ^ (v >> 31)) as u32;
            loop {
                let byte = (z & 0x7f) as u8;
                z >>= 7;
                if z == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
        let mut out = vec![0x15];
        zigzag(0, &mut out);
        out.push(0x15);
        zigzag(uncompressed, &mut out);
        out.push(0x15);
        zigzag(stored, &mut out);
        out.extend_from_slice(tail);
        out
    }

    #[test]
    fn reads_the_two_sizes_and_the_header_length() {
        // Field 5 (data page header): a struct holding an i32 and a list of two booleans.
        let tail = [0x2c, 0x15, 0x04, 0x19, 0x21, 0x01, 0x02, 0x00, 0x00];
        let bytes = header(1000, 300, &tail);
        assert_eq!(
            parse_page_sizes(&bytes),
            Ok(PageSizes {
                header_len: bytes.len() as u64,
                uncompressed: 1000,
                stored: 300,
            })
        );
    }

    #[test]
    fn a_header_cut_short_is_truncated_and_nonsense_is_invalid() {
        let bytes = header(1000, 300, &[0x00]);
        assert_eq!(
            parse_page_sizes(&bytes[..bytes.len() - 1]),
            Err(Malformed::Truncated)
        );
        assert_eq!(
            parse_page_sizes(&header(-1, 300, &[0x00])),
            Err(Malformed::Invalid("page size out of range"))
        );
        // Field 3 as a boolean (what the fuzzer's file had).
        let mut wrong_type = header(1000, 300, &[0x00]);
        let at = wrong_type.len() - 4;
        wrong_type.truncate(at);
        wrong_type.extend_from_slice(&[0x12, 0x00]);
        assert_eq!(
            parse_page_sizes(&wrong_type),
            Err(Malformed::Invalid("page size of the wrong type"))
        );
        assert_eq!(
            parse_page_sizes(&[0x1e, 0x00]),
            Err(Malformed::Invalid("unknown Thrift type"))
        );
        // A list claiming a billion elements in four bytes ends at once.
        assert_eq!(
            parse_page_sizes(&[0x19, 0xf5, 0x80, 0x94, 0xeb, 0xdc, 0x03]),
            Err(Malformed::Truncated)
        );
        // Structs nested past the limit.
        let mut deep = vec![0x1c; 100];
        deep.push(0);
        assert_eq!(
            parse_page_sizes(&deep),
            Err(Malformed::Invalid("values nested too deep"))
        );
    }
}
