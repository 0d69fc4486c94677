//! Naming items: by full id, by short address, or by an unambiguous id suffix.

use crate::model::Runbook;
use thiserror::Error;

/// What a name points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Item(usize),
    /// (item, sub-check index)
    SubCheck(usize, usize),
}

#[derive(Debug, Clone, Error, PartialEq)]
pub enum LookupError {
    #[error("no item is named `{0}`{hint}", hint = did_you_mean(.1))]
    Unknown(String, Option<String>),
    #[error("`{0}` names {1} items: {2}")]
    Ambiguous(String, usize, String),
}

fn did_you_mean(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

impl Runbook {
    /// Find an item or sub-check by id (`stage/group/item`), address (`1.2.3`),
    /// a unique id suffix (`group/item` or `item`), or `ITEM/N` for the Nth
    /// sub-check of an item.
    pub fn resolve(&self, name: &str) -> Result<Target, LookupError> {
        let name = name.trim().trim_matches('/');
        let exact: Vec<usize> = (0..self.items.len())
            .filter(|&i| self.items[i].id == name || self.items[i].address == name)
            .collect();
        match exact.len() {
            1 => return Ok(Target::Item(exact[0])),
            n if n > 1 => return Err(self.ambiguous(name, &exact)),
            _ => {}
        }
        for (i, item) in self.items.iter().enumerate() {
            if let Some(k) = item.subchecks.iter().position(|s| s.id == name) {
                return Ok(Target::SubCheck(i, k));
            }
        }
        if let Some((head, n)) = name.rsplit_once('/')
            && let Ok(n) = n.parse::<usize>()
            && let Ok(Target::Item(i)) = self.resolve(head)
        {
            if n >= 1 && n <= self.items[i].subchecks.len() {
                return Ok(Target::SubCheck(i, n - 1));
            }
            return Err(LookupError::Unknown(name.to_string(), None));
        }
        let suffix = format!("/{name}");
        let by_suffix: Vec<usize> = (0..self.items.len())
            .filter(|&i| self.items[i].id.ends_with(&suffix))
            .collect();
        match by_suffix.len() {
            1 => Ok(Target::Item(by_suffix[0])),
            0 => Err(LookupError::Unknown(name.to_string(), self.closest(name))),
            _ => Err(self.ambiguous(name, &by_suffix)),
        }
    }

    fn ambiguous(&self, name: &str, which: &[usize]) -> LookupError {
        let list = which
            .iter()
            .take(5)
            .map(|&i| format!("{} ({})", self.items[i].id, self.items[i].address))
            .collect::<Vec<_>>()
            .join(", ");
        LookupError::Ambiguous(name.to_string(), which.len(), list)
    }

    fn closest(&self, name: &str) -> Option<String> {
        self.items
            .iter()
            .map(|i| {
                let last = i.id.rsplit('/').next().unwrap_or(&i.id);
                (crate::text::edit_distance(name, last), &i.id)
            })
            .filter(|(d, _)| *d <= name.len() / 3 + 1)
            .min_by_key(|(d, _)| *d)
            .map(|(_, id)| id.clone())
    }
}
