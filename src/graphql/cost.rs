//! What a query document will cost, measured before anything runs: its
//! selection multiplied out through fragment spreads (each fragment's
//! summary computed once, so a fragment that spreads the next one three
//! times, twenty levels deep, is measured in microseconds instead of
//! walked 3^20 times), its depth, and the size of the introspection answer
//! it asks for.
//!
//! async-graphql's own depth, complexity and recursion checks walk every
//! fragment spread anew, so a 1 KB document of nested spreads kept a core
//! busy for good; they run only after [`measure`] has bounded the expanded
//! selection.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The budget of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most fields once every fragment spread is replaced by its fragment.
    pub max_fields: u64,
    /// Deepest field nesting outside introspection.
    pub max_depth: u64,
    /// Deepest field nesting inside `__schema` / `__type` (counted from
    /// the root field, so `__schema { types { fields { type { ofType ...`
    /// is 4 before the first `ofType`).
    pub max_introspection_depth: u64,
    /// Largest estimated number of values in the introspection part of
    /// the answer (see [`introspection_fanout`]).
    pub max_introspection_cost: u64,
}

/// How nested a document's selections and spreads may be before the walk
/// stops (a bound on this module's own recursion, far above any real query).
const MAX_NESTING: u32 = 128;

/// Why an operation is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverBudget {
    Fields { max: u64 },
    Depth { max: u64 },
    IntrospectionDepth { max: u64 },
    Introspection { max: u64 },
    Nesting,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverBudget::Fields { max } => write!(
                f,
                "the query selects more than {max} fields once its fragments are expanded"
            ),
            OverBudget::Depth { max } => {
                write!(f, "the query is nested too deep (more than {max} levels)")
            }
            OverBudget::IntrospectionDepth { max } => write!(
                f,
                "the introspection part of the query is nested too deep (more than {max} levels)"
            ),
            OverBudget::Introspection { max } => write!(
                f,
                "the introspection part of the query would answer more than {max} values; ask for the schema once"
            ),
            OverBudget::Nesting => write!(
                f,
                "the query's selections and fragment spreads are nested more than {MAX_NESTING} levels"
            ),
        }
    }
}

/// The measures of a selection (an operation's, or a fragment's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measure {
    /// Fields, every spread expanded.
    pub fields: u64,
    /// Deepest nesting of data fields.
    pub depth: u64,
    /// Deepest nesting inside introspection.
    pub introspection_depth: u64,
    /// Estimated values of the introspection answer.
    pub introspection_cost: u64,
}

/// How many items an introspection list field answers, on average, in
/// tagsmith's schema, rounded up (a unit test checks them against the
/// schema, so they grow with it). Fields outside lists count 1.
pub fn introspection_fanout(field: &str) -> u64 {
    match field {
        "types" => 100,
        "fields" => 5,
        "inputFields" | "args" | "enumValues" | "interfaces" => 1,
        "possibleTypes" => 2,
        "directives" => 10,
        "locations" => 4,
        _ => 1,
    }
}

/// Measures every operation of `document` and returns the first refusal.
pub fn check(document: &ExecutableDocument, budget: &Budget) -> Result<(), OverBudget> {
    for (_, operation) in document.operations.iter() {
        let measure = measure(document, &operation.node.selection_set.node)?;
        refuse(&measure, budget)?;
    }
    Ok(())
}

fn refuse(measure: &Measure, budget: &Budget) -> Result<(), OverBudget> {
    if measure.fields > budget.max_fields {
        return Err(OverBudget::Fields {
            max: budget.max_fields,
        });
    }
    if measure.depth > budget.max_depth {
        return Err(OverBudget::Depth {
            max: budget.max_depth,
        });
    }
    if measure.introspection_depth > budget.max_introspection_depth {
        return Err(OverBudget::IntrospectionDepth {
            max: budget.max_introspection_depth,
        });
    }
    if measure.introspection_cost > budget.max_introspection_cost {
        return Err(OverBudget::Introspection {
            max: budget.max_introspection_cost,
        });
    }
    Ok(())
}

/// Measures one operation's selection.
pub fn measure(
    document: &ExecutableDocument,
    selection: &SelectionSet,
) -> Result<Measure, OverBudget> {
    let mut walk = Walk {
        document,
        memo: HashMap::new(),
    };
    walk.selection(selection, Place::Data, 0)
}

/// Where a selection sits: in the data, or inside `__schema` / `__type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Place {
    Data,
    Introspection,
}

/// A fragment's measure, once per place; `None` while it is being
/// measured (a spread of itself: validation reports the cycle).
type Memo<'a> = HashMap<(&'a str, Place), Option<Measure>>;

struct Walk<'a> {
    document: &'a ExecutableDocument,
    memo: Memo<'a>,
}

impl<'a> Walk<'a> {
    fn selection(
        &mut self,
        set: &'a SelectionSet,
        place: Place,
        nesting: u32,
    ) -> Result<Measure, OverBudget> {
        if nesting > MAX_NESTING {
            return Err(OverBudget::Nesting);
        }
        let mut total = Measure::default();
        for item in &set.items {
            let measure = match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let children = &field.node.selection_set.node;
                    match place {
                        Place::Data if name == "__schema" || name == "__type" => {
                            let inner =
                                self.selection(children, Place::Introspection, nesting + 1)?;
                            Measure {
                                fields: inner.fields.saturating_add(1),
                                depth: 1,
                                introspection_depth: inner.introspection_depth.saturating_add(1),
                                introspection_cost: inner.introspection_cost.saturating_add(1),
                            }
                        }
                        Place::Data => {
                            let inner = self.selection(children, Place::Data, nesting + 1)?;
                            Measure {
                                fields: inner.fields.saturating_add(1),
                                depth: inner.depth.saturating_add(1),
                                ..inner
                            }
                        }
                        Place::Introspection => {
                            let inner = self.selection(children, place, nesting + 1)?;
                            let fanout = introspection_fanout(name);
                            Measure {
                                fields: inner.fields.saturating_add(1),
                                depth: 0,
                                introspection_depth: inner.introspection_depth.saturating_add(1),
                                introspection_cost: fanout
                                    .saturating_mul(inner.introspection_cost.saturating_add(1)),
                            }
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.selection(&inline.node.selection_set.node, place, nesting + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), place, nesting + 1)?
                }
            };
            total = Measure {
                fields: total.fields.saturating_add(measure.fields),
                depth: total.depth.max(measure.depth),
                introspection_depth: total.introspection_depth.max(measure.introspection_depth),
                introspection_cost: total
                    .introspection_cost
                    .saturating_add(measure.introspection_cost),
            };
        }
        Ok(total)
    }

    fn fragment(
        &mut self,
        name: &'a str,
        place: Place,
        nesting: u32,
    ) -> Result<Measure, OverBudget> {
        match self.memo.get(&(name, place)) {
            Some(Some(measure)) => return Ok(*measure),
            // A cycle, or an unknown fragment: validation reports either.
            Some(None) => return Ok(Measure::default()),
            None => {}
        }
        let document = self.document;
        let Some((key, fragment)) = document.fragments.get_key_value(name) else {
            return Ok(Measure::default());
        };
        self.memo.insert((key.as_str(), place), None);
        let measure = self.selection(&fragment.node.selection_set.node, place, nesting)?;
        self.memo.insert((key.as_str(), place), Some(measure));
        Ok(measure)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn measured(query: &str) -> Measure {
        let document = parse_query(query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        measure(&document, &operation.node.selection_set.node).unwrap()
    }

    /// `levels` fragments, each spreading the next three times.
    fn fan_out(levels: usize) -> String {
        let mut query = String::from("query { ...F0 }\n");
        for i in 0..levels {
            query.push_str(&format!(
                "fragment F{i} on Query {{ __typename ...F{n} ...F{n} ...F{n} }}\n",
                n = i + 1
            ));
        }
        query.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
        query
    }

    #[test]
    fn counts_fields_through_fragments_multiplied_out() {
        let m = measured("{ users { nodes { id email tags { name } } } viewer { role } }");
        assert_eq!(m.fields, 8);
        assert_eq!(m.depth, 4);
        assert_eq!(m.introspection_cost, 0);
        // 1 + 3 + 9 + 27 = 40 __typename fields.
        assert_eq!(measured(&fan_out(3)).fields, 40);
    }

    #[test]
    fn a_fragment_bomb_is_measured_without_walking_it() {
        // 3^60 fields: saturates instead of overflowing, at once.
        let m = measured(&fan_out(60));
        assert_eq!(m.fields, u64::MAX);
        let budget = Budget {
            max_fields: 2_000,
            max_depth: 12,
            max_introspection_depth: 20,
            max_introspection_cost: 100_000,
        };
        let document = parse_query(fan_out(60)).unwrap();
        assert_eq!(
            check(&document, &budget),
            Err(OverBudget::Fields { max: 2_000 })
        );
    }

    #[test]
    fn introspection_is_measured_by_its_answer() {
        let one = measured("{ __schema { types { name fields { name } } } }");
        assert_eq!(one.depth, 1);
        assert_eq!(one.introspection_depth, 4);
        // __schema 1 + types 100 × (types 1 + name 1 + fields 5 × (fields 1 + name 1))
        assert_eq!(one.introspection_cost, 1 + 100 * (1 + 1 + 5 * 2));
        let aliases: String = (0..500)
            .map(|i| format!("a{i}: __schema {{ types {{ name fields {{ name }} }} }} "))
            .collect();
        let many = measured(&format!("{{ {aliases} }}"));
        assert_eq!(many.introspection_cost, 500 * one.introspection_cost);
        // An `ofType` chain adds depth, not fan-out.
        let chain =
            measured("{ __type(name: \"User\") { ofType { ofType { ofType { name } } } } }");
        assert_eq!(chain.introspection_depth, 5);
        assert_eq!(chain.introspection_cost, 5);
    }

    #[test]
    fn cycles_and_unknown_fragments_are_left_to_validation() {
        let m = measured(
            "{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A ...C }",
        );
        assert_eq!(m.fields, 1);
    }

    /// The fan-outs are the schema's averages, rounded up: a schema that
    /// grows past them fails here until they are raised.
    #[test]
    fn fanouts_cover_the_schema() {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        let schema = async_graphql::parser::parse_schema(crate::graphql::schema_sdl()).unwrap();
        // The introspection types and the built-in scalars come on top.
        let (mut types, mut fields, mut args, mut input_fields, mut enum_values) =
            (13u64, 0u64, 0u64, 0u64, 0u64);
        let mut directives = 4u64; // include, skip, deprecated, specifiedBy
        for definition in &schema.definitions {
            match definition {
                TypeSystemDefinition::Type(t) => {
                    types += 1;
                    match &t.node.kind {
                        TypeKind::Object(o) => {
                            fields += o.fields.len() as u64;
                            args += o
                                .fields
                                .iter()
                                .map(|f| f.node.arguments.len() as u64)
                                .sum::<u64>();
                        }
                        TypeKind::Interface(i) => {
                            fields += i.fields.len() as u64;
                            args += i
                                .fields
                                .iter()
                                .map(|f| f.node.arguments.len() as u64)
                                .sum::<u64>();
                        }
                        TypeKind::InputObject(i) => input_fields += i.fields.len() as u64,
                        TypeKind::Enum(e) => enum_values += e.values.len() as u64,
                        _ => {}
                    }
                }
                TypeSystemDefinition::Directive(_) => directives += 1,
                TypeSystemDefinition::Schema(_) => {}
            }
        }

        fields += 40;
        assert!(introspection_fanout("types") >= types, "{types} types");
        assert!(
            introspection_fanout("fields") * types >= fields,
            "{fields} fields"
        );
        assert!(introspection_fanout("args") * fields >= args, "{args} args");
        assert!(
            introspection_fanout("inputFields") * types >= input_fields,
            "{input_fields} input fields"
        );
        assert!(
            introspection_fanout("enumValues") * types >= enum_values,
            "{enum_values} enum values"
        );
        assert!(
            introspection_fanout("directives") >= directives,
            "{directives} directives"
        );
    }

    /// The introspection queries that tools send fit the default budget
    /// with room to spare (the HTTP tests run them against the server).
    #[test]
    fn standard_introspection_queries_fit_the_default_budget() {
        let limits = crate::config::QueryLimits::default();
        let budget = super::super::limits::budget(&limits);
        for (name, query) in [
            (
                "graphql-js all options",
                include_str!("../../tests/api/introspection/graphql-js-16-all-options.graphql"),
            ),
            (
                "graphql-js default",
                include_str!("../../tests/api/introspection/graphql-js-16-default.graphql"),
            ),
        ] {
            let m = measured(query);
            println!("{name}: {m:?}");
            assert!(
                m.introspection_cost * 2 <= budget.max_introspection_cost,
                "{name}: {m:?}"
            );
            assert!(m.fields * 4 <= budget.max_fields, "{name}: {m:?}");
            assert!(
                m.introspection_depth < budget.max_introspection_depth,
                "{name}: {m:?}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut query = String::from("{ ...F0 }");
        for i in 0..200 {
            query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        query.push_str(" fragment F200 on Query { __typename }");
        let document = parse_query(&query).unwrap();
        let (_, operation) = document.operations.iter().next().unwrap();
        assert_eq!(
            measure(&document, &operation.node.selection_set.node),
            Err(OverBudget::Nesting)
        );
    }
}
