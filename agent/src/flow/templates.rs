//! NetFlow v9 / IPFIX templates kept on disk, so that data arriving right after an agent
//! restart still decodes (exporters resend templates only every few minutes).
//!
//! The parser writes each template through to this store and reads it back on a miss. The
//! whole set lives in one small JSON file, rewritten (to a temporary file, then renamed) only
//! when a template is new or changed: exporters repeat the same templates constantly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use netflow_parser::template_store::{
    TemplateKind, TemplateStore, TemplateStoreError, TemplateStoreKey,
};

#[derive(Debug)]
pub struct FileTemplateStore {
    path: PathBuf,
    /// Key text (`scope|kind|id`) → template in the library's wire format.
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

fn key_text(k: &TemplateStoreKey) -> String {
    let kind = match k.kind {
        TemplateKind::V9Data => "v9",
        TemplateKind::V9Options => "v9-options",
        TemplateKind::IpfixData => "ipfix",
        TemplateKind::IpfixOptions => "ipfix-options",
        TemplateKind::IpfixV9Data => "ipfix-v9",
        TemplateKind::IpfixV9Options => "ipfix-v9-options",
        _ => "other",
    };
    format!("{}|{kind}|{}", k.scope, k.template_id)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> TemplateStoreError {
    TemplateStoreError::Backend(Box::new(e))
}

impl FileTemplateStore {
    /// Opens (or starts) the store at `path`. An unreadable file is logged and set aside:
    /// templates come back with the exporters' next announcement.
    pub fn open(path: &Path) -> FileTemplateStore {
        let map = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, String>>(&bytes) {
                Ok(m) => m
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, B64.decode(v).ok()?)))
                    .collect(),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "template store unreadable: starting empty");
                    let _ = std::fs::rename(path, path.with_extension("corrupt"));
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        FileTemplateStore {
            path: path.to_owned(),
            map: Mutex::new(map),
        }
    }

    /// Every stored template: (key text, the library's wire format).
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        self.map
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn save(&self, map: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
        let text: BTreeMap<&String, String> = map.iter().map(|(k, v)| (k, B64.encode(v))).collect();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&text)?)?;
        std::fs::rename(&tmp, &self.path)
    }
}

impl TemplateStore for FileTemplateStore {
    fn get(&self, key: &TemplateStoreKey) -> Result<Option<Vec<u8>>, TemplateStoreError> {
        let map = self
            .map
            .lock()
            .map_err(|_| backend(std::io::Error::other("poisoned")))?;
        Ok(map.get(&key_text(key)).cloned())
    }

    fn put(&self, key: &TemplateStoreKey, value: &[u8]) -> Result<(), TemplateStoreError> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| backend(std::io::Error::other("poisoned")))?;
        let k = key_text(key);
        if map.get(&k).is_some_and(|v| v == value) {
            return Ok(());
        }
        map.insert(k, value.to_vec());
        self.save(&map).map_err(backend)
    }

    fn remove(&self, key: &TemplateStoreKey) -> Result<(), TemplateStoreError> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| backend(std::io::Error::other("poisoned")))?;
        if map.remove(&key_text(key)).is_some() {
            self.save(&map).map_err(backend)?;
        }
        Ok(())
    }
}
