//! [`ParquetSchema::of_type`]: a Rust type's columns, traced through its
//! `Deserialize` implementation (each field is asked for once, with a
//! placeholder value), so that an `Option` field has its type even when the
//! first part holds only `None`s.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::parquet::{Column, ColumnType, ParquetSchema};
use crate::value::ValueError;

/// How deep types may nest (a recursive type would trace forever).
const MAX_DEPTH: usize = 32;

impl ParquetSchema {
    /// The schema of results of type `T`, from `T`'s shape rather than from
    /// the first part's values: structs, options, vectors, tuples, nested
    /// structs and unit-variant enums. Types with no fixed shape are
    /// refused with a message: maps (`HashMap`), `serde_json::Value`,
    /// untagged or data-carrying enums, `#[serde(flatten)]`, recursive
    /// types. Give the result to
    /// [`SaverOptions::with_parquet_schema`](crate::SaverOptions::with_parquet_schema).
    ///
    /// ```
    /// use raygent_savers::ParquetSchema;
    /// #[derive(serde::Deserialize)]
    /// struct Out { id: u64, error: Option<String>, scores: Vec<f32>, at: (i32, i32) }
    /// let s = ParquetSchema::of_type::<Out>().unwrap();
    /// assert_eq!(
    ///     s.to_string(),
    ///     "_index: int64, id: uint64, error: string, scores: list<float64>, at: struct<0: int64, 1: int64>"
    /// );
    /// assert!(ParquetSchema::of_type::<std::collections::HashMap<String, u8>>().is_err());
    /// ```
    pub fn of_type<T: DeserializeOwned>() -> Result<ParquetSchema, String> {
        let mut ty = ColumnType::Null;
        T::deserialize(Tracer {
            out: &mut ty,
            depth: 0,
        })
        .map_err(|e| {
            format!(
                "cannot tell the Parquet columns of {}: {e}",
                std::any::type_name::<T>()
            )
        })?;
        Ok(match ty {
            ColumnType::Struct(cols) => ParquetSchema::columns(cols),
            other => ParquetSchema::value(other),
        })
    }
}

struct Tracer<'a> {
    out: &'a mut ColumnType,
    depth: usize,
}

fn err(msg: impl Into<String>) -> ValueError {
    de::Error::custom(msg.into())
}

impl Tracer<'_> {
    fn child<'b>(&self, out: &'b mut ColumnType) -> Result<Tracer<'b>, ValueError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(format!(
                "it nests more than {MAX_DEPTH} levels deep (a recursive type?); give the schema by hand"
            )));
        }
        Ok(Tracer {
            out,
            depth: self.depth + 1,
        })
    }
}

macro_rules! leaf {
    ($($method:ident => $ty:expr, |$v:ident| $visit:expr;)*) => {
        $(fn $method<V: Visitor<'de>>(self, $v: V) -> Result<V::Value, ValueError> {
            *self.out = $ty;
            $visit
        })*
    };
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ValueError> {
        Err(err(
            "a part of it has no fixed shape (serde_json::Value, an untagged enum, \
             #[serde(flatten)]); give the schema by hand",
        ))
    }

    leaf! {
        deserialize_bool => ColumnType::Bool, |v| v.visit_bool(false);
        deserialize_i8 => ColumnType::Int64, |v| v.visit_i8(0);
        deserialize_i16 => ColumnType::Int64, |v| v.visit_i16(0);
        deserialize_i32 => ColumnType::Int64, |v| v.visit_i32(0);
        deserialize_i64 => ColumnType::Int64, |v| v.visit_i64(0);
        deserialize_u8 => ColumnType::UInt64, |v| v.visit_u8(0);
        deserialize_u16 => ColumnType::UInt64, |v| v.visit_u16(0);
        deserialize_u32 => ColumnType::UInt64, |v| v.visit_u32(0);
        deserialize_u64 => ColumnType::UInt64, |v| v.visit_u64(0);
        deserialize_f32 => ColumnType::Float64, |v| v.visit_f32(0.0);
        deserialize_f64 => ColumnType::Float64, |v| v.visit_f64(0.0);
        deserialize_char => ColumnType::String, |v| v.visit_char('a');
        deserialize_str => ColumnType::String, |v| v.visit_str("");
        deserialize_string => ColumnType::String, |v| v.visit_string(String::new());
        deserialize_bytes => ColumnType::Binary, |v| v.visit_bytes(&[]);
        deserialize_byte_buf => ColumnType::Binary, |v| v.visit_byte_buf(Vec::new());
        deserialize_unit => ColumnType::Null, |v| v.visit_unit();
        deserialize_identifier => ColumnType::String, |v| v.visit_str("");
        deserialize_ignored_any => ColumnType::Null, |v| v.visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        *self.out = ColumnType::Null;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let mut item = ColumnType::Null;
        let value = visitor.visit_seq(Items {
            tracer: Some(self.child(&mut item)?),
        })?;
        *self.out = ColumnType::List(Box::new(item));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let mut cols: Vec<Column> = (0..len)
            .map(|i| Column::new(i.to_string(), ColumnType::Null))
            .collect();
        let depth = self.depth;
        let value = visitor.visit_seq(Fields {
            cols: &mut cols,
            next: 0,
            depth,
            names: None,
        })?;
        *self.out = ColumnType::Struct(cols);
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ValueError> {
        Err(err(
            "a map (HashMap, BTreeMap) has no fixed columns; give the schema by hand",
        ))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let mut cols: Vec<Column> = fields
            .iter()
            .map(|f| Column::new(*f, ColumnType::Null))
            .collect();
        let depth = self.depth;
        let value = visitor.visit_map(Fields {
            cols: &mut cols,
            next: 0,
            depth,
            names: Some(fields),
        })?;
        *self.out = ColumnType::Struct(cols);
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let first = variants
            .first()
            .ok_or_else(|| err(format!("enum {name} has no variants")))?;
        *self.out = ColumnType::String;
        visitor.visit_enum(UnitVariant {
            name,
            variant: first,
        })
    }

    fn is_human_readable(&self) -> bool {
        true
    }

    serde::forward_to_deserialize_any! { i128 u128 }
}

/// A sequence of one element, traced.
struct Items<'a> {
    tracer: Option<Tracer<'a>>,
}

impl<'de> de::SeqAccess<'de> for Items<'_> {
    type Error = ValueError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        match self.tracer.take() {
            Some(t) => seed.deserialize(t).map(Some),
            None => Ok(None),
        }
    }
}

/// A struct's fields (or a tuple's elements), each traced into its column.
struct Fields<'a> {
    cols: &'a mut Vec<Column>,
    next: usize,
    depth: usize,
    names: Option<&'static [&'static str]>,
}

impl Fields<'_> {
    fn trace_next<'de, T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(format!(
                "it nests more than {MAX_DEPTH} levels deep (a recursive type?); give the schema by hand"
            )));
        }
        let i = self.next;
        self.next += 1;
        let col = self
            .cols
            .get_mut(i)
            .ok_or_else(|| err("a struct asked for more fields than it has"))?;
        let name = col.name.clone();
        seed.deserialize(Tracer {
            out: &mut col.ty,
            depth: self.depth + 1,
        })
        .map_err(|e| err(format!("field `{name}`: {e}")))
    }
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = ValueError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        let Some(names) = self.names else {
            return Ok(None);
        };
        match names.get(self.next) {
            Some(name) => seed.deserialize((*name).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ValueError> {
        self.trace_next(seed)
    }
}

impl<'de> de::SeqAccess<'de> for Fields<'_> {
    type Error = ValueError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        if self.next >= self.cols.len() {
            return Ok(None);
        }
        self.trace_next(seed).map(Some)
    }
}

/// An enum traced as its first variant: fine for unit variants (a string
/// column); variants with data have no single shape.
struct UnitVariant {
    name: &'static str,
    variant: &'static str,
}

impl<'de> de::EnumAccess<'de> for UnitVariant {
    type Error = ValueError;
    type Variant = UnitVariant;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, UnitVariant), ValueError> {
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant {
    type Error = ValueError;
    fn unit_variant(self) -> Result<(), ValueError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, ValueError> {
        Err(self.with_data())
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, ValueError> {
        Err(self.with_data())
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ValueError> {
        Err(self.with_data())
    }
}

impl UnitVariant {
    fn with_data(&self) -> ValueError {
        err(format!(
            "enum {} has variants with data, which have no single column type; give the \
             schema by hand",
            self.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Level {
        Low,
        High,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        x: f64,
        tags: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Out {
        id: u64,
        n: i16,
        ok: bool,
        level: Level,
        inner: Option<Inner>,
        many: Vec<Inner>,
        pair: (u8, String),
        unit: (),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Node {
        next: Option<Box<Node>>,
    }

    #[test]
    fn types_trace_to_columns() {
        let s = ParquetSchema::of_type::<Out>().unwrap();
        assert_eq!(
            s.to_string(),
            "_index: int64, id: uint64, n: int64, ok: bool, level: string, \
             inner: struct<x: float64, tags: list<string>>, \
             many: list<struct<x: float64, tags: list<string>>>, \
             pair: struct<0: uint64, 1: string>, unit: null"
        );
        assert_eq!(
            ParquetSchema::of_type::<Vec<f32>>().unwrap().to_string(),
            "_index: int64, value: list<float64>"
        );
        assert_eq!(
            ParquetSchema::of_type::<String>().unwrap().to_string(),
            "_index: int64, value: string"
        );
    }

    #[test]
    fn shapeless_types_are_refused() {
        let e = ParquetSchema::of_type::<serde_json::Value>().unwrap_err();
        assert!(e.contains("no fixed shape"), "{e}");
        let e = ParquetSchema::of_type::<Node>().unwrap_err();
        assert!(e.contains("recursive"), "{e}");
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum Shape {
            Circle(f64),
        }
        let e = ParquetSchema::of_type::<Vec<Shape>>().unwrap_err();
        assert!(e.contains("variants with data"), "{e}");
    }
}
