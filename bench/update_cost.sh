#!/usr/bin/env bash
# bench/update_cost.sh - what an incremental update costs next to a build:
# index Reuters-21578 (optionally repeated), then add 10 articles to the
# source folder and time `sahelindex update`.
#
#   bench/update_cost.sh [--bin DIR] [--repeat N] [--runs R]
#
#   --bin DIR     where sahelindex is (default: build/release/bin of this
#                 repository)
#   --repeat N    index the collection N times over, the copies' ids
#                 suffixed -r1, -r2, ... (default 1: 19,043 articles)
#   --runs R      time the update R times, each on a fresh copy of the
#                 built index (default 5); minimum and median are reported
#
# The data is ${SAHEL_SHARED:-<repo>/../shared}/data/reuters21578/docs.jsonl;
# when it is missing the script prints SKIP and exits 0.  Everything lives
# in a temporary directory removed on exit.  The build is timed once (it
# is the long part); the update, which must read the sources table, stat
# every file, skip the unchanged one and index a new .jsonl of 10 fixed
# articles, is timed on copies of the same index so that every run does
# the same work.  A second series times the same update after a touch of
# the big file: the sources table can no longer tell that it is unchanged,
# so all of it is read again and every article compared by hash.  Prints
# the times, the ratios update/build and the tools' summary lines.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$repo/build/release/bin"
repeat=1
runs=5

usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

count_arg() { # name value: a positive integer or exit 2
  if [[ ! "$2" =~ ^[1-9][0-9]*$ ]]; then
    echo "update_cost.sh: $1 needs a positive integer, got '$2'" >&2
    exit 2
  fi
}

while (($# > 0)); do
  case "$1" in
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    --repeat) count_arg --repeat "${2:-}"; repeat=$2; shift 2 ;;
    --runs) count_arg --runs "${2:-}"; runs=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "update_cost.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

data="${SAHEL_SHARED:-$repo/../shared}/data/reuters21578/docs.jsonl"
if [[ ! -r "$data" ]]; then
  echo "SKIP: ../shared/data/reuters21578/docs.jsonl not found (looked for $data)"
  exit 0
fi
if [[ ! -x "$bin/sahelindex" ]]; then
  echo "update_cost.sh: $bin/sahelindex not found; build first:" >&2
  echo "  cmake --preset release && cmake --build --preset release -j2" >&2
  exit 1
fi
if ((repeat > 1)) && ! command -v python3 >/dev/null; then
  echo "update_cost.sh: --repeat needs python3" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sahel-update-cost.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src="$tmp/src"
index="$tmp/index"
mkdir -p "$src"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# the collection, N times over: copy r keeps the text, its ids get -r<r>
if ((repeat == 1)); then
  cp "$data" "$src/docs.jsonl"
else
  python3 -c '
import json, sys
n = int(sys.argv[1])
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
with open(sys.argv[3], "w", encoding="utf-8") as out:
    for r in range(n):
        for line in lines:
            doc = json.loads(line)
            if r:
                doc["id"] = "%s-r%d" % (doc["id"], r)
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
' "$repeat" "$data" "$src/docs.jsonl"
fi
ndocs=$(wc -l <"$src/docs.jsonl")
size=$(du -h "$src/docs.jsonl" | cut -f1)

echo "update_cost: $ndocs articles ($size, Reuters-21578 x$repeat), $runs timed update runs"
echo "machine: $(nproc) cores, $(uname -sr); compiler: $(cc --version 2>/dev/null | head -1)"
echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
     "tools: $bin"

t0=$(now)
build_line=$("$bin/sahelindex" build --index "$index" "$src")
t1=$(now)
build_s=$(elapsed "$t0" "$t1")

# 10 new articles, always the same
{
  for i in 01 02 03 04 05 06 07 08 09 10; do
    printf '{"id": "update-cost-%s", "title": "Grain exports rise in week %s", ' "$i" "$i"
    printf '"date": "1987-04-%s", "text": "Wheat and maize exports rose for the %s week, ' "$i" "$i"
    printf 'traders said, as shipping resumed at the main ports after a strike. Prices for '
    printf 'soft red winter wheat were steady and the central bank left rates unchanged."}\n'
  done
} >"$src/new.jsonl"

cp -a "$index" "$tmp/pristine"

# time_updates: `runs` updates, each on a fresh copy of the built index;
# sets times (seconds, in run order) and line (the last summary line)
time_updates() {
  times=()
  for ((r = 1; r <= runs; r++)); do
    rm -rf "$index"
    cp -a "$tmp/pristine" "$index"
    local t0 t1
    t0=$(now)
    line=$("$bin/sahelindex" update --index "$index" "$src")
    t1=$(now)
    times+=("$(elapsed "$t0" "$t1")")
  done
  "$bin/sahelindex" verify --index "$index" >/dev/null
}

min_median() { # the minimum and median of the arguments
  printf '%s\n' "$@" | sort -g | awk '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m }'
}

# the case updates are for: the collection as recorded, 10 new articles
time_updates
update_line=$line
update_times=("${times[@]}")
read -r update_min update_median < <(min_median "${times[@]}")

# the case the sources table cannot help with: the big file's time moved,
# so all of it is read again and every article compared by hash
touch "$src/docs.jsonl"
time_updates
reread_line=$line
reread_times=("${times[@]}")
read -r reread_min reread_median < <(min_median "${times[@]}")

echo
echo "build:  $build_line"
echo "update: $update_line"
echo "update: $reread_line"
echo
printf 'build                            %8.3f s\n' "$build_s"
printf 'update, 10 new articles          %8.3f s min, %.3f s median of %d (%s)\n' \
  "$update_min" "$update_median" "$runs" "${update_times[*]}"
printf 'update, same + big file touched  %8.3f s min, %.3f s median of %d (%s)\n' \
  "$reread_min" "$reread_median" "$runs" "${reread_times[*]}"
awk -v u="$update_min" -v t="$reread_min" -v b="$build_s" 'BEGIN {
  printf "ratio update/build               %8.4f (%.2f%%)\n", u / b, 100 * u / b
  printf "ratio touched update/build       %8.4f (%.2f%%)\n", t / b, 100 * t / b }'
