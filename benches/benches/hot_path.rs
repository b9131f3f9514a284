//! Criterion benchmarks of the hot path: the same functions `coffre benchmark`
//! runs (`coffre_core::benchmark`), plus the references the targets are set
//! against: the `fastcdc` crate's v2020 chunker feeding keyed BLAKE3.
//!
//! Run: `cargo bench -p coffre-benches` (about 3 minutes on 2 cores), or one
//! group: `cargo bench -p coffre-benches -- chunk+id`.

use std::hint::black_box;
use std::time::Duration;

use coffre_core::benchmark as bench;
use coffre_core::chunker::{AVG_SIZE, MAX_SIZE, MIN_SIZE};
use coffre_core::{Keys, MasterKey, Sealer};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// jemalloc: the hot path hands megabyte buffers from thread to thread and
/// the network tasks free what blocking threads allocated. glibc turned that
/// into page faults (the backup ran 4× slower); mimalloc kept freed blocks in
/// per-thread caches (1.2 GB peak for a restore). jemalloc's arenas did
/// neither (docs/performance.md, "Allocator").
#[cfg(not(windows))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SIZE: usize = 64 << 20;

fn keys() -> Keys {
    Keys::derive(&MasterKey::from_bytes([42; 32]))
}

fn chunking(c: &mut Criterion) {
    let k = keys();
    let data = bench::random_bytes(SIZE, 1);
    let id_key = [7u8; 32];
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    g.bench_function("coffre (keyed gear)", |b| {
        b.iter(|| bench::chunk(&k, black_box(&data)))
    });
    g.bench_function("fastcdc crate v2020", |b| {
        b.iter(|| {
            fastcdc::v2020::FastCDC::new(black_box(&data), MIN_SIZE, AVG_SIZE, MAX_SIZE).count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("chunk+id");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    g.bench_function("coffre streaming", |b| {
        b.iter(|| bench::chunk_and_id(&k, black_box(&data)))
    });
    g.bench_function("coffre in memory", |b| {
        b.iter(|| bench::chunk_and_id_in_memory(&k, black_box(&data)))
    });
    g.bench_function("fastcdc crate v2020 + keyed blake3", |b| {
        b.iter(|| {
            fastcdc::v2020::FastCDC::new(black_box(&data), MIN_SIZE, AVG_SIZE, MAX_SIZE)
                .map(|c| {
                    black_box(blake3::keyed_hash(
                        &id_key,
                        &data[c.offset..c.offset + c.length],
                    ))
                })
                .fold(0usize, |n, _| n + 1)
        })
    });
    g.bench_function("fastcdc crate StreamCDC + keyed blake3", |b| {
        b.iter(|| {
            fastcdc::v2020::StreamCDC::new(black_box(&data[..]), MIN_SIZE, AVG_SIZE, MAX_SIZE)
                .map(|c| black_box(blake3::keyed_hash(&id_key, &c.unwrap().data)))
                .fold(0usize, |n, _| n + 1)
        })
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    let k = keys();
    let n = 16 << 20;
    let text = bench::text_bytes(n, 1);
    let random = bench::random_bytes(n, 2);
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Bytes(n as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    g.bench_function("id", |b| b.iter(|| bench::id(&k, black_box(&random))));
    let mut sealer = Sealer::new(3);
    g.bench_function("compress text", |b| {
        b.iter(|| bench::compress(&mut sealer, black_box(&text)))
    });
    g.bench_function("compress random", |b| {
        b.iter(|| bench::compress(&mut sealer, black_box(&random)))
    });
    let mut buf = random.clone();
    g.bench_function("encrypt", |b| {
        b.iter(|| bench::encrypt(&k, black_box(&mut buf)))
    });
    g.bench_function("seal text", |b| {
        b.iter(|| bench::seal(&k, &mut sealer, black_box(&text)))
    });
    g.bench_function("seal random", |b| {
        b.iter(|| bench::seal(&k, &mut sealer, black_box(&random)))
    });
    g.finish();
}

fn whole_path(c: &mut Criterion) {
    let k = keys();
    let n = 32 << 20;
    let mut mixed = bench::text_bytes(n / 2, 3);
    mixed.extend(bench::random_bytes(n / 2, 4));
    let files: Vec<&[u8]> = mixed.chunks(n / 8).collect();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut g = c.benchmark_group("whole path");
    g.throughput(Throughput::Bytes(n as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for threads in [1, cores] {
        g.bench_with_input(
            BenchmarkId::new("half text, half random", threads),
            &threads,
            |b, &t| b.iter(|| bench::whole_path(&k, t, black_box(&files), 1)),
        );
    }
    g.finish();
}

criterion_group!(benches, chunking, stages, whole_path);
criterion_main!(benches);
