//! The shared API suite (the original's `TestScheduler`): every case in `api/suite.rs` runs
//! against the store on a real redis-server and through the RPC client talking to a real RPC
//! server on another, and every endpoint of the table must be called by some case.

mod common;
#[path = "api/suite.rs"]
mod suite;

use std::collections::BTreeSet;
use std::sync::Arc;

use swh_scheduler::api::{ENDPOINTS, Recorder, SchedulerApi};
use swh_scheduler::rpc::{RpcClient, RpcConfig, serve_on};
use swh_scheduler::store::{Store, StoreConfig};

use common::{RedisCluster, RedisServer};

/// A fresh store under its own key prefix, so that cases never see each other's data.
async fn fresh_store(url: &str, case: &str) -> Store {
    let mut c = StoreConfig::new(url);
    c.prefix = format!("suite-{case}");
    Store::connect(c).await.expect("store connects")
}

/// Runs every case on the API made by `make` over a store on a fresh redis-server, and
/// checks that all endpoints were called.
async fn run_suite<F, Fut>(make: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn SchedulerApi>>,
{
    let server = RedisServer::start();
    run_suite_on(&server.url(), make).await;
}

async fn run_suite_on<F, Fut>(url: &str, make: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn SchedulerApi>>,
{
    let mut called = BTreeSet::new();
    for (name, case) in suite::CASES {
        let store = fresh_store(url, name).await;
        let api = Recorder::new(make(store.clone()).await);
        case(&api).await;
        called.extend(api.called());
    }
    let missing: Vec<_> = ENDPOINTS
        .iter()
        .filter(|e| !called.contains(e.method))
        .map(|e| e.method)
        .collect();
    assert!(missing.is_empty(), "endpoints no case calls: {missing:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_suite_passes_on_the_store() {
    run_suite(|store| async move { Arc::new(store) as Arc<dyn SchedulerApi> }).await;
}

/// The same suite on a 3-master Redis Cluster, found out from one node's URL: every script
/// of every endpoint runs on the node of its type's slot, and the keys spread over the masters.
#[tokio::test(flavor = "multi_thread")]
async fn the_suite_passes_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    run_suite_on(&cluster.url(), |store| async move {
        assert!(store.is_cluster());
        Arc::new(store) as Arc<dyn SchedulerApi>
    })
    .await;
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    assert!(
        masters.iter().all(|(_, keys)| *keys > 0),
        "every master holds some of the keys: {:?}",
        masters.iter().map(|(_, k)| k).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_suite_passes_through_the_rpc_server() {
    run_suite(|store| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        // the server lives as long as the test's runtime
        tokio::spawn(serve_on(
            listener,
            store,
            RpcConfig::default(),
            std::future::pending(),
        ));
        Arc::new(RpcClient::new(&url).unwrap()) as Arc<dyn SchedulerApi>
    })
    .await;
}
