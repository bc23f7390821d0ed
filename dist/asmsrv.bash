# Bash completion for asmsrv(1). Installed as
# /usr/share/bash-completion/completions/asmsrv; works on its own too:
#   source dist/asmsrv.bash
# Keep the option lists in step with `asmsrv SUB --help` (package_test checks).

_asmsrv_specs() {
  # SPEC: *.json files and directories (to walk into).
  local IFS=$'\n'
  compopt -o filenames 2>/dev/null
  COMPREPLY+=($(compgen -d -- "$1"))
  COMPREPLY+=($(compgen -f -X '!*.json' -- "$1"))
}

_asmsrv_files() {
  local IFS=$'\n'
  compopt -o filenames 2>/dev/null
  COMPREPLY+=($(compgen -f -- "$1"))
}

_asmsrv() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local prev=
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  # --syntax=gas: bash splits the word at "=" (COMP_WORDBREAKS).
  if [[ $cur == = && $prev == --* ]]; then
    cur=
  elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  fi
  COMPREPLY=()

  local subcommands="gen build run check explain image schema"
  local sub= i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      gen | build | run | check | explain | image | schema)
        sub=${COMP_WORDS[i]}
        break
        ;;
    esac
  done

  if [[ -z $sub ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "-h --help --version" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
    fi
    return 0
  fi

  # The value of the option before the cursor.
  case $prev in
    --syntax)
      COMPREPLY=($(compgen -W "nasm gas" -- "$cur"))
      return 0
      ;;
    --port | --tag)
      return 0 # a number, a name: nothing to offer
      ;;
    -o | --output | --keep-asm)
      _asmsrv_files "$cur"
      return 0
      ;;
  esac

  local opts
  case $sub in
    gen) opts="--syntax --port --teach -o --output -h --help" ;;
    build) opts="-o --output --syntax --port --teach --keep-asm -v --verbose -h --help" ;;
    run) opts="--syntax --port --teach -v --verbose -h --help" ;;
    check) opts="-h --help" ;;
    explain) opts="--port --teach -h --help" ;;
    image) opts="-o --output --tag --syntax --port --teach -v --verbose -h --help" ;;
    schema) opts="-h --help" ;;
  esac

  if [[ $sub == schema ]]; then
    # No SPEC: only the options.
    [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ $cur == -* ]]; then
    # An option, or "-": the spec from standard input.
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    [[ $cur == - ]] && COMPREPLY+=(-)
  else
    _asmsrv_specs "$cur"
  fi
  return 0
}

complete -F _asmsrv asmsrv
