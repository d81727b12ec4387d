//! `datastore serve` on RocksDB (the program's defaults: durable commits,
//! the cache on) on a runtime of its own with two workers, as on a 2-core
//! machine: GET latency idle, then while 32 clients write as fast as they
//! can. The reader is a client of its own (a thread and runtime apart from
//! the writers' clients). The release-build figure beside `datastore-http`'s
//! load test, which prints the same two figures from the debug build.
//!
//! ```text
//! cargo bench -p datastore --bench serve_under_writes
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use datastore_http::{Server, ServerConfig};

#[path = "../../datastore-http/tests/common/under_writes.rs"]
mod under_writes;

const WRITERS: usize = 32;
const GETS: usize = 5000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("rocksdb://{}", dir.path().join("db").display());
    let (addr, stop) = server_runtime.block_on(async {
        let ds = datastore::open_url(&url).await.unwrap();
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::default()
        };
        let server = Server::bind(ds, config).await.unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    });
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    clients.block_on(async {
        let seen = under_writes::measure(
            &format!("http://{addr}"),
            WRITERS,
            GETS,
            Duration::from_millis(500),
        )
        .await;
        println!("{}", seen.report("serve on RocksDB, release", WRITERS));
    });
    let _ = stop.send(());
    drop(server_runtime);
}
