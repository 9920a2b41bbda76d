/**
 * Protocol buffers text format (what Triton's `config.pbtxt` is written in),
 * parsed against the message descriptors of Triton's own
 * `model_config.proto` (vendored under proto/triton): a field the proto does
 * not define, a value of the wrong type or an enum name it lacks is an error
 * naming the line. The result has the shape of Triton's JSON model config
 * (field names as in the .proto, repeated fields as arrays, enums by name,
 * maps as objects), so triton-config.ts turns either form into a ModelConfig.
 *
 * Grammar (the text format's, as protobuf's TextFormat reads it):
 *   message := field*            (fields separated by nothing, `,` or `;`)
 *   field   := name ':' scalar | name ':'? '{' message '}' | name ':'? '<' message '>'
 *            | name ':'? '[' (value (',' value)*)? ']'
 * with `#` comments, single- or double-quoted strings (C escapes; adjacent
 * strings concatenate), decimal/hex/octal integers, floats (`inf`, `nan`),
 * and enums by name or number.
 */
import path from 'node:path';
import { Enum, MapField, Root, Type, type Field } from 'protobufjs';

/** proto/triton at the repository root, from src/inference or dist/inference alike. */
const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto', 'triton');

export class TextFormatError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`line ${line}:${column}: ${message}`);
    this.name = 'TextFormatError';
  }
}

type TokenKind = 'ident' | 'number' | 'string' | 'symbol' | 'end';

interface Token {
  kind: TokenKind;
  text: string;
  /** The decoded value of a string token. */
  value: string;
  line: number;
  column: number;
}

const SYMBOLS = new Set(['{', '}', '[', ']', '<', '>', ':', ',', ';', '-', '.', '/']);
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\', "'": "'", '"': '"', '?': '?' };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const at = (start: number) => ({ line, column: start - lineStart + 1 });
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\n') {
      i += 1;
      line += 1;
      lineStart = i;
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') {
      i += 1;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i += 1;
    } else if (c === '"' || c === "'") {
      const start = i;
      let value = '';
      i += 1;
      while (i < text.length && text[i] !== c) {
        const ch = text[i] as string;
        if (ch === '\n') throw new TextFormatError('string not closed on its line', line, start - lineStart + 1);
        if (ch !== '\\') {
          value += ch;
          i += 1;
          continue;
        }
        const next = text[i + 1] ?? '';
        const octal = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4));
        const hex = /^x([0-9A-Fa-f]{1,2})/.exec(text.slice(i + 1, i + 4));
        if (octal) {
          value += String.fromCharCode(parseInt(octal[0], 8));
          i += 1 + octal[0].length;
        } else if (hex) {
          value += String.fromCharCode(parseInt(hex[1] as string, 16));
          i += 1 + hex[0].length;
        } else if (ESCAPES[next] !== undefined) {
          value += ESCAPES[next];
          i += 2;
        } else {
          throw new TextFormatError(`unknown escape \\${next}`, line, i - lineStart + 1);
        }
      }
      if (i >= text.length) throw new TextFormatError('string not closed', line, start - lineStart + 1);
      i += 1;
      tokens.push({ kind: 'string', text: text.slice(start, i), value, ...at(start) });
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      const match = /^(0[xX][0-9A-Fa-f]+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fF]?)/.exec(text.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'number', text: match[0], value: match[0], ...at(i) });
      i += match[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'ident', text: match[0], value: match[0], ...at(i) });
      i += match[0].length;
    } else if (SYMBOLS.has(c)) {
      tokens.push({ kind: 'symbol', text: c, value: c, ...at(i) });
      i += 1;
    } else {
      throw new TextFormatError(`unexpected character ${JSON.stringify(c)}`, line, i - lineStart + 1);
    }
  }
  tokens.push({ kind: 'end', text: '', value: '', ...at(i) });
  return tokens;
}

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);

/** The values an integer field of protobuf type `type` holds. */
function integerRange(type: string): [bigint, bigint] {
  if (INT32.has(type)) return [-(2n ** 31n), 2n ** 31n - 1n];
  if (UINT32.has(type)) return [0n, 2n ** 32n - 1n];
  if (INT64.has(type)) return [-(2n ** 63n), 2n ** 63n - 1n];
  if (UINT64.has(type)) return [0n, 2n ** 64n - 1n];
  throw new Error(`not an integer type: ${type}`);
}

/** A parsed message: field names as in the .proto. */
export type TextMessage = Record<string, unknown>;

class Parser {
  private position = 0;

  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.position] as Token;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.position += 1;
    return token;
  }

  private fail(message: string, token = this.peek()): never {
    throw new TextFormatError(message, token.line, token.column);
  }

  private accept(symbol: string): boolean {
    const token = this.peek();
    if (token.kind === 'symbol' && token.text === symbol) {
      this.position += 1;
      return true;
    }
    return false;
  }

  private expect(symbol: string): void {
    if (!this.accept(symbol)) this.fail(`expected "${symbol}", found ${this.describe(this.peek())}`);
  }

  private describe(token: Token): string {
    return token.kind === 'end' ? 'the end of the text' : `"${token.text}"`;
  }

  /** Fields until `close` (or the end of the text for the top-level message). */
  message(type: Type, close: string | null): TextMessage {
    const out: TextMessage = {};
    for (;;) {
      const token = this.peek();
      if (close === null ? token.kind === 'end' : token.kind === 'symbol' && token.text === close) {
        this.next();
        return out;
      }
      if (token.kind === 'end') this.fail(`expected "${close ?? ''}" to close the message ${type.name}`);
      this.field(type, out);
      if (!this.accept(',')) this.accept(';');
    }
  }

  private field(type: Type, out: TextMessage): void {
    const nameToken = this.next();
    if (nameToken.kind === 'symbol' && nameToken.text === '[') this.fail('extensions and Any fields are not part of a Triton model config', nameToken);
    if (nameToken.kind !== 'ident') this.fail(`expected a field name, found ${this.describe(nameToken)}`, nameToken);
    const field = type.fields[nameToken.text];
    if (!field) this.fail(`${type.name} has no field "${nameToken.text}"`, nameToken);
    field.resolve();
    const isMessage = field.resolvedType instanceof Type || field instanceof MapField;
    const colon = this.accept(':');
    if (!colon && !isMessage) this.fail(`expected ":" after "${field.name}"`);
    const repeated = field.repeated || field instanceof MapField;
    const values: unknown[] = [];
    if (this.accept('[')) {
      if (!repeated) this.fail(`"${field.name}" is not a repeated field`);
      if (!this.accept(']')) {
        do {
          values.push(this.value(field));
        } while (this.accept(','));
        this.expect(']');
      }
    } else {
      values.push(this.value(field));
    }
    if (field instanceof MapField) {
      const map = (out[field.name] ?? {}) as Record<string, unknown>;
      for (const entry of values as TextMessage[]) map[String(entry['key'] ?? '')] = entry['value'];
      out[field.name] = map;
    } else if (repeated) {
      out[field.name] = [...((out[field.name] as unknown[] | undefined) ?? []), ...values];
    } else {
      if (field.name in out) this.fail(`"${field.name}" is set twice`, nameToken);
      out[field.name] = values[0];
    }
  }

  private value(field: Field): unknown {
    if (field instanceof MapField) {
      const open = this.next();
      if (open.kind !== 'symbol' || (open.text !== '{' && open.text !== '<')) this.fail(`expected "{" for a map entry of "${field.name}"`, open);
      return this.mapEntry(field, open.text === '{' ? '}' : '>');
    }
    if (field.resolvedType instanceof Type) {
      const open = this.next();
      if (open.kind !== 'symbol' || (open.text !== '{' && open.text !== '<')) this.fail(`expected "{" to open "${field.name}"`, open);
      return this.message(field.resolvedType, open.text === '{' ? '}' : '>');
    }
    if (field.resolvedType instanceof Enum) return this.enumValue(field.resolvedType, field.name);
    return this.scalar(field.type, field.name);
  }

  private mapEntry(field: MapField, close: string): TextMessage {
    const entry: TextMessage = {};
    for (;;) {
      if (this.accept(close)) break;
      const name = this.next();
      if (name.kind !== 'ident' || (name.text !== 'key' && name.text !== 'value')) this.fail(`a map entry of "${field.name}" has only key and value`, name);
      if (name.text === 'key') {
        this.expect(':');
        entry['key'] = this.scalar(field.keyType, `${field.name}.key`);
      } else if (field.resolvedType instanceof Type) {
        this.accept(':');
        const open = this.next();
        if (open.kind !== 'symbol' || (open.text !== '{' && open.text !== '<')) this.fail(`expected "{" to open "${field.name}" value`, open);
        entry['value'] = this.message(field.resolvedType, open.text === '{' ? '}' : '>');
      } else {
        this.expect(':');
        entry['value'] = field.resolvedType instanceof Enum ? this.enumValue(field.resolvedType, field.name) : this.scalar(field.type, `${field.name}.value`);
      }
      if (!this.accept(',')) this.accept(';');
    }
    return entry;
  }

  private enumValue(type: Enum, name: string): string {
    const token = this.next();
    if (token.kind === 'ident' && type.values[token.text] !== undefined) return token.text;
    if (token.kind === 'number' && /^\d+$/.test(token.text)) {
      const found = type.valuesById[Number(token.text)];
      if (found !== undefined) return found;
    }
    return this.fail(`"${name}": ${this.describe(token)} is not a value of ${type.name}`, token);
  }

  private scalar(type: string, name: string): unknown {
    if (type === 'string' || type === 'bytes') {
      const first = this.next();
      if (first.kind !== 'string') this.fail(`"${name}" takes a quoted string, found ${this.describe(first)}`, first);
      let value = first.value;
      while (this.peek().kind === 'string') value += this.next().value;
      return value;
    }
    if (type === 'bool') {
      const token = this.next();
      if (token.kind === 'ident' && ['true', 't', 'True'].includes(token.text)) return true;
      if (token.kind === 'ident' && ['false', 'f', 'False'].includes(token.text)) return false;
      if (token.kind === 'number' && (token.text === '0' || token.text === '1')) return token.text === '1';
      return this.fail(`"${name}" takes true or false, found ${this.describe(token)}`, token);
    }
    const negative = this.accept('-');
    const token = this.next();
    if (type === 'double' || type === 'float') {
      if (token.kind === 'ident' && /^(inf|infinity)$/i.test(token.text)) return negative ? -Infinity : Infinity;
      if (token.kind === 'ident' && /^nan$/i.test(token.text)) return NaN;
      if (token.kind !== 'number' || /^0[xX]/.test(token.text)) this.fail(`"${name}" takes a number, found ${this.describe(token)}`, token);
      const value = Number(token.text.replace(/[fF]$/, ''));
      return negative ? -value : value;
    }
    if (token.kind !== 'number' || !/^(0[xX][0-9A-Fa-f]+|\d+)$/.test(token.text)) return this.fail(`"${name}" takes an integer, found ${this.describe(token)}`, token);
    const digits = /^0[xX]/.test(token.text) ? token.text : /^0\d/.test(token.text) ? `0o${token.text.slice(1)}` : token.text;
    let value: bigint;
    try {
      value = BigInt(digits);
    } catch {
      return this.fail(`"${name}": ${token.text} is not an integer`, token);
    }
    if (negative) value = -value;
    const [min, max] = integerRange(type);
    if (value < min || value > max) this.fail(`"${name}": ${negative ? '-' : ''}${token.text} is out of range for ${type}`, token);
    // int64 values past 2^53 stay decimal text (as proto-loader's longs: String), so nothing is rounded.
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  }
}

let modelConfigType: Type | null = null;

/** Triton's inference.ModelConfig descriptor, loaded once from the vendored model_config.proto. */
function tritonModelConfigType(): Type {
  if (!modelConfigType) {
    const root = new Root().loadSync(path.join(PROTO_DIR, 'model_config.proto'), { keepCase: true });
    root.resolveAll();
    modelConfigType = root.lookupType('inference.ModelConfig');
  }
  return modelConfigType;
}

/** Parses text-format `text` as message `type`; TextFormatError names the line and column of what is wrong. */
export function parseTextFormat(text: string, type: Type): TextMessage {
  return new Parser(tokenize(text)).message(type, null);
}

/** Parses a Triton `config.pbtxt` into Triton's JSON model config shape. */
export function parseTritonPbtxt(text: string): TextMessage {
  return parseTextFormat(text, tritonModelConfigType());
}
