//! Three Garage nodes on loopback that replicate each other: what an
//! association that wants its packs to survive a lost machine runs. Each
//! node is its own process with its own metadata and data folders, RPC
//! port and S3 endpoint; one layout puts the three in three zones with
//! `replication_factor = 3` and `consistency_mode = "consistent"`, so every
//! object is on every node and a read or a write needs 2 of the 3 (Garage's
//! quorums for 3 replicas). One node down still takes writes and serves
//! reads, through the S3 endpoint of a node that is up.
//!
//! Starting: the three processes at once, node 0 told of the others
//! (`garage node connect`), the layout assigned and applied through node 0,
//! the bucket and key made there; then the start waits until each node has
//! the layout and the key (it lists the bucket through that node's
//! endpoint) and until an object written through each node reads back
//! through the next one. About 1.5 s on a 2-core machine. Each node's
//! configuration then names the other two (`bootstrap_peers`), so a
//! restarted node dials them at once and serves again within a second or
//! two; without that it waited about 20 s for the others to dial it.

use std::time::{Duration, Instant};

use coffre_store::{PackStorage, RawPacks, S3Config};

use super::node::{Node, Settings};
use super::{garage_binary, make_bucket, random_hex32, url, wait_bucket, BUCKET};

/// How many nodes a cluster has: the fewest for which Garage keeps
/// accepting writes with one of them down (quorum 2 of 3).
pub const NODES: usize = 3;

/// A running three-node Garage cluster (see the module documentation).
/// Nodes are numbered 0 to 2; every node is killed when it is dropped.
#[derive(Debug)]
pub struct Cluster {
    // Declared before `dir`: the processes are killed before their folders go.
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
    /// The bucket the setup made.
    pub bucket: String,
    /// The key allowed to read and write it.
    pub key_id: String,
    /// Its secret.
    pub secret: String,
}

impl Cluster {
    /// Starts three nodes with one layout (replication factor 3), bucket
    /// `coffre-test` and a key for it; returns when every node serves the
    /// bucket.
    pub fn start() -> Cluster {
        let bin = garage_binary();
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            replication_factor: NODES as u8,
            rpc_secret: random_hex32(),
            bootstrap_peers: Vec::new(),
        };
        let mut nodes: Vec<Node> = (0..NODES)
            .map(|i| Node::new(&bin, dir.path().join(format!("node{i}")), settings.clone()))
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        // A node's id is made at its first start; each learns the others'
        // now (`node connect`) and at every restart (`bootstrap_peers`).
        let addresses: Vec<String> = nodes.iter().map(Node::address).collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            let others = (0..NODES).filter(|&j| j != i);
            node.set_bootstrap_peers(others.map(|j| addresses[j].clone()).collect());
        }
        for address in &addresses[1..] {
            nodes[0].cli(&["node", "connect", address]);
        }
        for (i, address) in addresses.iter().enumerate() {
            let id = address.split('@').next().unwrap();
            let zone = format!("dc{}", i + 1);
            nodes[0].cli(&["layout", "assign", "-z", &zone, "-c", "1G", id]);
        }
        nodes[0].cli(&["layout", "apply", "--version", "1"]);
        let (key_id, secret) = make_bucket(&nodes[0]);
        let cluster = Cluster {
            nodes,
            dir,
            bucket: BUCKET.into(),
            key_id,
            secret,
        };
        for i in 0..NODES {
            cluster.wait_serving(i);
        }
        cluster.probe_writes();
        cluster
    }

    /// Node `node`'s S3 API URL.
    pub fn endpoint(&self, node: usize) -> String {
        self.nodes[node].endpoint()
    }

    /// `s3://coffre-test/PREFIX?endpoint=NODE'S ENDPOINT&region=garage`.
    pub fn url(&self, node: usize, prefix: &str) -> String {
        url(&self.bucket, &self.endpoint(node), prefix)
    }

    /// Pack storage in the cluster's bucket under `prefix`, reached through
    /// node `node`'s S3 endpoint (every node serves the whole bucket).
    pub fn storage(&self, node: usize, prefix: &str) -> PackStorage {
        PackStorage::S3(
            S3Config::parse(&self.url(node, prefix), &self.key_id, &self.secret).unwrap(),
        )
    }

    /// Kills node `node` (SIGKILL: a crash, or a machine gone from the
    /// network, as the other two see it). Its folders stay.
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].kill();
    }

    /// Starts node `node` again on its folders and ports (killing it first
    /// if it runs); returns when it serves the bucket again, which needs
    /// it to be back in touch with the others (a read needs 2 of 3).
    pub fn restart(&mut self, node: usize) {
        self.nodes[node].kill();
        self.nodes[node].spawn();
        self.wait_serving(node);
    }

    /// Whether node `node` runs.
    pub fn is_running(&self, node: usize) -> bool {
        self.nodes[node].is_running()
    }

    /// Runs `garage ARGS...` against node `node` (retrying while it
    /// starts); its standard output.
    pub fn cli(&self, node: usize, args: &[&str]) -> String {
        self.nodes[node].cli(args)
    }

    /// The bytes of the blocks node `node` holds (its data folder). Every
    /// node holds every block (replication 3), so a node that was down
    /// while objects were written holds fewer. It catches up by Garage's
    /// anti-entropy: the others push their tables to it every 10 minutes,
    /// and it fetches a block it learns of after twice the RPC timeout
    /// (10 minutes); no test waits for that.
    pub fn stored_bytes(&self, node: usize) -> u64 {
        self.nodes[node].data_bytes()
    }

    /// The end of node `node`'s log, for a failing test's message.
    pub fn log_tail(&self, node: usize) -> String {
        self.nodes[node].log_tail()
    }

    /// Waits until node `node` lists the bucket through its own endpoint.
    fn wait_serving(&self, node: usize) {
        wait_bucket(&self.nodes[node], &self.storage(node, ""));
    }

    /// An object written through each node reads back through the next:
    /// the layout is live on all three for writes, not only for listings.
    /// Retried for a while (a node may take a moment to adopt the layout),
    /// then a failure with the logs.
    fn probe_writes(&self) {
        let local = self.dir.path().join("probe");
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..NODES {
            let name = format!("probe-{i}");
            let bytes = format!("written through node {i}").into_bytes();
            let writer = RawPacks::open(&local, &self.storage(i, "probe")).unwrap();
            let reader = RawPacks::open(&local, &self.storage((i + 1) % NODES, "probe")).unwrap();
            loop {
                let round = writer
                    .write(0, &name, &bytes)
                    .and_then(|()| reader.read(0, &name));
                match round {
                    Ok(Some(read)) if read == bytes => break,
                    other => assert!(
                        Instant::now() < deadline,
                        "an object written through node {i} does not read back through node {}: \
                         {other:?}\n{}\n{}",
                        (i + 1) % NODES,
                        self.log_tail(i),
                        self.log_tail((i + 1) % NODES)
                    ),
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            writer.remove(0, &name).unwrap();
        }
    }
}
