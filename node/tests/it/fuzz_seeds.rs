//! Seed corpora of the fuzz targets of cairn-node's decoders (`fuzz/corpus/<target>/`): the
//! blob codec's frames as its own encoder writes them, and network specs and configs as the
//! node writes them (`cairn init`'s commented file, and serialised values).
//!
//! `CAIRN_FUZZ_SEEDS=$PWD/fuzz/corpus cargo test -p cairn-node --test it fuzz_seeds` (what
//! `fuzz/seed-corpus` runs) rewrites the `seed-*` files; without the variable the test checks
//! that every seed reads back.

use std::path::Path;

use cairn_node::anchor::{AnchorSpec, BackendKind, CheckpointSpec};
use cairn_node::config::{NetworkSpec, NodeConfig};
use cairn_node::net::{BlobCodec, BlobResponse};
use cairn_protocol::{BlobHash, NodeId};
use futures::io::Cursor;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;
use libp2p_identity::ed25519;

fn keypair(seed: u8) -> ed25519::Keypair {
    let mut secret = [seed; 32];
    ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap())
}

fn node(seed: u8) -> NodeId {
    NodeId::from_keypair(&keypair(seed))
}

async fn blob_frames() -> Vec<Vec<u8>> {
    let protocol = StreamProtocol::new("/cairn/seeds/blob/1");
    let mut codec = BlobCodec {
        max_blob_bytes: 1 << 20,
    };
    let mut frames = Vec::new();
    let mut out = Cursor::new(Vec::new());
    codec
        .write_request(&protocol, &mut out, BlobHash::of(b"module"))
        .await
        .unwrap();
    frames.push(out.into_inner());
    for response in [
        BlobResponse::NotFound,
        BlobResponse::Found(Vec::new()),
        BlobResponse::Found(b"a small blob".to_vec()),
        BlobResponse::Found((0..=255).collect()),
    ] {
        let mut out = Cursor::new(Vec::new());
        codec
            .write_response(&protocol, &mut out, response)
            .await
            .unwrap();
        frames.push(out.into_inner());
    }
    frames
}

fn specs() -> Vec<NetworkSpec> {
    let committee: Vec<NodeId> = (1..=4).map(node).collect();
    vec![
        NetworkSpec::default(),
        cairn_node::testing::spec("fuzz-seeds"),
        NetworkSpec {
            name: "anchored".into(),
            bootstrap: vec![format!(
                "/ip4/10.0.0.1/tcp/4741/p2p/{}",
                libp2p_identity::PeerId::from(libp2p_identity::PublicKey::from(
                    keypair(5).public()
                ))
            )],
            checkpoints: CheckpointSpec::with_committee(&committee, 60_000),
            anchor: AnchorSpec {
                backend: BackendKind::Bitcoind,
                chain: "bitcoin-regtest".into(),
                rpc_url: "http://127.0.0.1:18443".into(),
                ..AnchorSpec::default()
            },
            trust_roots: vec![node(9).to_string()],
            ..NetworkSpec::default()
        },
    ]
}

fn configs() -> Vec<String> {
    let custom = NodeConfig {
        listen: vec![
            "/ip4/0.0.0.0/tcp/4741".into(),
            "/ip4/0.0.0.0/udp/4741/quic-v1".into(),
        ],
        external_addrs: vec!["/ip4/203.0.113.7/tcp/4741".into()],
        capacity: 4,
        ..NodeConfig::default()
    };
    vec![
        NodeConfig::default().commented_toml(),
        toml::to_string(&NodeConfig::default()).unwrap(),
        toml::to_string(&custom).unwrap(),
    ]
}

/// Replaces the `seed-*` files of `dir` with `seeds`.
fn write(dir: &Path, seeds: &[Vec<u8>]) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
}

#[test]
fn fuzz_seeds() {
    let specs = specs();
    for spec in &specs {
        spec.validate().unwrap();
    }
    let specs: Vec<Vec<u8>> = specs
        .iter()
        .map(|s| toml::to_string(s).unwrap().into_bytes())
        .collect();
    let configs: Vec<Vec<u8>> = configs().into_iter().map(String::into_bytes).collect();
    for config in &configs {
        let parsed: NodeConfig = toml::from_str(std::str::from_utf8(config).unwrap()).unwrap();
        parsed.validate().unwrap();
    }
    let all = [
        ("blob_codec", futures::executor::block_on(blob_frames())),
        ("network_spec", specs),
        ("node_config", configs),
    ];
    if let Some(root) = std::env::var_os("CAIRN_FUZZ_SEEDS") {
        for (target, seeds) in &all {
            write(&Path::new(&root).join(target), seeds);
        }
    }
}
