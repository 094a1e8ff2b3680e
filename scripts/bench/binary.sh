# Sourced by the benchmarks: picks the vprocfs binary (VPROCFS, or a release build of
# this tree) and copies it to "$tmp", so that one build serves the whole run even if the
# tree is rebuilt meanwhile. Needs root, tmp, say and die; sets VP and rev.
if [ -n "${VPROCFS:-}" ]; then
    VP=$VPROCFS
else
    say "cargo build --release"
    (cd "$root" && cargo build --release --quiet --bin vprocfs) ||
        die "cargo build --release failed (set VPROCFS=BINARY to use a prebuilt one)"
    VP=$root/target/release/vprocfs
fi
[ -x "$VP" ] || die "no binary at $VP"
cp "$VP" "$tmp/vprocfs"
VP=$tmp/vprocfs
rev=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "${VPROCFS:-}" ]; then
    rev="prebuilt binary VPROCFS"
elif [ -n "$(cd "$root" && git status --porcelain -- src Cargo.toml 2>/dev/null)" ]; then
    rev="$rev+uncommitted changes"
fi
say "binary: built from $rev"
