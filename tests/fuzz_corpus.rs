//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' entry
//! points, so CI checks on stable Rust what the fuzzer found, without running the fuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panicked on {}", target, path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "no corpus for {target}");
}

#[test]
fn the_token_parser_survives_its_corpus() {
    replay("token_parser", lodge::fuzzing::token_parser);
}

#[test]
fn the_request_body_parser_survives_its_corpus() {
    replay("request_body", lodge::fuzzing::request_body);
}

#[test]
fn credentials_handling_survives_its_corpus() {
    replay("credentials", lodge::fuzzing::credentials);
}
