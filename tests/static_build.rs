//! The shipped binary: `e2e/static-build.sh` (the script the Dockerfile runs) builds a release
//! binary that is statically linked, so it runs on a distroless `static` image with no libc,
//! and it works there: `--version` and `crd` run with an empty environment.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: i64 = 0;
const DT_NEEDED: i64 = 1;

/// What the ELF program headers say about linking: whether the binary names an interpreter
/// (the dynamic loader), and the shared libraries it needs.
#[derive(Debug)]
struct Linking {
    interpreter: Option<String>,
    needed: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads a little-endian ELF64 executable's program headers (all this test needs; `file` and
/// `ldd` are not on every machine, and `ldd` answers differently for static-pie).
fn linking(elf: &[u8]) -> Linking {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "not a little-endian ELF64 file");
    let phoff = u64_at(elf, 0x20) as usize;
    let (phentsize, phnum) = (u16_at(elf, 0x36) as usize, u16_at(elf, 0x38) as usize);
    let mut out = Linking { interpreter: None, needed: 0 };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (kind, offset, size) = (u32_at(elf, ph), u64_at(elf, ph + 8) as usize, u64_at(elf, ph + 32) as usize);
        match kind {
            PT_INTERP => {
                out.interpreter =
                    Some(String::from_utf8_lossy(&elf[offset..offset + size]).trim_end_matches('\0').into())
            }
            // A static-pie binary keeps a dynamic section to relocate itself, but needs nothing.
            PT_DYNAMIC => {
                for entry in elf[offset..offset + size].chunks_exact(16) {
                    let tag = u64_at(entry, 0) as i64;
                    if tag == DT_NULL {
                        break;
                    }
                    if tag == DT_NEEDED {
                        out.needed += 1;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn build() -> PathBuf {
    let script = support::repo_root().join("e2e/static-build.sh");
    let started = Instant::now();
    let out = Command::new(&script).output().unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed ({}):\n{stderr}", script.display(), out.status);
    // The linker's warnings (glibc's about getaddrinfo and friends in static binaries) are
    // worth seeing in the test output.
    for line in stderr.lines().filter(|l| l.contains("warning")) {
        eprintln!("static build: {line}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last().expect("the script prints the binary's path").trim());
    println!("static build: {:.0?} ({})", started.elapsed(), path.display());
    path
}

fn run(bin: &Path, args: &[&str]) -> String {
    // No environment at all, as in a bare container: nothing may depend on it.
    let out = Command::new(bin).args(args).env_clear().current_dir("/").output().expect("run the static binary");
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
#[ignore = "a release build (minutes on two cores): run `make test`"]
fn the_release_binary_is_static_and_runs_without_an_environment() {
    let bin = build();
    let bytes = std::fs::read(&bin).unwrap_or_else(|e| panic!("reading {}: {e}", bin.display()));
    let linking = linking(&bytes);
    assert_eq!(linking.interpreter, None, "{} is dynamically linked: {linking:?}", bin.display());
    assert_eq!(linking.needed, 0, "{} needs shared libraries: {linking:?}", bin.display());

    let version = run(&bin, &["--version"]);
    assert_eq!(version.trim(), format!("mongo-operator {}", env!("CARGO_PKG_VERSION")));
    let crds = run(&bin, &["crd"]);
    assert_eq!(crds, mongo_operator::api::crds_yaml().expect("CRDs serialise"), "`crd` prints other CRDs");

    println!("static binary: {:.1} MiB ({} bytes)", bytes.len() as f64 / (1024.0 * 1024.0), bytes.len());

    in_an_empty_root(&bin);
}

/// Runs the binary in a root holding nothing but itself and the few files every container
/// has, as on `distroless/static` (no libc, no NSS modules): it starts, prints its CRDs, and
/// resolves a host name through /etc/hosts. Needs root for chroot and mknod; skipped without.
fn in_an_empty_root(bin: &Path) {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.ok().as_deref() != Some("0") {
        println!("skipped the empty-root check: it needs root (chroot, mknod)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("static-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["etc", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).expect("root dirs");
    }
    std::fs::copy(bin, root.join("mongo-operator")).expect("copy the binary");
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost static-build-test-host\n").expect("hosts");
    std::fs::write(root.join("etc/nsswitch.conf"), "hosts: files dns\n").expect("nsswitch.conf");
    // A container runtime always provides these; getrandom reads /dev/urandom in a static binary.
    for (dev, minor) in [("null", "3"), ("random", "8"), ("urandom", "9")] {
        let status = Command::new("mknod")
            .args(["-m", "666"])
            .arg(root.join("dev").join(dev))
            .args(["c", "1", minor])
            .status()
            .expect("mknod");
        assert!(status.success(), "mknod /dev/{dev}");
    }
    // By path: the environment is cleared, PATH with it.
    let Some(chroot_bin) =
        ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"].into_iter().find(|p| Path::new(p).exists())
    else {
        println!("skipped the empty-root check: no chroot");
        return;
    };
    let chroot = |args: &[&str]| {
        Command::new(chroot_bin).arg(&root).arg("/mongo-operator").args(args).env_clear().output().expect("chroot")
    };
    let out = chroot(&["crd"]);
    assert!(out.status.success(), "crd in an empty root: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), mongo_operator::api::crds_yaml().expect("CRDs"));
    // Nothing listens on port 1: "connection refused" shows the name was resolved (glibc's
    // built-in `files` NSS module, no libnss_files.so), where an unknown name fails the lookup.
    let out = chroot(&["probe", "liveness", "--address", "static-build-test-host:1", "--timeout-ms", "3000"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("Connection refused"), "the name did not resolve in an empty root: {said}");
    let out = chroot(&["probe", "liveness", "--address", "no-such-host.invalid:1", "--timeout-ms", "3000"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("lookup"), "an unknown name should fail its lookup: {said}");
    let _ = std::fs::remove_dir_all(&root);
    println!("static binary runs in an empty root: crd, /etc/hosts resolution");
}

/// The same checks hold for a binary this test knows to be dynamic, so they can fail.
#[test]
fn the_elf_check_sees_a_dynamic_binary() {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_mongo-operator")).expect("the debug binary");
    let linking = linking(&bytes);
    assert!(linking.interpreter.is_some() && linking.needed > 0, "{linking:?}");
}
