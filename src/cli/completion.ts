/**
 * `modelgate completion bash|zsh`: a completion script generated from the
 * command tree itself, so a new command or option completes without an edit
 * here. Completes commands, options, and the values of options and arguments
 * with a fixed set of choices. zsh runs the same functions through its
 * bashcompinit layer.
 */
import type { Command } from 'commander';

interface Node {
  path: string;
  words: string[];
}

function nodes(command: Command, prefix: string): Node[] {
  const path = prefix;
  const subcommands = command.commands.map((c) => c.name());
  const options = command.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f)));
  const args = (command.registeredArguments ?? []).flatMap((a) => a.argChoices ?? []);
  const words = [...subcommands, ...args, ...options, '--help'];
  return [{ path, words }, ...command.commands.flatMap((c) => nodes(c, `${prefix}${prefix ? ' ' : ''}${c.name()}`))];
}

function choiceOptions(command: Command, prefix: string): { key: string; values: string[] }[] {
  const own = command.options.filter((o) => o.argChoices?.length).map((o) => ({ key: `${prefix}|${o.long ?? ''}`, values: o.argChoices ?? [] }));
  return [...own, ...command.commands.flatMap((c) => choiceOptions(c, `${prefix}${prefix ? ' ' : ''}${c.name()}`))];
}

/** Single-quoted for the shell. */
function q(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function bashCompletion(program: Command): string {
  const all = nodes(program, '');
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  return [
    `# ${name} completion for bash: source <(${name} completion bash), or save it under /etc/bash_completion.d/`,
    `${fn}_words() {`,
    '  case "$1" in',
    ...all.map((n) => `    ${q(n.path)}) echo ${q([...new Set(n.words)].join(' '))} ;;`),
    '    *) return 1 ;;',
    '  esac',
    '}',
    `${fn}_values() {`,
    '  case "$1" in',
    ...choiceOptions(program, '').map((c) => `    ${q(c.key)}) echo ${q(c.values.join(' '))} ;;`),
    '    *) return 1 ;;',
    '  esac',
    '}',
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" next i values',
    '  ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    next="${path:+$path }${COMP_WORDS[i]}"',
    `    ${fn}_words "$next" >/dev/null && path="$next"`,
    '  done',
    `  if values="$(${fn}_values "$path|$prev")"; then`,
    '    COMPREPLY=($(compgen -W "$values" -- "$cur"))',
    '    return 0',
    '  fi',
    `  COMPREPLY=($(compgen -W "$(${fn}_words "$path")" -- "$cur"))`,
    '}',
    `complete -F ${fn} ${name}`,
    '',
  ].join('\n');
}

export function zshCompletion(program: Command): string {
  const name = program.name();
  return [
    `# ${name} completion for zsh: source <(${name} completion zsh) in ~/.zshrc (after compinit)`,
    'autoload -U +X bashcompinit && bashcompinit',
    bashCompletion(program).split('\n').slice(1).join('\n'),
  ].join('\n');
}
