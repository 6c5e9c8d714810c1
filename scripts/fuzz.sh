#!/usr/bin/env bash
# Run every fuzz target in fuzz/ for SECONDS each (default 60), one after another, at low
# priority. Installs cargo-fuzz if it is missing. Uses the nightly toolchain when rustup has
# one; otherwise builds with the stable one and RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly
# compiler flags such as -Zsanitizer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
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
nice -n 19 cargo "${toolchain[@]}" fuzz build --release
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "corpus/$target.new"
    echo "== $target: ${seconds}s"
    nice -n 19 cargo "${toolchain[@]}" fuzz run --release "$target" \
        "corpus/$target.new" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
done
