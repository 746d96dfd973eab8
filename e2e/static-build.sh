#!/usr/bin/env bash
# Builds the release `mongo-operator` binary, statically linked against glibc, and prints its
# path (the only line on stdout; cargo's output goes to stderr).
#
# The one recipe for the shipped binary: the Dockerfile runs this script in its build stage,
# and tests/static_build.rs runs it here, so both build exactly the same way.
#
#   e2e/static-build.sh          # → <target dir>/x86_64-unknown-linux-gnu/release/mongo-operator
#
# `+crt-static` with an explicit `--target` links the binary statically (no ELF interpreter,
# no shared libraries), while build scripts and proc-macros, which cargo builds for the host
# without RUSTFLAGS when a target is given, stay dynamic as they must. The C code among the
# dependencies (ring, zstd-sys) is compiled by the cc crate, which follows crt-static too.
# The musl target would need its own toolchain; glibc's static libraries come with libc6-dev,
# which both rust:*-bookworm and this project's machines have.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET="${MONGO_OPERATOR_TARGET:-x86_64-unknown-linux-gnu}"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
# Symbols are a third of the binary and nothing in the image reads them.
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-symbols}"

cargo build --release --locked --target "$TARGET" --bin mongo-operator >&2

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
echo "$target_dir/$TARGET/release/mongo-operator"
