#!/usr/bin/env bash
# Checks the package a user would install: packs it as `npm publish` would (prepack builds dist/
# from clean), checks what the tarball holds, installs it globally into a temporary prefix and runs
# the installed `peer` from a directory outside the repository: `peer --version`, then the demo's
# membership scene (four real peers on 127.0.0.1, TTL 0) inside a private network namespace with
# only `lo`, so no packet leaves the machine.
#
# Usage: scripts/pack-check.sh   (after `npm ci`; as root, or where unprivileged user namespaces
# are allowed). Exit 0 when all of it worked. CI runs it (.ci/run).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
started=$SECONDS

name="$(node -p "require('$repo/package.json').name")"
version="$(node -p "require('$repo/package.json').version")"
tarball="$tmp/$name-$version.tgz"
(cd "$repo" && npm pack --silent --pack-destination "$tmp")
[ -f "$tarball" ] || { echo "pack-check: npm pack did not write $tarball" >&2; exit 1; }

# What must be in it, and what must not (tests, benchmarks, sources, source maps, the dev entry).
contents="$(tar -tzf "$tarball")"
for f in package/bin/run.js package/dist/commands/up.js package/dist/commands/demo.js \
  package/oclif.manifest.json package/docs/recovery.md package/LICENSE package/README.md; do
  grep -qx "$f" <<<"$contents" || { echo "pack-check: $f is missing from the tarball" >&2; exit 1; }
done
if grep -E '^package/(test|bench|src)/|\.map$|^package/bin/dev\.js$' <<<"$contents"; then
  echo "pack-check: the tarball ships the files above, which a user does not need" >&2
  exit 1
fi
echo "pack-check: $(basename "$tarball"), $(wc -l <<<"$contents") files"

# Tarballs come from the npm cache `npm ci` filled; --prefer-offline still asks the registry for
# the packuments `npm ci` does not cache (with --offline npm stops at the first: ENOTCACHED).
# Install scripts are skipped: the only one is better-sqlite3's, which downloads a prebuilt
# binding or compiles SQLite (2.5 minutes on a loaded 2-core machine). `npm ci` just built that
# binding for this very version and Node, so it is copied; any other version is rebuilt.
prefix="$tmp/prefix"
npm install -g --prefix "$prefix" --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error \
  "$tarball" >/dev/null
sqlite="$prefix/lib/node_modules/$name/node_modules/better-sqlite3"
built="$repo/node_modules/better-sqlite3"
version_of() { node -p "require('$1/package.json').version"; }
if [ -f "$built/build/Release/better_sqlite3.node" ] && [ "$(version_of "$sqlite")" = "$(version_of "$built")" ]; then
  mkdir -p "$sqlite/build/Release"
  cp "$built/build/Release/better_sqlite3.node" "$sqlite/build/Release/"
else
  (cd "$prefix/lib/node_modules/$name" && npm rebuild better-sqlite3 --loglevel=error >/dev/null)
fi
echo "pack-check: installed into a temporary prefix in $((SECONDS - started)) s"

# From outside the repository, with only the prefix's bin added to PATH.
mkdir "$tmp/elsewhere"
cd "$tmp/elsewhere"
export PATH="$prefix/bin:$PATH"
[ "$(command -v peer)" = "$prefix/bin/peer" ] || { echo "pack-check: peer is not the installed one" >&2; exit 1; }
netns=(unshare --net)
[ "$(id -u)" = 0 ] || netns+=(--map-root-user)
"${netns[@]}" bash -c '
  set -euo pipefail
  ip link set lo up
  peer --version | grep -q "^'"$name/$version"' " || { echo "pack-check: peer --version says: $(peer --version)" >&2; exit 1; }
  peer demo --scene membership
'
echo "pack-check: ok in $((SECONDS - started)) s"
