#!/usr/bin/env bash
# Run every fuzz target in fuzz/ for SECONDS each (default 60), one after another, at low
# priority. Installs cargo-fuzz if it is missing. Uses the nightly toolchain when rustup has
# one; otherwise builds with the stable one and RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly
# compiler flags such as -Zsanitizer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_PREBUILT=1 scripts/fuzz.sh [SECONDS] [TARGET...]   # run what was built last time
#   FUZZ_PROFILE=dev scripts/fuzz.sh [SECONDS] [TARGET...]  # unoptimized build
#   FUZZ_SANITIZER=none ...   # no AddressSanitizer (CI's pass: FUZZ_PROFILE=dev FUZZ_SANITIZER=none)
#
# One build serves every target (they share one package, so its dependencies are compiled
# once); then each target's binary runs directly. FUZZ_PROFILE=dev builds without
# optimizations: a cold build costs far less, each input runs slower, which suits a short
# pass. FUZZ_SANITIZER=none builds without AddressSanitizer (default: address), another
# large part of a cold build; the fuzzed crates deny unsafe code, so what it would check
# there is the dependencies' unsafe code and the bundled SQLite, which the long runs (with
# AddressSanitizer) keep covering.
# docs/fuzzing.md has the figures.
#
# Each target starts from its committed corpus (fuzz/corpus/<target>, replayed by the normal
# tests) and writes new inputs to fuzz/corpus/<target>.new, so a run never dirties the
# committed corpus; crashes land in fuzz/artifacts/<target>/ and fail the script.
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

# The committed fuzz/Cargo.lock must be current (a stale one is refused here).
cargo "${toolchain[@]}" metadata --locked --format-version 1 >/dev/null
# FUZZ_PREBUILT=1 runs the binaries an earlier run of this script built, as they are (no
# rebuild: on a busy machine a rebuild of every target can take longer than the run).
prebuilt="${FUZZ_PREBUILT:-0}"
case "${FUZZ_PROFILE:-release}" in
    release) profile=(--release); dir=release ;;
    # Line tables are enough for file:line in a crash's stack trace and cost less to
    # build than full debug info.
    dev) profile=(--dev); dir=debug; export CARGO_PROFILE_DEV_DEBUG=line-tables-only ;;
    *) echo "error: FUZZ_PROFILE must be release or dev, not '$FUZZ_PROFILE'" >&2; exit 2 ;;
esac
sanitizer="${FUZZ_SANITIZER:-address}"
case "$sanitizer" in
    address | none) ;;
    *) echo "error: FUZZ_SANITIZER must be address or none, not '$sanitizer'" >&2; exit 2 ;;
esac
if [ "$prebuilt" != 1 ]; then
    nice -n 19 cargo "${toolchain[@]}" fuzz build "${profile[@]}" --sanitizer "$sanitizer"
fi
# The bundled SQLite (linked through granary-storage into targets that name granary-virtual)
# has two file-level statics called `aiOff`; AddressSanitizer's ODR check reports that at
# start-up and aborts before any input runs. It is not a bug in what is fuzzed, so that one
# check is off; every memory error check stays on.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
triple="$(rustc -vV | sed -n 's/^host: //p')"
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "corpus/$target.new" "artifacts/$target"
    echo "== $target: ${seconds}s"
    binary="target/$triple/$dir/$target"
    if [ ! -x "$binary" ]; then
        echo "error: $binary was not built (FUZZ_PREBUILT=1 needs an earlier build with the same FUZZ_PROFILE and FUZZ_SANITIZER)" >&2
        exit 2
    fi
    # libFuzzer exits non-zero on a crash, a leak, an out-of-memory or a timeout, which
    # fails the script (set -e); what it found is in artifacts/<target>/.
    nice -n 19 "$binary" -artifact_prefix="artifacts/$target/" "corpus/$target.new" \
        "corpus/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
done
