//! Typed keyed state, after Bitwarden's state provider: state definitions
//! (a name and where the state lives), typed keys with a cleanup delay and
//! the events that clear them, `update(f, should_update)`, storage behind a
//! small trait (memory, or files replaced atomically), and versioned
//! migrations of persisted state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Serialize, de::DeserializeOwned};

/// Where a state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// In this process only.
    Memory,
    /// Persisted to disk.
    Disk,
}

/// An event that clears keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClearOn {
    /// The user signed out.
    Logout,
    /// The client locked.
    Lock,
}

/// A named group of keys and where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateDefinition {
    /// The state's name: lower camel case, unique.
    pub name: &'static str,
    /// Where its keys are stored.
    pub location: Location,
}

/// A typed key of a state.
#[derive(Debug)]
pub struct KeyDefinition<T> {
    /// The state it belongs to.
    pub state: StateDefinition,
    /// The key's name: lower camel case, unique within its state.
    pub key: &'static str,
    /// How long the value stays cached after its last subscriber left
    /// (see [`KeyedState::sweep`]).
    pub cleanup_delay: Duration,
    /// The events that clear it.
    pub clear_on: &'static [ClearOn],
    _type: PhantomData<fn() -> T>,
}

impl<T> KeyDefinition<T> {
    /// A key definition.
    pub const fn new(
        state: StateDefinition,
        key: &'static str,
        cleanup_delay: Duration,
        clear_on: &'static [ClearOn],
    ) -> Self {
        KeyDefinition {
            state,
            key,
            cleanup_delay,
            clear_on,
            _type: PhantomData,
        }
    }
}

/// What every key definition says about itself, whatever its type.
pub trait AnyKey: Sync {
    /// The state.
    fn state(&self) -> StateDefinition;
    /// The key's name.
    fn key(&self) -> &'static str;
    /// The events that clear it.
    fn clear_on(&self) -> &'static [ClearOn];
}

impl<T> AnyKey for KeyDefinition<T> {
    fn state(&self) -> StateDefinition {
        self.state
    }
    fn key(&self) -> &'static str {
        self.key
    }
    fn clear_on(&self) -> &'static [ClearOn] {
        self.clear_on
    }
}

fn lower_camel(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Checks a registry of keys: every state and key name is lower camel case,
/// state names are unique (one location each), and keys are unique within
/// their state. Returns every problem found.
pub fn check_definitions(keys: &[&dyn AnyKey]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut states: HashMap<&str, Location> = HashMap::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for k in keys {
        let s = k.state();
        if !lower_camel(s.name) {
            problems.push(format!("state name {:?} is not lower camel case", s.name));
        }
        if !lower_camel(k.key()) {
            problems.push(format!(
                "key name {:?} of state {:?} is not lower camel case",
                k.key(),
                s.name
            ));
        }
        if let Some(loc) = states
            .insert(s.name, s.location)
            .filter(|l| *l != s.location)
        {
            problems.push(format!(
                "state {:?} is defined twice, in {loc:?} and {:?}",
                s.name, s.location
            ));
        }
        if !seen.insert((s.name, k.key())) {
            problems.push(format!(
                "key {:?} is defined twice in state {:?}",
                k.key(),
                s.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Errors of keyed state.
#[derive(Debug, thiserror::Error)]
pub enum KeyedError {
    /// The storage failed.
    #[error("state storage: {key}: {source}")]
    Storage {
        /// The storage key.
        key: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A stored value does not decode as the key's type.
    #[error("state {key}: stored value does not decode: {reason}")]
    Decode {
        /// The storage key.
        key: String,
        /// What failed.
        reason: String,
    },
    /// A new value does not encode (a map with non-string keys, say).
    #[error("state {key}: value does not encode: {reason}")]
    Encode {
        /// The storage key.
        key: String,
        /// What failed.
        reason: String,
    },
}

/// Where keyed state is kept.
pub trait Storage: Send + Sync {
    /// The bytes at a key.
    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Replaces the bytes at a key.
    fn put(&self, key: &str, value: &[u8]) -> std::io::Result<()>;
    /// Removes a key (absent is fine).
    fn remove(&self, key: &str) -> std::io::Result<()>;
}

/// Storage in a map: the `Memory` location, and the fake for tests.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.map.lock().expect("lock").get(key).cloned())
    }
    fn put(&self, key: &str, value: &[u8]) -> std::io::Result<()> {
        self.map
            .lock()
            .expect("lock")
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn remove(&self, key: &str) -> std::io::Result<()> {
        self.map.lock().expect("lock").remove(key);
        Ok(())
    }
}

/// One file per key in a directory, replaced atomically: write a temporary
/// file, fsync it, rename it over the old one, fsync the directory. A crash
/// leaves the old value or the new one, never a torn one.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
}

impl FileStorage {
    /// Storage in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FileStorage { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '~'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }
}

impl Storage for FileStorage {
    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> std::io::Result<()> {
        let path = self.path(key);
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(value)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    fn remove(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

type Listener = Box<dyn Fn(&[u8]) + Send + Sync>;

/// A cached value: the stored bytes, who listens, and since when nobody has.
struct Cached {
    bytes: Option<Vec<u8>>,
    listeners: Vec<(u64, Listener)>,
    cleanup_delay: Duration,
    idle_since: Option<Instant>,
}

type Cache = Arc<Mutex<HashMap<String, Cached>>>;

/// Typed keyed state over memory and disk storage, per user, with a
/// write-through cache: a key's value stays cached while it has subscribers
/// and for its `cleanup_delay` after the last one leaves.
pub struct KeyedState {
    memory: Arc<dyn Storage>,
    disk: Arc<dyn Storage>,
    cache: Cache,
    next_listener: std::sync::atomic::AtomicU64,
}

/// Keeps a subscription alive; dropping it unsubscribes and, when it was the
/// last, starts the key's cleanup delay.
pub struct SubscriptionHandle {
    cache: Cache,
    key: String,
    id: u64,
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if let Some(entry) = cache.get_mut(&self.key) {
            entry.listeners.retain(|(id, _)| *id != self.id);
            if entry.listeners.is_empty() {
                entry.idle_since = Some(Instant::now());
            }
        }
    }
}

impl KeyedState {
    /// Keyed state on these two storages.
    pub fn new(memory: Arc<dyn Storage>, disk: Arc<dyn Storage>) -> Self {
        KeyedState {
            memory,
            disk,
            cache: Arc::new(Mutex::new(HashMap::new())),
            next_listener: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Evicts cached values nobody has listened to for their cleanup delay
    /// (as of `now`). Returns how many it evicted.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut cache = self.cache.lock().expect("lock");
        let before = cache.len();
        cache.retain(|_, c| match c.idle_since {
            Some(since) if c.listeners.is_empty() => {
                now.saturating_duration_since(since) < c.cleanup_delay
            }
            _ => true,
        });
        before - cache.len()
    }

    /// The storage keys whose values are cached now.
    pub fn cached(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.cache.lock().expect("lock").keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The bytes of a key: from the cache, or read from storage and cached.
    fn bytes(
        &self,
        location: Location,
        skey: &str,
        delay: Duration,
    ) -> Result<Option<Vec<u8>>, KeyedError> {
        if let Some(c) = self.cache.lock().expect("lock").get(skey) {
            return Ok(c.bytes.clone());
        }
        let bytes = self
            .storage(location)
            .get(skey)
            .map_err(|source| KeyedError::Storage {
                key: skey.to_string(),
                source,
            })?;
        self.cache.lock().expect("lock").insert(
            skey.to_string(),
            Cached {
                bytes: bytes.clone(),
                listeners: Vec::new(),
                cleanup_delay: delay,
                idle_since: Some(Instant::now()),
            },
        );
        Ok(bytes)
    }

    fn storage(&self, location: Location) -> &dyn Storage {
        match location {
            Location::Memory => self.memory.as_ref(),
            Location::Disk => self.disk.as_ref(),
        }
    }

    /// The storage key of a user's key.
    pub fn storage_key(user: &str, state: &str, key: &str) -> String {
        format!("user_{user}_{state}_{key}")
    }

    fn read<T: DeserializeOwned>(
        &self,
        location: Location,
        skey: &str,
        delay: Duration,
    ) -> Result<Option<T>, KeyedError> {
        self.bytes(location, skey, delay)?
            .map(|b| serde_json::from_slice(&b))
            .transpose()
            .map_err(|e| KeyedError::Decode {
                key: skey.to_string(),
                reason: e.to_string(),
            })
    }

    /// A user's value for a key.
    pub fn get<T: DeserializeOwned>(
        &self,
        user: &str,
        def: &KeyDefinition<T>,
    ) -> Result<Option<T>, KeyedError> {
        self.read(
            def.state.location,
            &Self::storage_key(user, def.state.name, def.key),
            def.cleanup_delay,
        )
    }

    /// Calls `listener` with the new bytes each time the key is written,
    /// until the returned handle is dropped; the value stays cached meanwhile.
    pub fn subscribe<T>(
        &self,
        user: &str,
        def: &KeyDefinition<T>,
        listener: impl Fn(&[u8]) + Send + Sync + 'static,
    ) -> Result<SubscriptionHandle, KeyedError> {
        let skey = Self::storage_key(user, def.state.name, def.key);
        self.bytes(def.state.location, &skey, def.cleanup_delay)?;
        let id = self
            .next_listener
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cache = self.cache.lock().expect("lock");
        let entry = cache.get_mut(&skey).expect("cached just above");
        entry.listeners.push((id, Box::new(listener)));
        entry.idle_since = None;
        Ok(SubscriptionHandle {
            cache: self.cache.clone(),
            key: skey,
            id,
        })
    }

    /// Computes a new value from the current one and stores it, unless
    /// `should_update` says no (then nothing is written and nobody is
    /// told). Returns the value stored afterwards.
    pub fn update<T: Serialize + DeserializeOwned>(
        &self,
        user: &str,
        def: &KeyDefinition<T>,
        f: impl FnOnce(Option<&T>) -> T,
        should_update: impl FnOnce(Option<&T>) -> bool,
    ) -> Result<Option<T>, KeyedError> {
        let skey = Self::storage_key(user, def.state.name, def.key);
        let current: Option<T> = self.read(def.state.location, &skey, def.cleanup_delay)?;
        if !should_update(current.as_ref()) {
            return Ok(current);
        }
        let next = f(current.as_ref());
        let bytes = serde_json::to_vec(&next).map_err(|e| KeyedError::Encode {
            key: skey.clone(),
            reason: e.to_string(),
        })?;
        self.storage(def.state.location)
            .put(&skey, &bytes)
            .map_err(|source| KeyedError::Storage {
                key: skey.clone(),
                source,
            })?;
        if let Some(entry) = self.cache.lock().expect("lock").get_mut(&skey) {
            entry.bytes = Some(bytes.clone());
            for (_, l) in &entry.listeners {
                l(&bytes);
            }
        }
        Ok(Some(next))
    }

    /// Removes every key of `user` that `event` clears, loaded in this
    /// process or not (the registry says which keys exist). Returns how
    /// many definitions it cleared.
    pub fn clear(
        &self,
        user: &str,
        event: ClearOn,
        registry: &[&dyn AnyKey],
    ) -> Result<usize, KeyedError> {
        let mut cleared = 0;
        for def in registry.iter().filter(|d| d.clear_on().contains(&event)) {
            let skey = Self::storage_key(user, def.state().name, def.key());
            self.storage(def.state().location)
                .remove(&skey)
                .map_err(|source| KeyedError::Storage {
                    key: skey.clone(),
                    source,
                })?;
            if let Some(entry) = self.cache.lock().expect("lock").get_mut(&skey) {
                entry.bytes = None;
            }
            cleared += 1;
        }
        Ok(cleared)
    }
}
