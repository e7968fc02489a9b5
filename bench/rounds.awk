# bench/rounds.awk - RESULT lines of the same measurement made in several
# rounds (bench/macro.sh runs each engine's queries once a round, the
# engines in turn) folded into one line per engine, corpus, metric and
# class: the median over the rounds (the mean of the middle two for an
# even count), so that a round the machine ran slow for does not decide
# a figure.
#
#   awk -f bench/rounds.awk RESULTS...
$1 == "RESULT" {
  key = ""
  for (i = 2; i <= NF; i++) {
    split($i, kv, "=")
    if (kv[1] == "value") v = kv[2] + 0
    else key = key (key == "" ? "" : " ") $i
  }
  if (!(key in n)) order[++nk] = key
  val[key, ++n[key]] = v
}
END {
  for (o = 1; o <= nk; o++) {
    key = order[o]
    c = n[key]
    for (i = 1; i <= c; i++) a[i] = val[key, i]
    for (i = 2; i <= c; i++)
      for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    m = c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
    printf "RESULT %s value=%.6g\n", key, m
  }
}
