//! A route's CEL predicate (`filter:` / `--filter`): compiled once with the Kubernetes
//! CEL libraries (kube-cel on the `cel` crate), checked against static bounds, and
//! evaluated with `object`, `oldObject` (null when absent), `type` and `origin`.
//!
//! # Bounding the cost of an evaluation
//!
//! Kubernetes bounds CEL by an estimated cost at compile time and a runtime cost budget.
//! The `cel` crate (0.13) meters nothing at runtime, and kube-cel's estimator needs an
//! OpenAPI schema to bound list sizes, which a filter over arbitrary resources lacks. So
//! the bound is static, on the expression's shape:
//! - at most [`MAX_SOURCE_BYTES`] of source and [`MAX_NODES`] syntax nodes;
//! - parser nesting at most [`MAX_NESTING`] (the `cel` parser's recursion limit);
//! - no comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) inside another's
//!   range or body: what makes a CEL program's cost grow as a power of its input.
//!
//! Every operation then costs at most linear time in the object, each comprehension runs
//! once over one list, so one evaluation costs O(nodes x object size), the object being
//! bounded by `--max-object-bytes`. A comprehension that builds a list (`map`, `filter`)
//! may cost up to quadratic time in that list's length in this interpreter (it
//! concatenates its accumulator); that is the limit of what is bounded here. No wall-clock
//! timeout: it would make results depend on the machine's load.

use std::fmt;

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{EntryExpr, Expr};
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::parser::{Expression, Parser};
use kube_cel::cel::{Context, ExecutionError, Value};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Longest expression accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024;
/// Most syntax nodes (after macro expansion) accepted.
pub const MAX_NODES: usize = 2_000;
/// Deepest parser nesting accepted.
pub const MAX_NESTING: u16 = 32;

/// The parser thread's stack: deep enough for [`MAX_NESTING`] levels in a debug build.
const PARSER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Refuses brackets or prefix operators nested deeper than [`MAX_NESTING`] before the
/// parser sees them, outside string literals.
fn nesting(source: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut prefix_run = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in source.char_indices() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prefix_run = match c {
            '!' | '-' => prefix_run + 1,
            c if c.is_whitespace() => prefix_run,
            _ => 0,
        };
        if depth + prefix_run > usize::from(MAX_NESTING) {
            return Err(format!(
                "does not compile: column {}: nested deeper than the {MAX_NESTING} levels accepted",
                source[..i].chars().count() + 1
            ));
        }
    }
    Ok(())
}

/// The variables a filter may use.
/// `tombstone` is true on a DELETED found on resuming from a checkpoint, whose `object`
/// holds only the identity; `oldResourceVersion` is the checkpoint's resourceVersion on a
/// MODIFIED found the same way (which has no `oldObject`), else null. Both let a filter
/// written for live changes say what it does with the changes found on resuming.
pub const VARIABLES: [&str; 6] = [
    "object",
    "oldObject",
    "type",
    "origin",
    "tombstone",
    "oldResourceVersion",
];

/// A compiled filter.
pub struct CelFilter {
    source: String,
    expression: Expression,
    /// The standard and Kubernetes functions; each evaluation adds its variables in a
    /// scope of its own.
    functions: Context<'static>,
}

impl fmt::Debug for CelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CelFilter").field(&self.source).finish()
    }
}

/// What one evaluation sees.
pub struct Input<'a> {
    /// The object.
    pub object: &'a RawValue,
    /// The previous object, on MODIFIED.
    pub old_object: Option<&'a RawValue>,
    /// `ADDED`, `MODIFIED`, `DELETED` or `SYNC`.
    pub event_type: &'static str,
    /// `list`, `watch`, `relist` or `resync`.
    pub origin: &'static str,
    /// A DELETED found on resuming from a checkpoint: `object` is the identity only.
    pub tombstone: bool,
    /// On a MODIFIED found on resuming from a checkpoint: the resourceVersion it knew.
    pub old_resource_version: Option<&'a str>,
}

impl CelFilter {
    /// Compiles `source`; an error is one line naming the position.
    pub fn compile(source: &str) -> Result<CelFilter, String> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(format!(
                "is {} bytes long, more than the {MAX_SOURCE_BYTES} accepted",
                source.len()
            ));
        }
        if source.trim().is_empty() {
            return Err(
                "is empty; write a CEL expression like object.status.phase == \"Failed\"".into(),
            );
        }
        nesting(source)?;
        let owned = source.to_owned();
        // The generated parser recurses deeply per nesting level; a thread of its own
        // with a roomy stack keeps that off whatever thread compiles the filter.
        let parsed = std::thread::Builder::new()
            .name("cel-parse".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn(move || Parser::new().max_recursion_depth(MAX_NESTING).parse(&owned))
            .map_err(|e| format!("could not be parsed: {e}"))?
            .join()
            .map_err(|_| "could not be parsed: the parser failed".to_owned())?;
        let expression = parsed.map_err(|e| match e.errors.first() {
            Some(first) => format!(
                "does not compile: line {} column {}: {}",
                first.pos.0,
                // The parser counts columns from 1.
                first.pos.1,
                first.msg.lines().next().unwrap_or("syntax error")
            ),
            None => "does not compile".into(),
        })?;
        let mut check = Check {
            source,
            nodes: 0,
            bound: Vec::new(),
        };
        check.expr(&expression.expr, 0)?;
        Ok(CelFilter {
            source: source.to_owned(),
            expression,
            functions: Context::default().with_all(),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the filter: `Ok(true)` keeps the notification. An error says what went
    /// wrong without quoting any value of the object.
    pub fn evaluate(&self, input: &Input<'_>) -> Result<bool, String> {
        let mut scope = self.functions.new_inner_scope();
        scope.add_variable_from_value("object", to_cel(input.object)?);
        let old = match input.old_object {
            Some(old) => to_cel(old)?,
            None => Value::Null,
        };
        scope.add_variable_from_value("oldObject", old);
        scope.add_variable_from_value("type", input.event_type);
        scope.add_variable_from_value("origin", input.origin);
        scope.add_variable_from_value("tombstone", input.tombstone);
        let old_rv = match input.old_resource_version {
            Some(rv) => Value::from(rv.to_owned()),
            None => Value::Null,
        };
        scope.add_variable_from_value("oldResourceVersion", old_rv);
        match Value::resolve(&self.expression, &scope) {
            Ok(Value::Bool(keep)) => Ok(keep),
            Ok(other) => Err(format!("it gave a {}, not a bool", other.type_of())),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// An execution error, naming types rather than values: a value may be an object's data.
fn describe(e: &ExecutionError) -> String {
    use ExecutionError as E;
    match e {
        E::UnsupportedTargetType { target } => {
            format!("invalid argument of type {}", target.type_of())
        }
        E::NotSupportedAsMethod { method, target } => {
            format!("method '{method}' not supported on {}", target.type_of())
        }
        E::UnsupportedKeyType(v) | E::UnsupportedMapIndex(v) => {
            format!("a {} cannot be a map key", v.type_of())
        }
        E::ValuesNotComparable(a, b) => {
            format!("a {} cannot be compared to a {}", a.type_of(), b.type_of())
        }
        E::UnsupportedUnaryOperator(op, v) => {
            format!("operator '{op}' does not apply to {}", v.type_of())
        }
        E::UnsupportedBinaryOperator(op, a, b) | E::Overflow(op, a, b) => {
            format!(
                "operator '{op}' failed on {} and {}",
                a.type_of(),
                b.type_of()
            )
        }
        E::UnsupportedListIndex(v) | E::IndexOutOfBounds(v) => {
            format!("bad list index of type {}", v.type_of())
        }
        E::UnsupportedIndex(_, v) => format!("a {} cannot be indexed", v.type_of()),
        E::FunctionError { function, .. } => format!("function '{function}' failed"),
        E::DivisionByZero(_) | E::RemainderByZero(_) => "division by zero".into(),
        E::UnsupportedFunctionCallIdentifierType(_) | E::UnsupportedFieldsConstruction(_) => {
            "unsupported construct".into()
        }
        other => other.to_string(),
    }
}

/// The static checks of the module's doc: size, free variables, comprehension nesting.
struct Check<'a> {
    source: &'a str,
    nodes: usize,
    /// Variables bound by enclosing comprehensions.
    bound: Vec<String>,
}

impl Check<'_> {
    fn expr(&mut self, e: &Expr, comprehensions: usize) -> Result<(), String> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(format!(
                "has more than {MAX_NODES} syntax nodes; split or simplify it"
            ));
        }
        match e {
            Expr::Ident(name) => {
                if !VARIABLES.contains(&name.as_str()) && !self.bound.iter().any(|b| b == name) {
                    return Err(format!(
                        "does not compile: {}unknown variable '{name}'; the variables are {}",
                        self.position_of(name),
                        VARIABLES.join(", ")
                    ));
                }
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.expr(&target.expr, comprehensions)?;
                }
                for a in &call.args {
                    self.expr(&a.expr, comprehensions)?;
                }
            }
            Expr::Select(s) => self.expr(&s.operand.expr, comprehensions)?,
            Expr::List(l) => {
                for el in &l.elements {
                    self.expr(&el.expr, comprehensions)?;
                }
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.expr(&me.key.expr, comprehensions)?;
                        self.expr(&me.value.expr, comprehensions)?;
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.expr(&f.value.expr, comprehensions)?;
                    }
                }
            }
            Expr::Comprehension(c) => {
                if comprehensions > 0 {
                    return Err(format!(
                        "does not compile: {}a comprehension (all, exists, exists_one, map, filter) inside another is refused, as its cost grows with the product of the lists' lengths",
                        self.position_of(&c.iter_var)
                    ));
                }
                self.expr(&c.iter_range.expr, comprehensions + 1)?;
                self.expr(&c.accu_init.expr, comprehensions + 1)?;
                let before = self.bound.len();
                self.bound.push(c.iter_var.clone());
                self.bound.extend(c.iter_var2.clone());
                self.bound.push(c.accu_var.clone());
                for part in [&c.loop_cond, &c.loop_step, &c.result] {
                    self.expr(&part.expr, comprehensions + 1)?;
                }
                self.bound.truncate(before);
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
        Ok(())
    }

    /// `column N: ` where `word` first appears as a whole word in the source.
    fn position_of(&self, word: &str) -> String {
        let bytes = self.source.as_bytes();
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut from = 0;
        while let Some(found) = self.source[from..].find(word) {
            let at = from + found;
            let end = at + word.len();
            let before_ok = at == 0 || !is_ident(bytes[at - 1]);
            let after_ok = end >= bytes.len() || !is_ident(bytes[end]);
            if before_ok && after_ok {
                return format!("column {}: ", self.source[..at].chars().count() + 1);
            }
            from = end;
        }
        String::new()
    }
}

/// The object as a CEL value, read straight from its JSON (no intermediate tree).
fn to_cel(raw: &RawValue) -> Result<Value, String> {
    serde_json::from_str::<CelJson>(raw.get())
        .map(|v| v.0)
        .map_err(|e| format!("the object is not JSON CEL can read: {e}"))
}

struct CelJson(Value);

impl<'de> serde::Deserialize<'de> for CelJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CelVisitor).map(CelJson)
    }
}

struct CelVisitor;

impl<'de> Visitor<'de> for CelVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        // Kubernetes' CEL reads JSON integers as int; only what does not fit is uint.
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(std::sync::Arc::new(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(std::sync::Arc::new(v)))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(CelJson(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(std::sync::Arc::new(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = std::collections::HashMap::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((k, CelJson(v))) = map.next_entry::<String, CelJson>()? {
            entries.insert(Key::String(std::sync::Arc::new(k)), v);
        }
        Ok(Value::Map(Map {
            map: std::sync::Arc::new(entries),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).expect("json")
    }

    fn run(
        source: &str,
        object: serde_json::Value,
        old: Option<serde_json::Value>,
    ) -> Result<bool, String> {
        let f = CelFilter::compile(source).expect("compiles");
        let object = raw(object);
        let old = old.map(raw);
        f.evaluate(&Input {
            object: &object,
            old_object: old.as_deref(),
            event_type: if old.is_some() { "MODIFIED" } else { "ADDED" },
            origin: "watch",
            tombstone: false,
            old_resource_version: None,
        })
    }

    /// The changes found on resuming from a checkpoint: a tombstone (identity only) and
    /// a MODIFIED without oldObject can be told apart, and a filter can say what to do.
    #[test]
    fn resumed_changes_are_visible_to_a_filter() {
        use serde_json::json;
        let f = CelFilter::compile(
            "tombstone || (oldResourceVersion != null && oldResourceVersion != object.metadata.resourceVersion)",
        )
        .expect("compiles");
        let object = raw(json!({"metadata": {"name": "a", "resourceVersion": "9"}}));
        let input = |tombstone, old_resource_version| Input {
            object: &object,
            old_object: None,
            event_type: if tombstone { "DELETED" } else { "MODIFIED" },
            origin: "relist",
            tombstone,
            old_resource_version,
        };
        assert_eq!(f.evaluate(&input(true, None)), Ok(true));
        assert_eq!(f.evaluate(&input(false, Some("7"))), Ok(true));
        assert_eq!(f.evaluate(&input(false, Some("9"))), Ok(false));
        assert_eq!(f.evaluate(&input(false, None)), Ok(false));
    }

    #[test]
    fn phase_transitions_and_kubernetes_libraries() {
        use serde_json::json;
        let failed = "object.status.phase == 'Failed' && (oldObject == null || oldObject.status.phase != 'Failed')";
        assert_eq!(
            run(failed, json!({"status": {"phase": "Failed"}}), None),
            Ok(true)
        );
        assert_eq!(
            run(
                failed,
                json!({"status": {"phase": "Failed"}}),
                Some(json!({"status": {"phase": "Running"}}))
            ),
            Ok(true)
        );
        assert_eq!(
            run(
                failed,
                json!({"status": {"phase": "Failed"}}),
                Some(json!({"status": {"phase": "Failed"}}))
            ),
            Ok(false)
        );
        let quantity = "quantity(object.spec.memory).compareTo(quantity('1Gi')) > 0 && type == 'ADDED' && origin == 'watch'";
        assert_eq!(
            run(quantity, json!({"spec": {"memory": "2Gi"}}), None),
            Ok(true)
        );
        let exists = "object.spec.containers.exists(c, c.image.matches('^nginx:'))";
        assert_eq!(
            run(
                exists,
                json!({"spec": {"containers": [{"image": "nginx:1"}]}}),
                None
            ),
            Ok(true)
        );
        assert_eq!(
            run(
                "object.spec.replicas > 2",
                json!({"spec": {"replicas": 3}}),
                None
            ),
            Ok(true)
        );
        let guarded = "has(object.status.phase) && object.status.phase == 'Failed'";
        assert_eq!(run(guarded, json!({"status": {}}), None), Ok(false));
    }

    #[test]
    fn runtime_errors_name_no_values() {
        use serde_json::json;
        let e = run(
            "object.spec.secret + 1 == 2",
            json!({"spec": {"secret": "hunter2"}}),
            None,
        )
        .expect_err("error");
        assert!(!e.contains("hunter2"), "{e}");
        let e = run("object.missing.field == 1", json!({}), None).expect_err("no such key");
        assert!(e.contains("missing"), "{e}");
        let e = run("object.spec", json!({"spec": {}}), None).expect_err("not a bool");
        assert!(e.contains("not a bool"), "{e}");
    }

    #[test]
    fn compile_errors_point_at_the_position_and_bounds_hold() {
        let e = CelFilter::compile("object.status.phase == ").expect_err("syntax");
        assert!(e.contains("line 1 column 24:"), "{e}");
        let e = CelFilter::compile("objetc.status == 1").expect_err("unknown variable");
        assert!(e.contains("column 1: unknown variable 'objetc'"), "{e}");
        assert!(
            e.ends_with("object, oldObject, type, origin, tombstone, oldResourceVersion"),
            "{e}"
        );
        let e =
            CelFilter::compile("object.a.all(x, object.b.exists(y, y == x))").expect_err("nested");
        assert!(e.contains("inside another"), "{e}");
        let e = CelFilter::compile(&"(".repeat(40)).expect_err("deep");
        assert!(e.contains("does not compile"), "{e}");
        let long = format!("{}true", "true && ".repeat(MAX_SOURCE_BYTES / 8 + 1));
        assert!(
            CelFilter::compile(&long)
                .expect_err("long")
                .contains("bytes long")
        );
        assert!(CelFilter::compile(" ").is_err());
        // Comprehension variables are bound inside their comprehension only.
        assert!(CelFilter::compile("object.a.all(x, x > 1) && x == 1").is_err());
        assert!(CelFilter::compile("object.a.all(x, x > 1)").is_ok());
    }
}
