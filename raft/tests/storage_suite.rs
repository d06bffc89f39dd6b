//! openraft's storage test suite against the RocksDB log store and state machine.

use openraft::{StorageError, testing::StoreBuilder};
use tempfile::TempDir;
use warrant_raft::{
    NodeId, STORAGE_CACHE_MIB_DEFAULT, TypeConfig,
    storage::{LogStore, StateMachineStore, StorageMemory},
};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = TempDir::new().expect("create temp dir");
        let memory = StorageMemory::new(STORAGE_CACHE_MIB_DEFAULT).expect("default budget");
        let log_store =
            LogStore::open(&dir.path().join("raft-log"), &memory).expect("open log store");
        let state_machine = StateMachineStore::open(dir.path(), &memory)?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    // The suite builds its own tokio runtime per case, so this is a plain #[test].
    if let Err(e) = openraft::testing::Suite::test_all(RocksBuilder) {
        panic!("storage suite failed: {e}");
    }
}
