//! The Protocol Buffers wire format, as much of it as an ONNX file needs: varints, 32-bit floats
//! and length-delimited fields (strings, bytes, nested messages). Writing it by hand keeps the
//! build free of `protoc`.
//!
//! Why not the `protobuf` or `prost` crates (burn's onnx-ir generates its types from onnx.proto
//! with protobuf-codegen): export only writes, and only the few messages of [`super::onnx_proto`]
//! with three wire types; generated types would add a build script and a code generator for all of
//! onnx.proto to write those. ONNX Runtime reads what this writes (`scripts/check_onnx.py`, and
//! a wire-format reader in `tests/suite/onnx_export.rs` reads the graph back).

/// One message being written: fields are appended in the order they are added.
#[derive(Clone, Debug, Default)]
pub struct Message {
    bytes: Vec<u8>,
}

/// Wire types of the encoding.
const VARINT: u32 = 0;
const LENGTH_DELIMITED: u32 = 2;
const FIXED32: u32 = 5;

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// An integer field (`int32`, `int64`, enums): negative values take ten bytes, as protobuf says.
    pub fn int(mut self, field: u32, value: i64) -> Self {
        self.key(field, VARINT);
        write_varint(&mut self.bytes, value as u64);
        self
    }

    /// A `float` field.
    pub fn float(mut self, field: u32, value: f32) -> Self {
        self.key(field, FIXED32);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Self {
        self.key(field, LENGTH_DELIMITED);
        write_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    /// A `string` field.
    pub fn string(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }

    /// A nested message.
    pub fn message(self, field: u32, value: &Message) -> Self {
        self.bytes(field, &value.bytes)
    }

    /// Repeated nested messages, one field each.
    pub fn messages<'a>(self, field: u32, values: impl IntoIterator<Item = &'a Message>) -> Self {
        values
            .into_iter()
            .fold(self, |m, value| m.message(field, value))
    }

    /// The encoded message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn key(&mut self, field: u32, wire_type: u32) {
        write_varint(&mut self.bytes, u64::from(field << 3 | wire_type));
    }
}

/// Base-128 varint: seven bits per byte, least significant first, high bit set on all but the last.
fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
