//! Our events as rsigma sees them: field lookups go straight to the flat map (our field
//! names hold their dots: `source.ip` is one key), so no JSON is rebuilt per event.

use std::borrow::Cow;

use rsigma_eval::{Event as SigmaEventTrait, EventValue};
use serde_json::Value;
use vigil_schema::Event;

pub struct SigmaEvent<'a>(pub &'a Event);

fn visit(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| visit(i, f)),
        _ => {}
    }
}

impl SigmaEventTrait for SigmaEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.0.get(path).map(EventValue::from)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut hit = false;
        self.visit_string_values(&mut |s| hit = hit || pred(s));
        hit
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        for (_, v) in self.0.iter() {
            match v {
                Value::String(s) => out.push(Cow::Borrowed(s.as_str())),
                Value::Array(items) => items.iter().for_each(|i| {
                    if let Value::String(s) = i {
                        out.push(Cow::Borrowed(s.as_str()))
                    }
                }),
                _ => {}
            }
        }
        out
    }

    fn visit_string_values(&self, f: &mut dyn FnMut(&str)) {
        for (_, v) in self.0.iter() {
            visit(v, f);
        }
    }

    fn to_json(&self) -> Value {
        Value::Object(self.0.to_json_map())
    }

    fn field_keys(&self) -> Vec<Cow<'_, str>> {
        self.0.iter().map(|(k, _)| Cow::Borrowed(k)).collect()
    }
}
