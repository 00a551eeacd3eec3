//! Payloads staged on the bridge host (`gpu-bridge-host --stage NAME=PATH`):
//! inputs too large for one 9P write, named by a job's `artefact` field and
//! checked against its `bytes_hash` and `bytes_len` like inline payloads.

use crate::descriptor::valid_id;
use crate::error::BridgeError;
use crate::limits::MAX_ARTEFACT;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most artefacts staged at once.
pub const MAX_ARTEFACTS: usize = 64;

/// Staged payloads by name.
#[derive(Debug, Clone, Default)]
pub struct Artefacts {
    by_name: BTreeMap<String, Arc<Vec<u8>>>,
}

impl Artefacts {
    /// Stages `bytes` under `name` (replacing any artefact of that name).
    pub fn stage(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), BridgeError> {
        if !valid_id(name) {
            return Err(BridgeError::BadJob(format!(
                "artefact name {name:?} is not 1-64 bytes of [A-Za-z0-9_.-]"
            )));
        }
        if bytes.len() > MAX_ARTEFACT {
            return Err(BridgeError::TooLarge {
                len: bytes.len(),
                max: MAX_ARTEFACT,
            });
        }
        if self.by_name.len() >= MAX_ARTEFACTS && !self.by_name.contains_key(name) {
            return Err(BridgeError::BadJob(format!(
                "{MAX_ARTEFACTS} artefacts are staged already"
            )));
        }
        self.by_name.insert(String::from(name), Arc::new(bytes));
        Ok(())
    }

    /// The artefact named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Vec<u8>>> {
        self.by_name.get(name).cloned()
    }

    /// The names staged, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}
