# bench/builds.awk - the RESULT lines of several one-run builds per engine
# (bench_sahel / peer_* build --repeat 1, run in alternation by
# bench/macro.sh and bench/run) folded into one set per engine, as one
# `build --repeat N` would print them: the median time and its minimum,
# MB/s and articles/s of the median, the largest peak RSS, the last index
# size and article count.
#
#   awk -f bench/builds.awk BUILD-RESULTS...
$1 == "RESULT" {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  k = f["engine"] SUBSEP f["metric"]
  n[k]++
  val[k, n[k]] = f["value"] + 0
  corpus[f["engine"]] = f["corpus"]
  if (!(f["engine"] in seen)) { seen[f["engine"]] = 1; order[++ne] = f["engine"] }
}
function med(e, m,   c, i, j, t, a) {
  c = n[e, m]
  for (i = 1; i <= c; i++) a[i] = val[e, m, i]
  for (i = 2; i <= c; i++)
    for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
  return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
}
function ext(e, m, want_max,   i, x) {
  x = val[e, m, 1]
  for (i = 2; i <= n[e, m]; i++)
    if (want_max ? val[e, m, i] > x : val[e, m, i] < x) x = val[e, m, i]
  return x
}
function out(e, m, x) {
  printf "RESULT engine=%s corpus=%s metric=%s class=- value=%.6g\n", e, corpus[e], m, x
}
END {
  for (o = 1; o <= ne; o++) {
    e = order[o]
    out(e, "build_s", med(e, "build_s"))
    out(e, "build_s_min", ext(e, "build_s", 0))
    out(e, "build_mbps", med(e, "build_mbps"))
    out(e, "docs_per_s", med(e, "docs_per_s"))
    out(e, "peak_rss_mb", ext(e, "peak_rss_mb", 1))
    out(e, "index_mb", val[e, "index_mb", n[e, "index_mb"]])
    out(e, "docs", val[e, "docs", n[e, "docs"]])
  }
}
