#!/usr/bin/env bash
# Where a process's resident memory is: /proc/PID/smaps_rollup, then every mapping
# of /proc/PID/smaps summed per backing file (anonymous mappings per kind) with
# Rss, Pss, private (clean + dirty) and private dirty, largest Rss first.
# Usage: bench/agent_smaps.sh PID [TOP]   (default TOP 25; 0 = every row)
# Rss counts every resident page the process maps; Pss divides each shared page by
# the number of processes mapping it (so it depends on what else runs); private
# pages are the ones only this process maps (what it would cost a 2nd time is less).
set -euo pipefail
pid="${1:?usage: agent_smaps.sh PID [TOP]}"; top="${2:-25}"
awk '/^(Rss|Pss|Pss_Anon|Pss_File|Shared_Clean|Private_Clean|Private_Dirty|Anonymous|Swap):/ \
  {printf "  %-14s %6d kB\n", $1, $2}' "/proc/$pid/smaps_rollup"
awk -v top="$top" '
  # One record per mapping: name (path, [heap], [stack] or empty), permissions,
  # Size, Rss, Pss, private and private dirty; classified once all are read.
  /^[0-9a-f]+-[0-9a-f]+ / {
    m++; perm[m] = $2; name[m] = ""
    for (i = 6; i <= NF; i++) name[m] = name[m] (i > 6 ? " " : "") $i
    next
  }
  /^Size:/ { size[m] = $2 } /^Rss:/ { rss[m] = $2 } /^Pss:/ { pss[m] = $2 }
  /^Private_Clean:/ { priv[m] += $2 } /^Private_Dirty:/ { priv[m] += $2; dirty[m] = $2 }
  END {
    for (j = 1; j <= m; j++) {
      k = name[j]
      if (k == "") {
        # glibc: a thread arena is one 64 MB reservation, its used head rw-p and
        # the rest ---p; a thread stack is RLIMIT_STACK (8 MB) rw-p after a ---p
        # guard page. Other anonymous maps: the libraries bss, large malloc()s.
        if (perm[j] == "rw-p" && j < m && name[j + 1] == "" && perm[j + 1] == "---p" && size[j] + size[j + 1] == 65536)
          k = "[anon: malloc arena of a thread, 64 MB reserved]"
        else if (perm[j] == "---p" && j > 1 && name[j - 1] == "" && perm[j - 1] == "rw-p" && size[j] + size[j - 1] == 65536)
          k = "[anon: malloc arena of a thread, 64 MB reserved]"
        else if (perm[j] == "rw-p" && size[j] >= 8000 && size[j] <= 8192 && j > 1 && name[j - 1] == "" && perm[j - 1] == "---p")
          k = "[anon: thread stack, 8 MB reserved]"
        else k = "[anon: other]"
      } else if (k ~ /^\//) { n = split(k, parts, "/"); k = parts[n] }
      R[k] += rss[j]; P[k] += pss[j]; V[k] += priv[j]; D[k] += dirty[j]; N[k]++
    }
    for (k in R) printf "%d\t%d\t%d\t%d\t%d\t%s\n", R[k], P[k], V[k], D[k], N[k], k
  }' "/proc/$pid/smaps" | sort -t$'\t' -k1,1nr | {
  printf "  %7s %7s %7s %7s %4s  %s\n" "Rss kB" "Pss kB" "Priv kB" "Dirty" "maps" "mapping"
  i=0; rest_r=0; rest_p=0; rest_v=0; rest_d=0; rest_n=0
  while IFS=$'\t' read -r r p v d c name; do
    i=$((i + 1))
    if [ "$top" -eq 0 ] || [ "$i" -le "$top" ]; then
      printf "  %7d %7d %7d %7d %4d  %s\n" "$r" "$p" "$v" "$d" "$c" "$name"
    else
      rest_r=$((rest_r + r)); rest_p=$((rest_p + p)); rest_v=$((rest_v + v)); rest_d=$((rest_d + d)); rest_n=$((rest_n + 1))
    fi
  done
  if [ "$rest_n" -gt 0 ]; then
    printf "  %7d %7d %7d %7d %4s  (%d more)\n" "$rest_r" "$rest_p" "$rest_v" "$rest_d" "" "$rest_n"
  fi
}
