//! The fuzz targets without libFuzzer, on stable Rust: replays every input
//! of the given corpus directories through a target, then feeds it inputs
//! mutated from that corpus (bit flips, byte and token insertions, cuts,
//! repeats, splices) until the time is up. No coverage guidance: this is
//! the fallback of `fuzz/run` when no nightly toolchain is installed, and
//! a quick way to replay a corpus or a crash file.
//!
//! Usage: `replay <target> [--seconds N] [--seed N] <corpus dir or file>...`
//! Exits 1 on the first input that panics, saved under
//! `artifacts/<target>/crash-<hash>` and printed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use std::{env, fs};

/// Tokens of the three input languages, inserted by the mutator.
const TOKENS: &[&str] = &[
    "...F0 ",
    "fragment F0 on Query { ",
    "__schema { types { ",
    "__type(name: \"User\") { ofType { ",
    " } ",
    "a: __typename ",
    "tagged(",
    "tagged_any(",
    "tagged_all(",
    "\"",
    "\\",
    ")",
    "(",
    ",",
    " and ",
    " or ",
    "not ",
    " = ",
    " != ",
    " < ",
    " >= ",
    " is null",
    " is not null",
    " contains ",
    " starts_with ",
    "attr.",
    "attr.\"",
    "account.",
    "any_user(",
    "in_segment(\"",
    "events(\"login\", ",
    "active_days(",
    "now",
    " - ",
    " + ",
    "30d",
    "36500d",
    "99999999999d",
    "1e308",
    "-0",
    "email",
    "created_at",
    "last_seen_at",
    "name",
    "/",
    "/*",
    ": ",
    ": *",
    "*",
    ";",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\u{feff}",
    "\u{0}",
    "\u{7f}",
    "é",
    "É",
    "ß",
    "İ",
    "\u{10ffff}",
    "email,first_name,tags\n",
    "external_id;name;Plan\n",
    "\"a,b\"",
    "\"\"",
    "a@b.co",
    "VIP",
    "Region: EMEA",
    "a/b/c",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, rng.next() as u8),
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                input.splice(at..at, token.iter().copied());
            }
            3 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            4 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(32)).min(input.len());
                let piece = input[start..end].repeat(1 + rng.below(8));
                input.splice(at..at, piece);
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let start = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[start..]);
            }
            _ => {
                let ascii = b" !\"#()*,-./0123456789:;<=>@AZ[\\]_az{}~"[rng.below(37)];
                input.insert(at, ascii);
            }
        }
    }
    input.truncate(4096);
    input
}

fn read_inputs(paths: &[PathBuf]) -> std::io::Result<Vec<Vec<u8>>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(path)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            for entry in entries.into_iter().filter(|e| e.is_file()) {
                inputs.push(fs::read(entry)?);
            }
        } else if path.is_file() {
            inputs.push(fs::read(path)?);
        }
    }
    Ok(inputs)
}

/// Runs one input; on a panic, saves it and returns the file it went to.
fn run_one(name: &str, target: fn(&[u8]), input: &[u8]) -> Result<(), PathBuf> {
    if panic::catch_unwind(AssertUnwindSafe(|| target(input))).is_ok() {
        return Ok(());
    }
    let mut hasher = DefaultHasher::new();
    input.hash(&mut hasher);
    let dir = Path::new("artifacts").join(name);
    let file = dir.join(format!("crash-{:016x}", hasher.finish()));
    let _ = fs::create_dir_all(&dir).and_then(|()| fs::write(&file, input));
    Err(file)
}

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: replay <target> [--seconds N] [--seed N] <corpus>...");
        return ExitCode::from(2);
    };
    let Some(&(_, target)) = tagsmith_fuzz::TARGETS.iter().find(|(n, _)| *n == name) else {
        eprintln!("unknown target {name:?}");
        return ExitCode::from(2);
    };
    let (mut seconds, mut seed, mut paths) = (0u64, 0x5eed_u64, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(seed),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let corpus = match read_inputs(&paths) {
        Ok(corpus) => corpus,
        Err(error) => {
            eprintln!("cannot read the corpus: {error}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    for input in &corpus {
        if let Err(file) = run_one(&name, target, input) {
            eprintln!("{name}: corpus input panics; saved to {}", file.display());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{name}: replayed {} corpus inputs in {:?}",
        corpus.len(),
        started.elapsed()
    );
    let corpus = if corpus.is_empty() {
        vec![Vec::new()]
    } else {
        corpus
    };
    let mut rng = Rng(seed | 1);
    let (deadline, mut runs) = (Instant::now() + Duration::from_secs(seconds), 0u64);
    while Instant::now() < deadline {
        for _ in 0..64 {
            let input = mutate(&mut rng, &corpus);
            runs += 1;
            if let Err(file) = run_one(&name, target, &input) {
                eprintln!(
                    "{name}: mutated input #{runs} panics; saved to {}",
                    file.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{name}: {runs} mutated inputs in {seconds} s (seed {seed}), no panic");
    ExitCode::SUCCESS
}
