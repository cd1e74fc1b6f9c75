//! The README's command blocks, run as written and in order against a fresh Berth, so that what
//! the README tells a user to type works on a fresh machine.
//!
//! Every code block of README.md (indented or fenced, also inside list items: found as CommonMark
//! finds them) must be preceded by a marker line saying what it is, or this test fails listing
//! the line of every unmarked block:
//! - `<!-- readme: run -->`: runs here, offline, in order. Run.
//! - `<!-- readme: forever -->`: never exits. Those that start Berth (`cargo run --release --
//!   serve`, with or without environment assignments in front) are run: a stand-in `cargo`
//!   (re)starts this build of Berth in the background with that environment, as the user's
//!   shell would start the release build; any other is listed and not run.
//! - `<!-- readme: internet -->`: needs the internet. Listed and not run, except those with an
//!   offline stand-in doing the same ([`STAND_INS`]: `docker pull busybox` loads the e2e test
//!   image into docker as `busybox`).
//! - `<!-- readme: config -->`: a configuration file or snippet. Listed, never run.
//!
//! The blocks run in ONE bash process (`set -euo pipefail`), so variables carry from block to
//! block, from a fresh temp directory (where `berth-data/` appears, with the repository's
//! `policies/` linked in, as in a checkout), with `HOME` empty, and with the real clients on
//! `PATH`: docker against a private dockerd, podman with private storage, skopeo, curl, jq, the
//! AWS CLI (v1, from the test venv). `curl` gets `--fail-with-body` (and `-sS`), so an HTTP error
//! fails the block instead of printing an error body nobody reads. The pull-through example's
//! `UPSTREAM` points at a local `docker-registry` (CNCF Distribution) holding
//! `library/alpine:3.20`, in place of Docker Hub.
//!
//! Berth listens on the README's address, `localhost:5000` (all interfaces, port 5000, its
//! default), so the blocks read as a user types them; the test fails at once, saying so, when
//! something else holds port 5000.
//!
//! The README describes the embedded default (SQLite and files), so the blocks run only on the
//! `sqlite-fs` stack; with `BERTH_TEST_STACK=pg-s3` the run is skipped with a message (it would
//! repeat the same run). The marker check runs on both.

use crate::support::{common, e2e};

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

use e2e::daemons::{start_reference_registry, Daemon, Dockerd, Podman};

/// What a marker says a code block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Run,
    Internet,
    Forever,
    Config,
}

impl Kind {
    fn parse(word: &str) -> Option<Kind> {
        match word {
            "run" => Some(Kind::Run),
            "internet" => Some(Kind::Internet),
            "forever" => Some(Kind::Forever),
            "config" => Some(Kind::Config),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Internet => "internet",
            Kind::Forever => "forever",
            Kind::Config => "config",
        }
    }
}

/// A code block of a Markdown file with its marker.
#[derive(Debug)]
struct Block {
    /// 1-based line of the block's first line (its fence, for a fenced block).
    line: usize,
    kind: Kind,
    /// The block's content, without the fence or the indentation.
    text: String,
}

/// Internet blocks with an offline stand-in: (the block's text, the commands run in its place;
/// `{layout}` is the e2e test image's OCI layout). `docker pull busybox` becomes the e2e test
/// image (busybox-static) loaded into the private dockerd as `busybox:latest`.
const STAND_INS: &[(&str, &str)] = &[(
    "docker pull busybox",
    "skopeo copy --quiet --dest-daemon-host \"$DOCKER_HOST\" oci:{layout}:latest docker-daemon:busybox:latest",
)];

/// What starts Berth in the README; forever blocks containing it are run with the stand-in.
const SERVE: &str = "cargo run --release -- serve";

/// The address the README's examples use.
const README_PORT: u16 = 5000;

/// 1-based line number of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The code blocks of `markdown` with their markers, or one message per problem: a block
/// without a marker (on the nearest non-blank line before it), an unknown or malformed marker,
/// a marker that no block follows.
fn marked_blocks(markdown: &str) -> Result<Vec<Block>, Vec<String>> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut problems = Vec::new();
    // Marker lines, found as HTML blocks (so a marker shown inside a code block is no marker).
    let mut markers: Vec<(usize, Kind)> = Vec::new();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (event, range) in Parser::new(markdown).into_offset_iter() {
        match event {
            Event::Html(html) if html.trim_start().starts_with("<!-- readme") => {
                let line = line_of(markdown, range.start);
                let kind = html
                    .trim()
                    .strip_prefix("<!-- readme: ")
                    .and_then(|rest| rest.strip_suffix(" -->"))
                    .and_then(Kind::parse);
                match kind {
                    Some(kind) => markers.push((line, kind)),
                    None => problems.push(format!(
                        "line {line}: malformed marker {:?}: expected <!-- readme: KIND --> \
                         with KIND one of run, internet, forever, config",
                        html.trim()
                    )),
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                current = Some((line_of(markdown, range.start), String::new()));
            }
            Event::Text(text) => {
                if let Some((_, body)) = current.as_mut() {
                    body.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                let (line, text) = current.take().expect("code block end after its start");
                // The nearest non-blank line above the block must be its marker.
                let above = (1..line).rev().find(|&l| !lines[l - 1].trim().is_empty());
                match above.and_then(|l| markers.iter().find(|(m, _)| *m == l)) {
                    Some(&(_, kind)) => blocks.push(Block { line, kind, text }),
                    None => problems.push(format!(
                        "line {line}: code block without a marker (put <!-- readme: run -->, \
                         internet, forever or config on the line before it): {:?}",
                        text.lines().next().unwrap_or("")
                    )),
                }
            }
            _ => {}
        }
    }
    for (line, _) in &markers {
        let below = (*line + 1..=lines.len()).find(|&l| !lines[l - 1].trim().is_empty());
        if !blocks.iter().any(|b| Some(b.line) == below) {
            problems.push(format!("line {line}: marker not followed by a code block"));
        }
    }
    if problems.is_empty() {
        Ok(blocks)
    } else {
        Err(problems)
    }
}

fn readme_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn readme_blocks() -> Vec<Block> {
    marked_blocks(&readme_text()).unwrap_or_else(|problems| {
        panic!(
            "README.md: every code block needs a marker on the line before it \
             (see tests/it/readme.rs):\n{}",
            problems.join("\n")
        )
    })
}

#[test]
fn every_readme_code_block_is_marked() {
    let blocks = readme_blocks();
    // The README starts with exactly two commands for a fresh machine: start Berth, run the tests.
    let first: Vec<&str> = blocks.iter().take(2).map(|b| b.text.trim()).collect();
    assert_eq!(
        first,
        [SERVE, "bash tests/run.sh"],
        "the README's first two commands"
    );
    assert!(
        blocks.iter().filter(|b| b.kind == Kind::Run).count() >= 5,
        "README.md has hardly any runnable block left: {blocks:#?}"
    );
}

/// The checker itself: an unmarked block (indented, fenced, or indented inside a list item) is
/// reported with its line; an indented paragraph continuing a list item is no code block;
/// unknown markers and markers above no block are reported.
#[test]
fn the_marker_check_reports_what_it_must() {
    // Line 1 is the empty line after the opening quote.
    let ok = r#"
<!-- readme: run -->
    echo a

<!-- readme: config -->
```toml
k = 1
```

- item
    continued, indented four
    under the item: a paragraph, no code

  <!-- readme: internet -->
      docker pull x
"#;
    let blocks = marked_blocks(ok).expect("all marked");
    let found: Vec<(usize, Kind, &str)> = blocks
        .iter()
        .map(|b| (b.line, b.kind, b.text.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (3, Kind::Run, "echo a\n"),
            (6, Kind::Config, "k = 1\n"),
            (15, Kind::Internet, "docker pull x\n")
        ]
    );

    let bad = r#"
    echo unmarked

text
```sh
echo fenced
```

- item

      nested

<!-- readme: runs -->
    echo typo

<!-- readme: run -->

A paragraph.
"#;
    let problems = marked_blocks(bad).expect_err("problems found");
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(has("line 2: code block without a marker"), "{problems:#?}");
    assert!(has("line 5: code block without a marker"), "{problems:#?}");
    assert!(has("line 11: code block without a marker"), "{problems:#?}");
    assert!(has("line 13: malformed marker"), "{problems:#?}");
    assert!(has("line 14: code block without a marker"), "{problems:#?}");
    assert!(
        has("line 16: marker not followed by a code block"),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 6, "{problems:#?}");
}

/// A Berth started by the README's serve blocks (through the `cargo` stand-in), stopped when the
/// test ends however it ends.
struct BackgroundBerth {
    pidfile: PathBuf,
    log: PathBuf,
}

impl BackgroundBerth {
    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Whether process `pid` still runs: it exists and is not a zombie. The Berth the stand-in
/// starts outlives the script that started it, so it is nobody's child here; once killed it may
/// stay a zombie until whoever adopted it reaps it.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

impl Drop for BackgroundBerth {
    fn drop(&mut self) {
        let Some(pid) = std::fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            return;
        };
        if !running(pid) {
            return;
        }
        // SIGTERM (graceful), then SIGKILL if it is still there after the grace.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if running(pid) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Single-quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `cargo` on the blocks' PATH: `cargo run --release -- serve` (re)starts `berth serve` of
/// this build in the background, in the current directory and with the caller's environment,
/// and returns once it answers `/healthz`; anything else is refused.
fn cargo_stand_in(berth: &Path, pidfile: &Path, log: &Path) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Stand-in for `{SERVE}` (tests/it/readme.rs): this build of Berth, in the background.
set -euo pipefail
if [ "$*" != "run --release -- serve" ]; then
  echo "readme test: the cargo stand-in only runs '{SERVE}', not 'cargo $*'" >&2
  exit 2
fi
# Running: the process exists and is no zombie (a stopped Berth is nobody's child here, so it
# may stay a zombie until whoever adopted it reaps it).
running() {{ [ -r "/proc/$1/stat" ] && ! grep -q ') [ZX] ' "/proc/$1/stat" 2>/dev/null; }}
pidfile={pidfile}
if [ -s "$pidfile" ]; then
  old=$(cat "$pidfile")
  kill -TERM "$old" 2>/dev/null || true
  for _ in $(seq 300); do running "$old" || break; sleep 0.1; done
  if running "$old"; then echo "readme test: berth $old did not stop" >&2; exit 1; fi
fi
{berth} serve >>{log} 2>&1 </dev/null &
echo $! >"$pidfile"
for _ in $(seq 600); do
  if [ "$(command curl -s http://127.0.0.1:{README_PORT}/healthz)" = ok ]; then exit 0; fi
  if ! running "$!"; then
    echo "readme test: berth exited; its log:" >&2; tail -n 40 {log} >&2; exit 1
  fi
  sleep 0.1
done
echo "readme test: berth did not answer /healthz in 60 s" >&2
exit 1
"#,
        pidfile = sh_quote(&pidfile.to_string_lossy()),
        berth = sh_quote(&berth.to_string_lossy()),
        log = sh_quote(&log.to_string_lossy()),
    )
}

/// A script that runs `program` with `args` first and `env` set: a client configured the way the
/// e2e helpers configure it, under its own name on PATH.
fn wrapper(command: &Command) -> String {
    let mut script = String::from("#!/bin/sh\n");
    for (k, v) in command.get_envs() {
        if let Some(v) = v {
            script += &format!(
                "export {}={}\n",
                k.to_string_lossy(),
                sh_quote(&v.to_string_lossy())
            );
        }
    }
    script += &format!(
        "exec {}",
        sh_quote(&command.get_program().to_string_lossy())
    );
    for a in command.get_args() {
        script += &format!(" {}", sh_quote(&a.to_string_lossy()));
    }
    script += " \"$@\"\n";
    script
}

fn write_executable(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The bash script: the blocks to run, each announced with its line and echoed before it runs.
fn script(blocks: &[Block], layout: &Path) -> (String, Vec<String>) {
    let mut script = String::from(
        "set -euo pipefail\n\
         # An HTTP error answer fails the block (the README's curl lines would print the error\n\
         # body and succeed); no progress meter in the transcript.\n\
         curl() { command curl -sS --fail-with-body \"$@\"; }\n",
    );
    let mut not_run = Vec::new();
    for b in blocks {
        let stand_in = STAND_INS
            .iter()
            .find(|(text, _)| b.kind == Kind::Internet && b.text.trim() == *text)
            .map(|(_, s)| s.replace("{layout}", &layout.to_string_lossy()));
        let body = match b.kind {
            Kind::Run => b.text.clone(),
            Kind::Forever if b.text.contains(SERVE) => b.text.clone(),
            Kind::Internet if stand_in.is_some() => stand_in.clone().unwrap(),
            _ => {
                not_run.push(format!(
                    "README.md:{} ({}): {}",
                    b.line,
                    b.kind.name(),
                    b.text.lines().next().unwrap_or("")
                ));
                continue;
            }
        };
        let what = if stand_in.is_some() {
            format!("{}, offline stand-in: {}", b.kind.name(), body.trim())
        } else {
            b.kind.name().to_string()
        };
        script += &format!(
            "\necho; echo '### README.md:{} ({what})'\ncat <<'README_BLOCK_END'\n{}README_BLOCK_END\n{}\n",
            b.line,
            b.text.lines().map(|l| format!("$ {l}\n")).collect::<String>(),
            body
        );
    }
    script += "\necho; echo '### README: every block ran'\n";
    (script, not_run)
}

/// Fails at once, naming the port, when something already listens on the README's port.
fn assert_readme_port_free() {
    if let Err(e) = std::net::TcpListener::bind(("0.0.0.0", README_PORT)) {
        panic!(
            "port {README_PORT} is taken ({e}): the README's examples talk to localhost:{README_PORT}, \
             so this test runs Berth there; stop what listens on it (`ss -ltnp 'sport = :{README_PORT}'`)"
        );
    }
}

#[test]
fn readme_blocks_run_in_order() {
    let blocks = readme_blocks();
    if common::stack() == "pg-s3" {
        // Written to stderr directly, past the test harness's capture, so the skip shows.
        let _ = writeln!(
            std::io::stderr(),
            "readme_blocks_run_in_order: skipped on BERTH_TEST_STACK=pg-s3: the README runs \
             Berth's embedded default (SQLite and files), which the sqlite-fs run covers"
        );
        return;
    }
    assert_readme_port_free();
    let venv = common::venv();
    let aws = venv.join("bin/aws");
    assert!(
        aws.is_file(),
        "{} is missing: {}",
        aws.display(),
        e2e::INSTALL_HINT
    );
    for client in ["jq", "curl", "bash", "skopeo", "docker"] {
        e2e::client(client);
    }

    // The clients and the stand-ins for Docker Hub.
    let image = e2e::image::test_image();
    let dockerd = Dockerd::start(&[]);
    let podman = Podman::new();
    let (upstream, upstream_addr, _upstream_dir) =
        start_reference_registry(&e2e::reference_bin(), None);
    let mut copy = e2e::skopeo();
    copy.args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!(
            "oci:{}:{}",
            image.layout.display(),
            e2e::image::TAG
        ))
        .arg(format!("docker://{upstream_addr}/library/alpine:3.20"));
    e2e::run_ok(copy);

    // A fresh directory as the user's checkout: the README's relative paths (policies/...) work
    // and berth-data/ appears here.
    let tmp = e2e::short_tempdir("berth-readme");
    let work = tmp.path().join("work");
    let home = tmp.path().join("home");
    let bin = tmp.path().join("bin");
    for d in [&work, &home, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        work.join("policies"),
    )
    .unwrap();
    let berth = BackgroundBerth {
        pidfile: tmp.path().join("berth.pid"),
        log: tmp.path().join("berth.log"),
    };
    write_executable(
        &bin.join("cargo"),
        &cargo_stand_in(Path::new(common::berth_bin()), &berth.pidfile, &berth.log),
    );
    write_executable(&bin.join("podman"), &wrapper(&podman.podman()));
    let docker = dockerd.docker();
    std::os::unix::fs::symlink(docker.get_program(), bin.join("docker")).unwrap();

    let (script_text, not_run) = script(&blocks, &image.layout);
    let script_path = tmp.path().join("readme.sh");
    std::fs::write(&script_path, &script_text).unwrap();
    eprintln!(
        "README blocks not run (marked as needing the internet, never ending, or configuration):\n  {}",
        not_run.join("\n  ")
    );

    // A fresh shell: no inherited Berth, AWS or docker settings.
    let transcript = tmp.path().join("transcript.txt");
    let out = std::fs::File::create(&transcript).unwrap();
    let mut bash = Command::new("bash");
    bash.arg(&script_path)
        .current_dir(&work)
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                bin.display(),
                venv.join("bin").display()
            ),
        )
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("UPSTREAM", format!("http://{upstream_addr}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    for (k, v) in docker.get_envs() {
        if let Some(v) = v {
            bash.env(k, v);
        }
    }
    let started = Instant::now();
    let mut child = bash.spawn().expect("spawn bash");
    let deadline = started + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            // The whole group: bash and whatever client it waits for.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let transcript = std::fs::read_to_string(&transcript).unwrap_or_default();
    let verdict = match status {
        Some(s) if s.success() => None,
        Some(s) => Some(format!("the README's blocks failed ({s})")),
        None => Some("the README's blocks did not finish in 300 s".into()),
    };
    if let Some(verdict) = verdict {
        panic!(
            "{verdict}; the failing block is the last one announced:\n{transcript}\n\
             --- berth log (tail) ---\n{}\n--- upstream log (tail) ---\n{}",
            berth.log_tail(60),
            tail(&upstream, 20),
        );
    }
    eprintln!("{transcript}");
    eprintln!("README blocks ran in {:?}", started.elapsed());
    assert!(
        transcript.contains("### README: every block ran"),
        "{transcript}"
    );
}

fn tail(daemon: &Daemon, lines: usize) -> String {
    let log = daemon.log();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
