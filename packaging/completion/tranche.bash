# bash completion for tranche, tranche-server and tranche-agent. Installed as
# share/bash-completion/completions/{tranche,tranche-server,tranche-agent}
# (bash-completion loads it on the first TAB after one of them); by hand:
#   source packaging/completion/tranche.bash
#
# The candidates come from the program's own --help (CLI11's "Subcommands:" and
# "Options:" sections), so they never drift from what it accepts. After an
# option that takes a value, and where no command is left to complete, files.

# _tranche_help_words PROGRAM [COMMAND...]: subcommand names, then option names.
_tranche_help_words() {
  "$@" --help 2> /dev/null | awk '
    /^Subcommands:/ { mode = "sub"; next }
    /^Options:/ { mode = "opt"; next }
    /^[^ ]/ { mode = "" }
    mode == "sub" && /^  [a-z]/ { print $1 }
    mode == "opt" && /^  -/ { n = split($1, names, ","); for (i = 1; i <= n; i++) print names[i] }'
}

# _tranche_takes_value PROGRAM [COMMAND...] OPTION: whether --help shows a type
# (TEXT, INT, ...) after OPTION's names.
_tranche_takes_value() {
  local option="${*: -1}"
  "${@:1:$#-1}" --help 2> /dev/null | awk -v opt="$option" '
    /^  -/ { n = split($1, names, ","); for (i = 1; i <= n; i++) if (names[i] == opt) { found = ($2 ~ /^[A-Z]/) } }
    END { exit found ? 0 : 1 }'
}

_tranche() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD - 1]}"
  local program="${COMP_WORDS[0]}" path=() words word i
  # The command path so far: each word that is a subcommand where it stands.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    [[ "$word" == -* ]] && continue
    if _tranche_help_words "$program" "${path[@]}" | grep -qx -- "$word"; then path+=("$word"); fi
  done
  if [[ "$prev" == -* ]] && _tranche_takes_value "$program" "${path[@]}" "$prev"; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  words=$(_tranche_help_words "$program" "${path[@]}")
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(grep -- '^-' <<< "$words")" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(grep -v -- '^-' <<< "$words")" -- "$cur"))
    ((${#COMPREPLY[@]} == 0)) && COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _tranche tranche tranche-server tranche-agent
