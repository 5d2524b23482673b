//! The fast path of the Parquet format: results serialized straight into
//! typed Arrow columns (no [`Value`](crate::Value) tree), and the first
//! part's schema inferred by a serializer that only widens types.
//!
//! Both follow the rules of the [`Value`](crate::Value) path in
//! `parquet.rs` (which stays the reference): they build the same columns
//! for every result that fits, and give up ([`Bail`]) on anything else (a
//! result that does not fit the schema, a type they do not handle, a
//! result that fails to serialize). The caller then encodes the part again
//! by the `Value` path, which builds it or reports the error with the
//! item, the field and both types. So the fast path never decides what is
//! an error, nor what an error says.

use std::fmt;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{ArrayRef, BooleanArray, ListArray, NullArray, PrimitiveArray, StructArray};
use arrow_buffer::{BooleanBufferBuilder, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{Field, Fields};
use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::parquet::{Column, ColumnType};
use crate::value::tuple_key;

/// The fast path gave up: encode the part by the `Value` path instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

impl fmt::Display for Bail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the fast Parquet path gave up")
    }
}

impl std::error::Error for Bail {}

impl ser::Error for Bail {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Bail
    }
}

type R<T = ()> = Result<T, Bail>;

// ------------------------------------------------------------ builders

/// The column being built for one [`ColumnType`].
pub(crate) enum Builder {
    Null(usize),
    Bool(BooleanBufferBuilder, NullBufferBuilder),
    Int64(Vec<i64>, NullBufferBuilder),
    UInt64(Vec<u64>, NullBufferBuilder),
    Float64(Vec<f64>, NullBufferBuilder),
    String(StringBuilder),
    Binary(BinaryBuilder),
    List(Box<ListB>),
    Struct(Box<StructB>),
}

pub(crate) struct ListB {
    item: ColumnType,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    child: Builder,
}

/// A struct column, or (`top`) the results' columns themselves, which have
/// no validity of their own.
pub(crate) struct StructB {
    columns: Vec<Column>,
    fields: Vec<Builder>,
    /// Which fields the row being serialized has set.
    set: Vec<bool>,
    /// For the `i`-th field of a row, the address and length of the
    /// `&'static str` name it last had, and the field that name is: a
    /// struct's rows name their fields with the same static strings, so
    /// most fields are found without comparing names.
    seen: Vec<(usize, usize, usize)>,
    nulls: NullBufferBuilder,
    len: usize,
    top: bool,
}

impl Builder {
    /// An empty column of type `ty`, with room for `n` rows.
    pub fn new(ty: &ColumnType, n: usize) -> Builder {
        match ty {
            ColumnType::Null => Builder::Null(0),
            ColumnType::Bool => {
                Builder::Bool(BooleanBufferBuilder::new(n), NullBufferBuilder::new(n))
            }
            ColumnType::Int64 => Builder::Int64(Vec::with_capacity(n), NullBufferBuilder::new(n)),
            ColumnType::UInt64 => Builder::UInt64(Vec::with_capacity(n), NullBufferBuilder::new(n)),
            ColumnType::Float64 => {
                Builder::Float64(Vec::with_capacity(n), NullBufferBuilder::new(n))
            }
            ColumnType::String => Builder::String(StringBuilder::with_capacity(n, n * 8)),
            ColumnType::Binary => Builder::Binary(BinaryBuilder::with_capacity(n, n * 8)),
            ColumnType::List(item) => {
                let mut offsets = Vec::with_capacity(n + 1);
                offsets.push(0);
                Builder::List(Box::new(ListB {
                    item: (**item).clone(),
                    offsets,
                    nulls: NullBufferBuilder::new(n),
                    child: Builder::new(item, n),
                }))
            }
            ColumnType::Struct(cols) => Builder::Struct(Box::new(StructB::new(cols, n, false))),
        }
    }

    /// Appends a null (the `Value` path's `Value::Null`).
    fn append_null(&mut self) {
        match self {
            Builder::Null(n) => *n += 1,
            Builder::Bool(v, nulls) => {
                v.append(false);
                nulls.append_null();
            }
            Builder::Int64(v, nulls) => {
                v.push(0);
                nulls.append_null();
            }
            Builder::UInt64(v, nulls) => {
                v.push(0);
                nulls.append_null();
            }
            Builder::Float64(v, nulls) => {
                v.push(0.0);
                nulls.append_null();
            }
            Builder::String(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::List(l) => {
                let end = l.offsets.last().copied().unwrap_or(0);
                l.offsets.push(end);
                l.nulls.append_null();
            }
            Builder::Struct(s) => s.append_null(),
        }
    }

    fn int(&mut self, v: i64) -> R {
        match self {
            Builder::Int64(out, nulls) => {
                out.push(v);
                nulls.append_non_null();
            }
            Builder::UInt64(out, nulls) => {
                out.push(u64::try_from(v).map_err(|_| Bail)?);
                nulls.append_non_null();
            }
            Builder::Float64(out, nulls) => {
                out.push(v as f64);
                nulls.append_non_null();
            }
            _ => return Err(Bail),
        }
        Ok(())
    }

    fn uint(&mut self, v: u64) -> R {
        match self {
            Builder::UInt64(out, nulls) => {
                out.push(v);
                nulls.append_non_null();
            }
            Builder::Int64(out, nulls) => {
                out.push(i64::try_from(v).map_err(|_| Bail)?);
                nulls.append_non_null();
            }
            Builder::Float64(out, nulls) => {
                out.push(v as f64);
                nulls.append_non_null();
            }
            _ => return Err(Bail),
        }
        Ok(())
    }

    fn float(&mut self, v: f64) -> R {
        match self {
            Builder::Float64(out, nulls) => {
                out.push(v);
                nulls.append_non_null();
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    fn string(&mut self, v: &str) -> R {
        match self {
            Builder::String(b) if b.values_slice().len() + v.len() <= i32::MAX as usize => {
                b.append_value(v);
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    /// The struct column this value goes in, a row of it started.
    fn struct_row(&mut self) -> R<&mut StructB> {
        match self {
            Builder::Struct(s) => Ok(s),
            _ => Err(Bail),
        }
    }

    /// The column's array; `self` is left empty.
    pub fn finish(&mut self) -> R<ArrayRef> {
        Ok(match self {
            Builder::Null(n) => Arc::new(NullArray::new(std::mem::take(n))),
            Builder::Bool(v, nulls) => Arc::new(BooleanArray::new(v.finish(), nulls.finish())),
            Builder::Int64(v, nulls) => Arc::new(PrimitiveArray::<Int64Type>::new(
                ScalarBuffer::from(std::mem::take(v)),
                nulls.finish(),
            )),
            Builder::UInt64(v, nulls) => Arc::new(PrimitiveArray::<UInt64Type>::new(
                ScalarBuffer::from(std::mem::take(v)),
                nulls.finish(),
            )),
            Builder::Float64(v, nulls) => Arc::new(PrimitiveArray::<Float64Type>::new(
                ScalarBuffer::from(std::mem::take(v)),
                nulls.finish(),
            )),
            Builder::String(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::List(l) => {
                let offsets = std::mem::replace(&mut l.offsets, vec![0]);
                Arc::new(
                    ListArray::try_new(
                        Arc::new(Field::new("item", l.item.data_type(), true)),
                        OffsetBuffer::new(ScalarBuffer::from(offsets)),
                        l.child.finish()?,
                        l.nulls.finish(),
                    )
                    .map_err(|_| Bail)?,
                )
            }
            Builder::Struct(s) => {
                let len = std::mem::take(&mut s.len);
                let fields: Fields = s.columns.iter().map(Column::field).collect();
                let arrays = s
                    .fields
                    .iter_mut()
                    .map(Builder::finish)
                    .collect::<R<Vec<_>>>()?;
                Arc::new(
                    StructArray::try_new_with_length(fields, arrays, s.nulls.finish(), len)
                        .map_err(|_| Bail)?,
                )
            }
        })
    }
}

impl StructB {
    pub fn new(cols: &[Column], n: usize, top: bool) -> StructB {
        StructB {
            columns: cols.to_vec(),
            fields: cols.iter().map(|c| Builder::new(&c.ty, n)).collect(),
            set: vec![false; cols.len()],
            seen: vec![(0, 0, 0); cols.len()],
            nulls: NullBufferBuilder::new(if top { 0 } else { n }),
            len: 0,
            top,
        }
    }

    fn append_null(&mut self) {
        for f in &mut self.fields {
            f.append_null();
        }
        if !self.top {
            self.nulls.append_null();
        }
        self.len += 1;
    }

    /// The index of the field named `name`, the `i`-th of its row, as
    /// `build_struct` finds it (the field at that position first); marks
    /// it set, refusing a field set twice in one row.
    fn field(&mut self, i: usize, name: &str) -> R<usize> {
        let at = match self.columns.get(i) {
            Some(c) if c.name == name => i,
            _ => self
                .columns
                .iter()
                .position(|c| c.name == name)
                .ok_or(Bail)?,
        };
        if std::mem::replace(&mut self.set[at], true) {
            return Err(Bail);
        }
        Ok(at)
    }

    /// [`field`](Self::field) for a name that is a `&'static str` (a
    /// struct's field): one that lives, unchanged, as long as the program,
    /// so the same address and length are the same name.
    fn static_field(&mut self, i: usize, name: &'static str) -> R<usize> {
        let key = (name.as_ptr() as usize, name.len());
        if let Some(&(addr, len, at)) = self.seen.get(i)
            && (addr, len) == key
        {
            if std::mem::replace(&mut self.set[at], true) {
                return Err(Bail);
            }
            return Ok(at);
        }
        let at = self.field(i, name)?;
        if let Some(slot) = self.seen.get_mut(i) {
            *slot = (key.0, key.1, at);
        }
        Ok(at)
    }

    /// Ends a row: the fields it did not set are null.
    fn end_row(&mut self) {
        for (f, set) in self.fields.iter_mut().zip(self.set.iter_mut()) {
            if !std::mem::replace(set, false) {
                f.append_null();
            }
        }
        if !self.top {
            self.nulls.append_non_null();
        }
        self.len += 1;
    }

    /// A row holding only the field `name`, set to what `value` serializes;
    /// the `Value` path's `Map([(name, value)])` (an enum variant).
    fn one_field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> R {
        let at = self.field(0, name)?;
        self.end_row();
        value.serialize(Cols(&mut self.fields[at]))
    }

    /// A row holding only the field `name`, whose own row is built next;
    /// the `Value` path's `Map([(name, Map(...))])` (an enum variant).
    fn one_struct_field(&mut self, name: &str) -> R<&mut StructB> {
        let at = self.field(0, name)?;
        self.end_row();
        self.fields[at].struct_row()
    }

    /// The columns, each with one row per result (for `top`).
    pub fn finish_columns(&mut self) -> R<Vec<ArrayRef>> {
        self.len = 0;
        self.fields.iter_mut().map(Builder::finish).collect()
    }
}

// ------------------------------------------------------------ serializer

/// Serializes one value into a column, as `to_value` then `build` would.
pub(crate) struct Cols<'a>(pub &'a mut Builder);

/// Serializes one result into the results' columns (`StructB::top`).
pub(crate) struct TopCols<'a>(pub &'a mut StructB);

/// A row of a struct column being serialized.
pub(crate) struct RowSer<'a> {
    s: &'a mut StructB,
    /// How many fields the row set so far.
    i: usize,
    /// A map's key, found.
    key: Option<usize>,
}

impl RowSer<'_> {
    fn put<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> R {
        let at = self.s.field(self.i, name)?;
        self.i += 1;
        value.serialize(Cols(&mut self.s.fields[at]))
    }

    /// [`put`](Self::put) of a struct's field.
    fn put_static<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> R {
        let at = self.s.static_field(self.i, name)?;
        self.i += 1;
        value.serialize(Cols(&mut self.s.fields[at]))
    }

    fn end(self) -> R {
        self.s.end_row();
        Ok(())
    }
}

/// A list being serialized: its items go in the child column.
pub(crate) struct ListSer<'a> {
    l: &'a mut ListB,
    n: i64,
}

fn start_row(s: &mut StructB) -> RowSer<'_> {
    RowSer { s, i: 0, key: None }
}

macro_rules! scalars {
    () => {
        fn serialize_i8(self, v: i8) -> R {
            self.serialize_i64(v.into())
        }
        fn serialize_i16(self, v: i16) -> R {
            self.serialize_i64(v.into())
        }
        fn serialize_i32(self, v: i32) -> R {
            self.serialize_i64(v.into())
        }
        fn serialize_i128(self, v: i128) -> R {
            self.serialize_i64(i64::try_from(v).map_err(|_| Bail)?)
        }
        fn serialize_u8(self, v: u8) -> R {
            self.serialize_u64(v.into())
        }
        fn serialize_u16(self, v: u16) -> R {
            self.serialize_u64(v.into())
        }
        fn serialize_u32(self, v: u32) -> R {
            self.serialize_u64(v.into())
        }
        fn serialize_u128(self, v: u128) -> R {
            self.serialize_u64(u64::try_from(v).map_err(|_| Bail)?)
        }
        fn serialize_f32(self, v: f32) -> R {
            self.serialize_f64(v.into())
        }
        fn serialize_char(self, v: char) -> R {
            self.serialize_str(v.encode_utf8(&mut [0; 4]))
        }
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
            value.serialize(self)
        }
        fn serialize_unit(self) -> R {
            self.serialize_none()
        }
        fn serialize_unit_struct(self, _: &'static str) -> R {
            self.serialize_none()
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> R {
            self.serialize_str(variant)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> R {
            value.serialize(self)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            len: usize,
        ) -> R<Self::SerializeTupleStruct> {
            self.serialize_tuple(len)
        }
    };
}

impl<'a> ser::Serializer for Cols<'a> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = ListSer<'a>;
    type SerializeTuple = RowSer<'a>;
    type SerializeTupleStruct = RowSer<'a>;
    type SerializeTupleVariant = RowSer<'a>;
    type SerializeMap = RowSer<'a>;
    type SerializeStruct = RowSer<'a>;
    type SerializeStructVariant = RowSer<'a>;

    scalars!();

    fn serialize_bool(self, v: bool) -> R {
        match self.0 {
            Builder::Bool(out, nulls) => {
                out.append(v);
                nulls.append_non_null();
                Ok(())
            }
            _ => Err(Bail),
        }
    }
    fn serialize_i64(self, v: i64) -> R {
        self.0.int(v)
    }
    fn serialize_u64(self, v: u64) -> R {
        self.0.uint(v)
    }
    fn serialize_f64(self, v: f64) -> R {
        self.0.float(v)
    }
    fn serialize_str(self, v: &str) -> R {
        self.0.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        match self.0 {
            Builder::Binary(b) if b.values_slice().len() + v.len() <= i32::MAX as usize => {
                b.append_value(v);
                Ok(())
            }
            _ => Err(Bail),
        }
    }
    fn serialize_none(self) -> R {
        self.0.append_null();
        Ok(())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> R {
        self.0.struct_row()?.one_field(variant, value)
    }
    fn serialize_seq(self, _: Option<usize>) -> R<ListSer<'a>> {
        match self.0 {
            Builder::List(l) => Ok(ListSer { l, n: 0 }),
            _ => Err(Bail),
        }
    }
    fn serialize_tuple(self, _: usize) -> R<RowSer<'a>> {
        Ok(start_row(self.0.struct_row()?))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> R<RowSer<'a>> {
        Ok(start_row(self.0.struct_row()?.one_struct_field(variant)?))
    }
    fn serialize_map(self, _: Option<usize>) -> R<RowSer<'a>> {
        Ok(start_row(self.0.struct_row()?))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> R<RowSer<'a>> {
        Ok(start_row(self.0.struct_row()?))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> R<RowSer<'a>> {
        Ok(start_row(self.0.struct_row()?.one_struct_field(variant)?))
    }
}

impl<'a> ser::Serializer for TopCols<'a> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = Impossible<(), Bail>;
    type SerializeTuple = RowSer<'a>;
    type SerializeTupleStruct = RowSer<'a>;
    type SerializeTupleVariant = RowSer<'a>;
    type SerializeMap = RowSer<'a>;
    type SerializeStruct = RowSer<'a>;
    type SerializeStructVariant = RowSer<'a>;

    scalars!();

    fn serialize_bool(self, _: bool) -> R {
        Err(Bail)
    }
    fn serialize_i64(self, _: i64) -> R {
        Err(Bail)
    }
    fn serialize_u64(self, _: u64) -> R {
        Err(Bail)
    }
    fn serialize_f64(self, _: f64) -> R {
        Err(Bail)
    }
    fn serialize_str(self, _: &str) -> R {
        Err(Bail)
    }
    fn serialize_bytes(self, _: &[u8]) -> R {
        Err(Bail)
    }
    fn serialize_none(self) -> R {
        self.0.append_null();
        Ok(())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> R {
        self.0.one_field(variant, value)
    }
    fn serialize_seq(self, _: Option<usize>) -> R<Self::SerializeSeq> {
        Err(Bail)
    }
    fn serialize_tuple(self, _: usize) -> R<RowSer<'a>> {
        Ok(start_row(self.0))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> R<RowSer<'a>> {
        Ok(start_row(self.0.one_struct_field(variant)?))
    }
    fn serialize_map(self, _: Option<usize>) -> R<RowSer<'a>> {
        Ok(start_row(self.0))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> R<RowSer<'a>> {
        Ok(start_row(self.0))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> R<RowSer<'a>> {
        Ok(start_row(self.0.one_struct_field(variant)?))
    }
}

impl ser::SerializeSeq for ListSer<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.n += 1;
        value.serialize(Cols(&mut self.l.child))
    }
    fn end(self) -> R {
        let start = self.l.offsets.last().copied().unwrap_or(0);
        let end = i32::try_from(i64::from(start) + self.n).map_err(|_| Bail)?;
        self.l.offsets.push(end);
        self.l.nulls.append_non_null();
        Ok(())
    }
}

impl ser::SerializeTuple for RowSer<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        let name = tuple_key(self.i);
        self.put(&name, value)
    }
    fn end(self) -> R {
        RowSer::end(self)
    }
}

impl ser::SerializeTupleStruct for RowSer<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        ser::SerializeTuple::serialize_element(self, value)
    }
    fn end(self) -> R {
        RowSer::end(self)
    }
}

impl ser::SerializeTupleVariant for RowSer<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        ser::SerializeTuple::serialize_element(self, value)
    }
    fn end(self) -> R {
        RowSer::end(self)
    }
}

impl ser::SerializeStruct for RowSer<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        self.put_static(key, value)
    }
    fn skip_field(&mut self, _: &'static str) -> R {
        Ok(())
    }
    fn end(self) -> R {
        RowSer::end(self)
    }
}

impl ser::SerializeStructVariant for RowSer<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        self.put_static(key, value)
    }
    fn end(self) -> R {
        RowSer::end(self)
    }
}

impl ser::SerializeMap for RowSer<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        let (s, i) = (&mut *self.s, self.i);
        let at = key.serialize(KeyWith(|name: &str| s.field(i, name)))?;
        self.i += 1;
        self.key = Some(at);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        let at = self.key.take().ok_or(Bail)?;
        value.serialize(Cols(&mut self.s.fields[at]))
    }
    fn end(self) -> R {
        RowSer::end(self)
    }
}

/// A map key, named as the `Value` path names its field (`key_of`):
/// strings, and integers and booleans written out, handed to the closure;
/// anything else gives up.
struct KeyWith<F>(F);

macro_rules! key_int {
    ($($m:ident: $t:ty),*) => {
        $(fn $m(self, v: $t) -> R<usize> {
            (self.0)(&v.to_string())
        })*
    };
}

macro_rules! key_bail {
    ($($m:ident($($t:ty),*)),*) => {
        $(fn $m(self, $(_: $t),*) -> R<usize> {
            Err(Bail)
        })*
    };
}

impl<F: FnOnce(&str) -> R<usize>> ser::Serializer for KeyWith<F> {
    type Ok = usize;
    type Error = Bail;
    type SerializeSeq = Impossible<usize, Bail>;
    type SerializeTuple = Impossible<usize, Bail>;
    type SerializeTupleStruct = Impossible<usize, Bail>;
    type SerializeTupleVariant = Impossible<usize, Bail>;
    type SerializeMap = Impossible<usize, Bail>;
    type SerializeStruct = Impossible<usize, Bail>;
    type SerializeStructVariant = Impossible<usize, Bail>;

    key_int!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    key_bail!(
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_i128(i128),
        serialize_u128(u128),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str)
    );

    fn serialize_bool(self, v: bool) -> R<usize> {
        (self.0)(if v { "true" } else { "false" })
    }
    fn serialize_char(self, v: char) -> R<usize> {
        (self.0)(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> R<usize> {
        (self.0)(v)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> R<usize> {
        (self.0)(variant)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R<usize> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R<usize> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> R<usize> {
        Err(Bail)
    }
    fn serialize_seq(self, _: Option<usize>) -> R<Self::SerializeSeq> {
        Err(Bail)
    }
    fn serialize_tuple(self, _: usize) -> R<Self::SerializeTuple> {
        Err(Bail)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> R<Self::SerializeTupleStruct> {
        Err(Bail)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> R<Self::SerializeTupleVariant> {
        Err(Bail)
    }
    fn serialize_map(self, _: Option<usize>) -> R<Self::SerializeMap> {
        Err(Bail)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> R<Self::SerializeStruct> {
        Err(Bail)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> R<Self::SerializeStructVariant> {
        Err(Bail)
    }
}

// ------------------------------------------------------------ inference

/// Widens a type to hold one more value, as `widen` does with that value's
/// `Value` (the first part's inference), without building the `Value`.
pub(crate) struct Widen<'a>(pub &'a mut ColumnType);

/// The columns of a struct type, a null type becoming a struct of none.
fn struct_columns(ty: &mut ColumnType) -> R<&mut Vec<Column>> {
    if *ty == ColumnType::Null {
        *ty = ColumnType::Struct(Vec::new());
    }
    match ty {
        ColumnType::Struct(cols) => Ok(cols),
        _ => Err(Bail),
    }
}

/// The index of the column named `name` (the first one), added as a null
/// column if new.
fn column_at(cols: &mut Vec<Column>, name: &str) -> usize {
    match cols.iter().position(|c| c.name == name) {
        Some(at) => at,
        None => {
            cols.push(Column::new(name, ColumnType::Null));
            cols.len() - 1
        }
    }
}

/// The type of the column named `name`, added as a null column if new.
fn column<'c>(cols: &'c mut Vec<Column>, name: &str) -> &'c mut ColumnType {
    let at = column_at(cols, name);
    &mut cols[at].ty
}

/// A struct, map or tuple being widened.
pub(crate) struct WidenRow<'a> {
    cols: &'a mut Vec<Column>,
    /// The next tuple field.
    i: usize,
    /// A map's key, found (or added).
    key: Option<usize>,
}

impl WidenRow<'_> {
    fn put<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> R {
        value.serialize(Widen(column(self.cols, name)))
    }
}

/// A sequence being widened: every item into the one item type.
pub(crate) struct WidenList<'a>(&'a mut ColumnType);

fn widen_row(ty: &mut ColumnType) -> R<WidenRow<'_>> {
    Ok(WidenRow {
        cols: struct_columns(ty)?,
        i: 0,
        key: None,
    })
}

/// A variant's struct, `Map([(variant, Map(...))])`.
fn widen_variant_row<'a>(ty: &'a mut ColumnType, variant: &str) -> R<WidenRow<'a>> {
    widen_row(column(struct_columns(ty)?, variant))
}

impl<'a> ser::Serializer for Widen<'a> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = WidenList<'a>;
    type SerializeTuple = WidenRow<'a>;
    type SerializeTupleStruct = WidenRow<'a>;
    type SerializeTupleVariant = WidenRow<'a>;
    type SerializeMap = WidenRow<'a>;
    type SerializeStruct = WidenRow<'a>;
    type SerializeStructVariant = WidenRow<'a>;

    scalars!();

    fn serialize_bool(self, _: bool) -> R {
        match self.0 {
            ColumnType::Null => *self.0 = ColumnType::Bool,
            ColumnType::Bool => {}
            _ => return Err(Bail),
        }
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> R {
        match self.0 {
            ColumnType::Null => *self.0 = ColumnType::Int64,
            ColumnType::Int64 | ColumnType::Float64 => {}
            ColumnType::UInt64 if v >= 0 => {}
            _ => return Err(Bail),
        }
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> R {
        match self.0 {
            ColumnType::Null => *self.0 = ColumnType::UInt64,
            ColumnType::UInt64 | ColumnType::Float64 => {}
            ColumnType::Int64 if i64::try_from(v).is_ok() => {}
            _ => return Err(Bail),
        }
        Ok(())
    }
    fn serialize_f64(self, _: f64) -> R {
        match self.0 {
            ColumnType::Null | ColumnType::Int64 | ColumnType::UInt64 => {
                *self.0 = ColumnType::Float64
            }
            ColumnType::Float64 => {}
            _ => return Err(Bail),
        }
        Ok(())
    }
    fn serialize_str(self, _: &str) -> R {
        match self.0 {
            ColumnType::Null => *self.0 = ColumnType::String,
            ColumnType::String => {}
            _ => return Err(Bail),
        }
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> R {
        match self.0 {
            ColumnType::Null => *self.0 = ColumnType::Binary,
            ColumnType::Binary => {}
            _ => return Err(Bail),
        }
        Ok(())
    }
    fn serialize_none(self) -> R {
        Ok(())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> R {
        value.serialize(Widen(column(struct_columns(self.0)?, variant)))
    }
    fn serialize_seq(self, _: Option<usize>) -> R<WidenList<'a>> {
        if *self.0 == ColumnType::Null {
            *self.0 = ColumnType::List(Box::new(ColumnType::Null));
        }
        match self.0 {
            ColumnType::List(item) => Ok(WidenList(item)),
            _ => Err(Bail),
        }
    }
    fn serialize_tuple(self, _: usize) -> R<WidenRow<'a>> {
        widen_row(self.0)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> R<WidenRow<'a>> {
        widen_variant_row(self.0, variant)
    }
    fn serialize_map(self, _: Option<usize>) -> R<WidenRow<'a>> {
        widen_row(self.0)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> R<WidenRow<'a>> {
        widen_row(self.0)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> R<WidenRow<'a>> {
        widen_variant_row(self.0, variant)
    }
}

impl ser::SerializeSeq for WidenList<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        value.serialize(Widen(self.0))
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeTuple for WidenRow<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        let name = tuple_key(self.i);
        self.i += 1;
        self.put(&name, value)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for WidenRow<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        ser::SerializeTuple::serialize_element(self, value)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for WidenRow<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        ser::SerializeTuple::serialize_element(self, value)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeStruct for WidenRow<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        self.put(key, value)
    }
    fn skip_field(&mut self, _: &'static str) -> R {
        Ok(())
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeStructVariant for WidenRow<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        self.put(key, value)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeMap for WidenRow<'_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        let cols = &mut *self.cols;
        let at = key.serialize(KeyWith(|name: &str| Ok(column_at(cols, name))))?;
        self.key = Some(at);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        let at = self.key.take().ok_or(Bail)?;
        value.serialize(Widen(&mut self.cols[at].ty))
    }
    fn end(self) -> R {
        Ok(())
    }
}

// ------------------------------------------------------------ parts

/// The type of the first part's results, as `ParquetSchema::infer` widens
/// it over their `Value`s.
pub(crate) fn infer<T: Serialize>(results: &[T]) -> R<ColumnType> {
    let mut top = ColumnType::Null;
    for r in results {
        r.serialize(Widen(&mut top))?;
    }
    Ok(top)
}

/// The columns of `results` after `_index`, as `write_part` builds them
/// from their `Value`s.
pub(crate) fn build<T: Serialize>(
    schema: &crate::parquet::ParquetSchema,
    results: &[T],
) -> R<Vec<ArrayRef>> {
    let n = results.len();
    if schema.value {
        let ty = schema
            .columns
            .first()
            .map_or(ColumnType::Null, |c| c.ty.clone());
        let mut b = Builder::new(&ty, n);
        for r in results {
            r.serialize(Cols(&mut b))?;
        }
        Ok(vec![b.finish()?])
    } else {
        let mut s = StructB::new(&schema.columns, n, true);
        for r in results {
            r.serialize(TopCols(&mut s))?;
        }
        s.finish_columns()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use crate::parquet::{EncodeFailure, ParquetEncoder, ParquetSchema};
    use crate::{Column, ColumnType, PartParams};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Inner {
        x: f64,
        label: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Unit {
        Red,
        Green,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    /// `serialize_bytes`, as `serde_bytes` gives it.
    #[derive(Debug, Clone, PartialEq)]
    struct Blob(Vec<u8>);

    impl Serialize for Blob {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize)]
    struct Everything {
        id: u64,
        small: u8,
        delta: i32,
        big: i128,
        f: f32,
        ok: bool,
        c: char,
        name: String,
        maybe: Option<u32>,
        never: Option<String>,
        tags: Vec<String>,
        empty: Vec<u8>,
        inner: Inner,
        inner_maybe: Option<Inner>,
        points: Vec<Inner>,
        grid: Vec<Vec<i64>>,
        opt_list: Option<Vec<Option<u16>>>,
        color: Unit,
        shape: Shape,
        shapes: Vec<Shape>,
        pair: (u8, String),
        map: BTreeMap<String, f64>,
        int_keys: BTreeMap<u32, bool>,
        blob: Blob,
        unit: (),
        #[serde(skip_serializing_if = "Option::is_none")]
        sometimes: Option<i64>,
    }

    fn everything(i: u64) -> Everything {
        Everything {
            id: i,
            small: i as u8,
            delta: -(i as i32),
            big: i128::from(i) - 3,
            f: i as f32 / 3.0,
            ok: i.is_multiple_of(2),
            c: char::from(b'a' + (i % 26) as u8),
            name: format!("row {i} é"),
            maybe: i.is_multiple_of(3).then_some(i as u32),
            never: None,
            tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
            empty: Vec::new(),
            inner: Inner {
                x: i as f64 / 4.0,
                label: (i % 2 == 1).then(|| "odd".into()),
            },
            inner_maybe: (!i.is_multiple_of(4)).then(|| Inner {
                x: -1.0,
                label: Some("in".into()),
            }),
            points: vec![
                Inner {
                    x: 1.5,
                    label: i.is_multiple_of(3).then(|| "p".into()),
                };
                (i % 3) as usize
            ],
            grid: vec![vec![i as i64; (i % 2) as usize + 1]; (i % 3) as usize],
            opt_list: (!i.is_multiple_of(5)).then(|| vec![Some(i as u16), None]),
            color: if i.is_multiple_of(2) {
                Unit::Red
            } else {
                Unit::Green
            },
            shape: match i % 3 {
                0 => Shape::Circle(i as f64),
                1 => Shape::Rect { w: 2, h: i as u32 },
                _ => Shape::Pair(-1, i as i8),
            },
            shapes: vec![
                Shape::Circle(0.5),
                Shape::Pair(1, 2),
                Shape::Rect { w: 1, h: 1 },
            ],
            pair: (i as u8, format!("p{i}")),
            map: [("a".to_string(), 1.0), (format!("k{}", i % 2), 2.5)].into(),
            int_keys: [(1, true), (2, i.is_multiple_of(2))].into(),
            blob: Blob(vec![i as u8; (i % 4) as usize]),
            unit: (),
            sometimes: i.is_multiple_of(2).then_some(i as i64),
        }
    }

    /// The Parquet file of `columns` (after `_index`) under `schema`.
    fn file(
        schema: &ParquetSchema,
        columns: Vec<arrow_array::ArrayRef>,
        rows: usize,
    ) -> Result<Vec<u8>, String> {
        let index = |i: usize| 1000 + i as u64;
        let index: Option<&dyn Fn(usize) -> u64> = schema.index.then_some(&index);
        crate::parquet::part_file(schema, columns, rows, index)
    }

    /// The fast path handles `results` (given `schema`, else inferring it)
    /// and gives the schema, the columns and the Parquet bytes of the
    /// `Value` path.
    fn same<T: Serialize>(schema: Option<ParquetSchema>, results: &[T]) -> ParquetSchema {
        let enc = ParquetEncoder {
            schema,
            unrecorded: false,
        };
        let (fast_schema, fast) = enc
            .build_fast(results, true)
            .expect("the fast path gave up");
        let (slow_schema, slow) = enc.build_values(results, true).unwrap();
        assert_eq!(fast_schema, slow_schema);
        assert_eq!(fast.len(), slow.len());
        for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
            assert_eq!(a.to_data(), b.to_data(), "column {i}");
            assert_eq!(a.nulls().is_some(), b.nulls().is_some(), "column {i}");
        }
        assert_eq!(
            file(&fast_schema, fast, results.len()),
            file(&slow_schema, slow, results.len())
        );
        fast_schema
    }

    #[test]
    fn every_type_builds_the_same_part_as_through_values() {
        let rows: Vec<Everything> = (0..40).map(everything).collect();
        let schema = same(None, &rows);
        assert_eq!(
            schema.to_string(),
            "_index: int64, id: uint64, small: uint64, delta: int64, big: int64, f: float64, \
             ok: bool, c: string, name: string, maybe: uint64, never: null, tags: list<string>, \
             empty: list<null>, inner: struct<x: float64, label: string>, \
             inner_maybe: struct<x: float64, label: string>, \
             points: list<struct<x: float64, label: null>>, grid: list<list<int64>>, \
             opt_list: list<uint64>, color: string, \
             shape: struct<Circle: float64, Rect: struct<w: uint64, h: uint64>, \
             Pair: struct<0: int64, 1: int64>>, \
             shapes: list<struct<Circle: float64, Pair: struct<0: int64, 1: int64>, \
             Rect: struct<w: uint64, h: uint64>>>, \
             pair: struct<0: uint64, 1: string>, map: struct<a: float64, k0: float64, k1: float64>, \
             int_keys: struct<1: bool, 2: bool>, blob: binary, unit: null, sometimes: int64"
        );
        // A later part, with the schema fixed.
        let later: Vec<Everything> = (100..130).map(everything).collect();
        same(Some(schema), &later);
        // Options of structs at the top: a `None` result is a row of nulls.
        let maybe: Vec<Option<Inner>> = (0..9)
            .map(|i| {
                (i % 3 != 0).then(|| Inner {
                    x: f64::from(i),
                    label: None,
                })
            })
            .collect();
        same(None, &maybe);
    }

    #[test]
    fn plain_values_build_the_same_value_column() {
        same(None, &[1u8, 2, 3]);
        same(None, &[-1i64, 2, i64::MIN]);
        same(None, &["a".to_string(), String::new(), "ü".into()]);
        same(None, &[Some(1.5f64), None, Some(-0.0)]);
        same(None, &[vec![1i32, 2], vec![], vec![3]]);
        same(None, &[Some(vec![Some("x")]), None, Some(vec![None])]);
        same(None, &[true, false]);
        same(None, &['a', 'é']);
        same(None, &[(), ()]);
        same(None, &[Unit::Red, Unit::Green]);
        same(None, &[Blob(vec![0, 1]), Blob(vec![])]);
        same(None, &[None::<u8>, None]);
        // An int column widened to float by a later value, a preset schema
        // that is wider than the values.
        same(None, &[json!(1), json!(2.5), json!(null), json!(-3)]);
        same(Some(ParquetSchema::value(ColumnType::Float64)), &[1u8, 2]);
        same(Some(ParquetSchema::value(ColumnType::Int64)), &[1u64, 2]);
        same(
            Some(ParquetSchema::value(ColumnType::List(Box::new(
                ColumnType::String,
            )))),
            &[None, Some(vec!["a"])],
        );
    }

    #[test]
    fn json_objects_build_the_same_columns() {
        let first = vec![
            json!({"a": 1, "b": "x", "n": {"deep": [1, 2], "z": null}}),
            json!({"a": 2.5, "c": [1, 2], "n": null}),
            json!({"a": null, "b": null, "c": null, "n": {"deep": [], "z": true}}),
            json!(null),
            json!({}),
        ];
        let schema = same(None, &first);
        assert_eq!(
            schema.to_string(),
            "_index: int64, a: float64, b: string, n: struct<deep: list<uint64>, z: bool>, \
             c: list<uint64>"
        );
        // Missing fields, fields in another order, ints into the float column.
        let later = vec![
            json!({"c": [7], "a": 3}),
            json!({"n": {"z": false}, "b": "y"}),
            json!({"a": -4, "n": {"deep": [0]}}),
        ];
        same(Some(schema), &later);
        // Without `_index`, a field named `_index` is a plain column.
        let enc = ParquetEncoder::default();
        let rows = vec![BTreeMap::from([("_index", 1u8)])];
        let fast = enc.build_fast(&rows, false).unwrap();
        let slow = enc.build_values(&rows, false).unwrap();
        assert_eq!(fast.0, slow.0);
        assert_eq!(fast.1[0].to_data(), slow.1[0].to_data());
    }

    #[test]
    fn the_fast_path_gives_up_where_the_value_path_reports_an_error() {
        let at = |i: usize| i as u64;
        let check = |enc: &mut ParquetEncoder, rows: &[serde_json::Value]| {
            assert!(enc.build_fast(rows, true).is_none(), "{rows:?}");
            let slow = enc.build_values(rows, true).unwrap_err();
            let Err(got) = enc.build(rows, Some(&at), &mut PartParams::default()) else {
                panic!("{rows:?} was built")
            };
            match (slow, got) {
                (EncodeFailure::Mismatch(a), EncodeFailure::Mismatch(b)) => assert_eq!(a, b),
                (a, b) => panic!("{a:?} / {b:?}"),
            }
        };
        // Conflicts inside the first part.
        let mut enc = ParquetEncoder::default();
        check(&mut enc, &[json!({"k": 1}), json!({"k": {"deep": 1}})]);
        check(&mut enc, &[json!({"k": 1}), json!({"k": -1})]);
        check(&mut enc, &[json!({"k": [1]}), json!({"k": [1, "two"]})]);
        check(&mut enc, &[json!({"_index": 1})]);
        // Against a fixed schema.
        let mut enc = ParquetEncoder::default();
        let first = [json!({"a": 1.5, "c": [1], "s": {"x": 1}})];
        enc.build(&first, Some(&at), &mut PartParams::default())
            .unwrap();
        check(&mut enc, &[json!({"a": 1}), json!({"a": "high"})]);
        check(&mut enc, &[json!({"a": 1, "d": true})]);
        check(&mut enc, &[json!({"c": [1, -2]})]);
        check(&mut enc, &[json!({"s": {"x": 1, "y": 2}})]);
        check(&mut enc, &[json!({"s": 3})]);
        check(&mut enc, &[json!(3)]);
        check(&mut enc, &[json!([1])]);
        // A null column takes nothing but nulls.
        let mut enc = ParquetEncoder::default();
        enc.build(&[json!({"n": null})], Some(&at), &mut PartParams::default())
            .unwrap();
        check(&mut enc, &[json!({"n": 1})]);
        // Results that fail to serialize: the `Value` path says why.
        let mut enc = ParquetEncoder::default();
        let huge = [u128::MAX];
        assert!(enc.build_fast(&huge, true).is_none());
        let Err(EncodeFailure::Other(m)) = enc.build(&huge, Some(&at), &mut PartParams::default())
        else {
            panic!()
        };
        assert!(m.starts_with("result 0: integer"), "{m}");
    }

    #[test]
    fn preset_schemas_build_the_same_columns() {
        #[derive(Serialize, Deserialize)]
        struct Out {
            id: u64,
            error: Option<String>,
            scores: Vec<f32>,
            at: (i32, i32),
        }
        let schema = ParquetSchema::of_type::<Out>().unwrap();
        let rows: Vec<Out> = (0..5)
            .map(|i| Out {
                id: i,
                error: None,
                scores: vec![i as f32; i as usize],
                at: (i as i32, -1),
            })
            .collect();
        same(Some(schema), &rows);
        let schema = ParquetSchema::columns(vec![
            Column::new("id", ColumnType::Float64),
            Column::new("extra", ColumnType::String),
        ]);
        same(Some(schema), &[json!({"id": 1}), json!({"id": 2.5})]);
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_json(rng: &mut Rng, depth: u32) -> serde_json::Value {
        match rng.below(if depth > 2 { 7 } else { 9 }) {
            0 => json!(null),
            1 => json!(rng.below(2) == 0),
            2 => json!(rng.below(100)),
            3 => json!(-(rng.below(100) as i64)),
            4 => json!(rng.below(100) as f64 / 8.0),
            5 | 6 => json!(["a", "b", "c"][rng.below(3) as usize]),
            7 => serde_json::Value::Array(
                (0..rng.below(3))
                    .map(|_| random_json(rng, depth + 1))
                    .collect(),
            ),
            _ => serde_json::Value::Object(
                (0..rng.below(4))
                    .map(|_| {
                        (
                            ["p", "q", "r", "s"][rng.below(4) as usize].to_string(),
                            random_json(rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// Random JSON results: wherever the fast path builds a part, the
    /// `Value` path builds the same; wherever the `Value` path refuses one,
    /// the fast path gives up.
    #[test]
    fn random_json_parts_agree_with_the_value_path() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut built, mut refused) = (0, 0);
        for _ in 0..3000 {
            let mut enc = ParquetEncoder::default();
            for _part in 0..2 {
                let n = rng.below(5) as usize;
                let rows: Vec<serde_json::Value> = (0..n)
                    .map(|_| {
                        // Mostly objects of the same few fields.
                        if rng.below(4) == 0 {
                            random_json(&mut rng, 0)
                        } else {
                            random_json(&mut rng, 2).as_object().map_or_else(
                                || json!({"p": random_json(&mut rng, 1)}),
                                |o| serde_json::Value::Object(o.clone()),
                            )
                        }
                    })
                    .collect();
                if enc.schema.is_none() && rows.is_empty() {
                    continue;
                }
                match (enc.build_fast(&rows, true), enc.build_values(&rows, true)) {
                    (Some((fs, fast)), Ok((ss, slow))) => {
                        assert_eq!(fs, ss, "{rows:?}");
                        assert_eq!(file(&fs, fast, n), file(&ss, slow, n), "{rows:?}");
                        built += 1;
                        enc.schema = Some(fs);
                    }
                    (None, Ok(_)) => panic!("the fast path gave up on {rows:?}"),
                    (Some(_), Err(e)) => panic!("the fast path built {rows:?}: {e:?}"),
                    (None, Err(_)) => {
                        refused += 1;
                        break;
                    }
                }
            }
        }
        // Both outcomes were exercised.
        assert!(
            built > 500 && refused > 500,
            "{built} built, {refused} refused"
        );
    }
}
