#!/usr/bin/env bash
# tests/durability.sh - the full-size durability tests: the test_durability
# executable that ctest runs with small trial counts, run with 100 kill
# trials and 100 commits under the searching reader (a few minutes).
#
#   tests/durability.sh [BUILD_DIR] [CRITERION_ARGS...]
#
#   BUILD_DIR        a configured and built CMake build directory (default
#                    build/debug of this repository); relative paths are
#                    taken from the repository
#   CRITERION_ARGS   passed on, e.g. --filter 'kill/*' or --verbose
#
# SAHEL_KILL_TRIALS and SAHEL_READER_UPDATES, when set, override the 100s.
# In an ASan build (build/asan) the sanitizer options are those of the
# asan test preset unless already set.  Exit status: the test binary's.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

case "${1:-}" in
  -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

build=${1:-build/debug}
(($# > 0)) && shift
[[ "$build" = /* ]] || build="$repo/$build"

tests="$build/bin/test_durability"
if [[ ! -x "$tests" || ! -x "$build/bin/sahelindex" ]]; then
  echo "durability.sh: $tests or $build/bin/sahelindex not found; build first, e.g.:" >&2
  echo "  cmake --preset debug && cmake --build --preset debug -j2" >&2
  exit 1
fi

export SAHEL_KILL_TRIALS=${SAHEL_KILL_TRIALS:-100}
export SAHEL_READER_UPDATES=${SAHEL_READER_UPDATES:-100}
# the same options as the asan test preset (CMakePresets.json)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "durability.sh: $tests with SAHEL_KILL_TRIALS=$SAHEL_KILL_TRIALS" \
     "SAHEL_READER_UPDATES=$SAHEL_READER_UPDATES"
# scratch files go to the build's tests/tmp (compiled into the binary)
exec "$tests" --jobs 2 "$@"
