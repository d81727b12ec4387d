#!/usr/bin/env bash
# Builds the state tree for the browser page: state-tree-wasm for
# wasm32-unknown-unknown (cargo), then its JavaScript glue (wasm-bindgen-cli),
# into datastore-http/static/wasm/, which datastore-http embeds and serves at
# /wasm/. The output is committed; .ci/run rebuilds it and fails when it
# differs from what is committed.
#
# Needs: rustup target add wasm32-unknown-unknown, and wasm-bindgen-cli at
# exactly the version of the wasm-bindgen crate in Cargo.lock
# (cargo install wasm-bindgen-cli --version "$(scripts/build-wasm.sh --bindgen-version)").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "${1:-}" = "--bindgen-version" ]; then
  echo "$version"
  exit 0
fi
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
if [ "$have" != "$version" ]; then
  echo "wasm-bindgen-cli $version is needed (found: ${have:-none});" \
    "cargo install wasm-bindgen-cli --version $version" >&2
  exit 1
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
# Paths of this checkout and of the registry are remapped, so a build in
# another clone or home gives the same bytes.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$root=/datastore --remap-path-prefix=$cargo_home=/cargo"
cargo build -p state-tree-wasm --target wasm32-unknown-unknown --profile wasm --locked
out=datastore-http/static/wasm
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
  "$target_dir/wasm32-unknown-unknown/wasm/state_tree_wasm.wasm"
ls -l "$out"
