//! Interning of low-cardinality labels (products, endpoints, origins).
//!
//! Per-client state must stay within a fixed byte budget, so clients refer to products,
//! endpoints and origins by a `u32` id instead of holding strings. The table is capped: a flood
//! of distinct values (a bug in a gateway, an attacker varying a field) maps to one overflow id
//! instead of growing memory without bound.

use ahash::AHashMap;

/// Id given to every value once the table is full.
pub const OVERFLOW: u32 = u32::MAX;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Interner {
    /// Rebuilt from `names` after a restore ([`Interner::with_cap`]).
    #[serde(skip)]
    ids: AHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    cap: usize,
    overflowed: u64,
}

impl Interner {
    pub fn new(cap: usize) -> Self {
        Interner {
            ids: AHashMap::new(),
            names: Vec::new(),
            cap,
            overflowed: 0,
        }
    }

    /// The id of `s`, adding it if there is room.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        if self.names.len() >= self.cap {
            self.overflowed += 1;
            return OVERFLOW;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// Index a table restored from a checkpoint, under the configured cap. Ids already given
    /// out stay valid even if the cap is now lower.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.ids = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        self.cap = cap;
        self
    }

    /// The id of `s` if it was interned, without adding it.
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("(other)", |s| s)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// How many lookups found the table full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_capped() {
        let mut i = Interner::new(2);
        let a = i.intern("search");
        assert_eq!(i.intern("search"), a);
        let b = i.intern("timeline");
        assert_ne!(a, b);
        assert_eq!(i.intern("firehose"), OVERFLOW);
        assert_eq!(i.name(OVERFLOW), "(other)");
        assert_eq!(i.name(b), "timeline");
        assert_eq!(i.len(), 2);
        assert_eq!(i.overflowed(), 1);
        assert_eq!(i.get("firehose"), None);
    }
}
