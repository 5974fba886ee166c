//! The ILSVRC2012 devkit's class ids: `data/meta.mat` maps each ILSVRC2012_ID (the numbers in
//! `ILSVRC2012_validation_ground_truth.txt`) to a wnid. Its ids are not in sorted-wnid order, so
//! they cannot be used as class indices directly.
//!
//! meta.mat is a MATLAB 5 MAT-file (MathWorks, "MAT-File Format", the Level 5 layout): a 128-byte
//! header, then data elements, each possibly zlib-compressed; the variable `synsets` is a struct
//! array whose fields `ILSVRC2012_ID` (a number) and `WNID` (text) are all that is read here.
//!
//! Why our own reader: the `matfile` crate reads numeric arrays only, not the struct arrays and
//! character arrays `synsets` is made of; this reader is that one variable's path through the
//! format, with every size checked against the file and a cap on inflated data (fuzzed in
//! `tests/suite/fuzz.rs`).

use std::io::Read;
use std::path::Path;

use super::{ClassEntry, ClassTable, DataError};

/// The largest ILSVRC2012_ID accepted (the devkit's meta.mat has 1860 synsets, ids 1..=1860); a
/// bigger id means a damaged file, and would make the table needlessly large.
const MAX_ID: usize = 100_000;

/// The most bytes a compressed variable may inflate to (the devkit's synsets take about 200 KB);
/// more means a damaged file or a zlib bomb.
const MAX_INFLATED: u64 = 64 << 20;

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;

const MX_STRUCT: u32 = 2;
const MX_CHAR: u32 = 4;

/// A MATLAB array, as far as meta.mat needs.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Numbers(Vec<f64>),
    Text(String),
    /// Field names and, per element, one value per field.
    Struct(Vec<String>, Vec<Vec<Value>>),
    /// Cells, objects, sparse arrays: not needed, skipped by their length.
    Other,
}

/// The devkit's synsets in ILSVRC2012_ID order: entry `id - 1` holds the wnid and the words of
/// ILSVRC2012_ID `id` (ids 1..=1000 are the classes); ids the file does not have are entries
/// with an empty wnid.
pub fn read_meta_mat(path: &Path) -> Result<ClassTable, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::dataset(path, e.to_string()))?;
    let error = |reason: String| DataError::dataset(path, reason);
    if bytes.len() < 128 || &bytes[126..128] != b"IM" {
        return Err(error(
            "not a little-endian MATLAB 5 MAT-file (the devkit's meta.mat is one)".into(),
        ));
    }
    let mut reader = Elements::new(&bytes[128..]);
    while let Some((kind, data)) = reader.next().map_err(&error)? {
        let (name, value) = match kind {
            MI_COMPRESSED => {
                let mut inflated = Vec::new();
                flate2::read::ZlibDecoder::new(data)
                    .take(MAX_INFLATED + 1)
                    .read_to_end(&mut inflated)
                    .map_err(|e| error(format!("compressed variable: {e}")))?;
                if inflated.len() as u64 > MAX_INFLATED {
                    return Err(error(format!(
                        "a compressed variable inflates to more than {MAX_INFLATED} bytes"
                    )));
                }
                let mut inner = Elements::new(&inflated);
                match inner.next().map_err(&error)? {
                    Some((MI_MATRIX, matrix)) => parse_matrix(matrix).map_err(&error)?,
                    _ => continue,
                }
            }
            MI_MATRIX => parse_matrix(data).map_err(&error)?,
            _ => continue,
        };
        if name == "synsets" {
            return synset_ids(&value).map_err(error);
        }
    }
    Err(error("no `synsets` variable".into()))
}

fn synset_ids(value: &Value) -> Result<ClassTable, String> {
    let Value::Struct(fields, elements) = value else {
        return Err("`synsets` is not a struct array".into());
    };
    let field = |name: &str| {
        fields
            .iter()
            .position(|f| f == name)
            .ok_or(format!("`synsets` has no field {name}"))
    };
    let (id_field, wnid_field) = (field("ILSVRC2012_ID")?, field("WNID")?);
    let words_field = fields.iter().position(|f| f == "words");
    let mut entries: Vec<ClassEntry> = Vec::new();
    for element in elements {
        let (Value::Numbers(id), Value::Text(wnid)) = (&element[id_field], &element[wnid_field])
        else {
            return Err("a synset's ILSVRC2012_ID is not a number or its WNID not text".into());
        };
        let id = *id.first().ok_or("a synset without ILSVRC2012_ID")?;
        if id.fract() != 0.0 || !(1.0..=MAX_ID as f64).contains(&id) {
            return Err(format!(
                "ILSVRC2012_ID {id} is not a whole number in 1..={MAX_ID}"
            ));
        }
        let index = id as usize - 1;
        if entries.len() <= index {
            entries.resize(index + 1, ClassEntry::default());
        }
        if !entries[index].wnid.is_empty() {
            return Err(format!("ILSVRC2012_ID {id} appears twice"));
        }
        let wnid = wnid.trim().to_string();
        let name = match words_field.map(|f| &element[f]) {
            Some(Value::Text(words)) => words.trim().to_string(),
            _ => wnid.clone(),
        };
        entries[index] = ClassEntry { wnid, name };
    }
    if entries.is_empty() {
        return Err("`synsets` is empty".into());
    }
    Ok(ClassTable::from_entries(entries))
}

/// Data elements one after the other, each padded to 8 bytes (MAT-file Level 5 "tags", including
/// the "small data element" form that packs up to 4 bytes into the tag).
struct Elements<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Elements<'a> {
    fn new(bytes: &'a [u8]) -> Elements<'a> {
        Elements { bytes, at: 0 }
    }

    fn next(&mut self) -> Result<Option<(u32, &'a [u8])>, String> {
        if self.at + 8 > self.bytes.len() {
            return Ok(None);
        }
        let word = |at: usize| u32::from_le_bytes(self.bytes[at..at + 4].try_into().unwrap());
        let first = word(self.at);
        if first >> 16 != 0 {
            let (kind, size) = (first & 0xFFFF, (first >> 16) as usize);
            if size > 4 {
                return Err(format!("small data element of {size} bytes"));
            }
            let data = &self.bytes[self.at + 4..self.at + 4 + size];
            self.at += 8;
            return Ok(Some((kind, data)));
        }
        let size = word(self.at + 4) as usize;
        let start = self.at + 8;
        let data = self
            .bytes
            .get(start..start + size)
            .ok_or("a data element runs past the end of the file")?;
        // Compressed elements are not padded; all others are padded to a multiple of 8 bytes.
        self.at = if first == MI_COMPRESSED {
            start + size
        } else {
            start + size.div_ceil(8) * 8
        };
        Ok(Some((first, data)))
    }

    fn expect(&mut self, what: &str) -> Result<(u32, &'a [u8]), String> {
        self.next()?
            .ok_or_else(|| format!("an array ends before its {what}"))
    }
}

/// A `miMATRIX` element's name and value.
fn parse_matrix(data: &[u8]) -> Result<(String, Value), String> {
    if data.is_empty() {
        return Ok((String::new(), Value::Numbers(Vec::new())));
    }
    let mut parts = Elements::new(data);
    let (_, flags) = parts.expect("flags")?;
    let class = flags.first().copied().unwrap_or(0) as u32;
    let (_, dims) = parts.expect("dimensions")?;
    let count = to_numbers(MI_INT32, dims)?
        .iter()
        .fold(1usize, |n, &d| n.saturating_mul(d.max(0.0) as usize));
    let (_, name) = parts.expect("name")?;
    let name = String::from_utf8_lossy(name).into_owned();
    let value = match class {
        MX_STRUCT => {
            let (_, length) = parts.expect("field name length")?;
            let length = *to_numbers(MI_INT32, length)?
                .first()
                .ok_or("no field length")? as usize;
            let (_, names) = parts.expect("field names")?;
            if length == 0 {
                return Err("field name length 0".into());
            }
            let fields: Vec<String> = names
                .chunks(length)
                .map(|n| {
                    let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                    String::from_utf8_lossy(&n[..end]).into_owned()
                })
                .collect();
            // Each element reads one value per field, so without fields a damaged count would
            // make empty elements by the billion from no bytes at all.
            if fields.is_empty() {
                return Ok((name, Value::Struct(fields, Vec::new())));
            }
            // A damaged count must not reserve more than the bytes could hold.
            let mut elements = Vec::with_capacity(count.min(data.len() / 8));
            for _ in 0..count {
                let mut values = Vec::with_capacity(fields.len());
                for _ in &fields {
                    let (kind, field) = parts.expect("field value")?;
                    if kind != MI_MATRIX {
                        return Err(format!("a struct field of element type {kind}"));
                    }
                    values.push(parse_matrix(field)?.1);
                }
                elements.push(values);
            }
            Value::Struct(fields, elements)
        }
        MX_CHAR => {
            let (kind, text) = parts.expect("characters")?;
            Value::Text(match kind {
                MI_UTF8 | MI_UINT8 | MI_INT8 => String::from_utf8_lossy(text).into_owned(),
                _ => to_numbers(kind, text)?
                    .iter()
                    .map(|&c| char::from_u32(c as u32).unwrap_or('?'))
                    .collect(),
            })
        }
        6..=15 => {
            let (kind, real) = parts.expect("values")?;
            Value::Numbers(to_numbers(kind, real)?)
        }
        _ => Value::Other,
    };
    Ok((name, value))
}

/// Numbers stored with any of the MAT-file's numeric element types (MATLAB stores doubles in the
/// smallest integer type that holds them).
fn to_numbers(kind: u32, data: &[u8]) -> Result<Vec<f64>, String> {
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().unwrap()))
            .collect()
    }
    Ok(match kind {
        MI_INT8 => each(data, |b: [u8; 1]| f64::from(b[0] as i8)),
        MI_UINT8 => each(data, |b: [u8; 1]| f64::from(b[0])),
        MI_INT16 => each(data, |b| f64::from(i16::from_le_bytes(b))),
        MI_UINT16 | MI_UTF16 => each(data, |b| f64::from(u16::from_le_bytes(b))),
        MI_INT32 => each(data, |b| f64::from(i32::from_le_bytes(b))),
        MI_UINT32 => each(data, |b| f64::from(u32::from_le_bytes(b))),
        MI_SINGLE => each(data, |b| f64::from(f32::from_le_bytes(b))),
        MI_DOUBLE => each(data, f64::from_le_bytes),
        MI_INT64 => each(data, |b| i64::from_le_bytes(b) as f64),
        MI_UINT64 => each(data, |b| u64::from_le_bytes(b) as f64),
        other => return Err(format!("numbers of element type {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_elements_and_integer_storage_of_doubles_are_read() {
        // a small element: type miUINT8, 3 bytes, packed in the tag
        let bytes = [2, 0, 3, 0, 7, 8, 9, 0];
        let mut elements = Elements::new(&bytes);
        let (kind, data) = elements.next().unwrap().unwrap();
        assert_eq!((kind, data), (MI_UINT8, &[7u8, 8, 9][..]));
        assert_eq!(to_numbers(kind, data).unwrap(), [7.0, 8.0, 9.0]);
        assert_eq!(to_numbers(MI_INT16, &[0xFF, 0xFF]).unwrap(), [-1.0]);
        assert!(elements.next().unwrap().is_none());
    }

    #[test]
    fn a_struct_without_fields_reads_no_elements_whatever_its_count() {
        let tag = |kind: u32, size: u32| [kind.to_le_bytes(), size.to_le_bytes()].concat();
        let mut body = tag(MI_UINT32, 8);
        body.extend([MX_STRUCT as u8, 0, 0, 0, 0, 0, 0, 0]);
        body.extend(tag(MI_INT32, 8));
        body.extend([1_000_000i32.to_le_bytes(), 1i32.to_le_bytes()].concat());
        body.extend(tag(MI_INT8, 0)); // the name
        body.extend(tag(MI_INT32 | 4 << 16, 1)); // field name length 1, packed in the tag
        body.extend(tag(MI_INT8, 0)); // no field names
        let (_, value) = parse_matrix(&body).unwrap();
        let Value::Struct(fields, elements) = value else {
            panic!("a struct was read as {value:?}");
        };
        assert!(fields.is_empty() && elements.is_empty());
    }
}
