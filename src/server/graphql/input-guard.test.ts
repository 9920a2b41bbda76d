import { parse } from 'graphql';
import { checkDocumentStrings, checkVariables, stringProblem } from './input-guard';

describe('input guard', () => {
  it('counts list values across all variables and names the list that crosses the budget', () => {
    expect(checkVariables({ a: [1, 2, 3], b: { c: [4, 5] } }, 5)).toBeNull();
    const over = checkVariables({ a: [1, 2, 3], b: { inputs: [{ data: [4, 5, 6] }] } }, 5);
    expect(over?.field).toBe('$b.inputs[0].data');
    expect(over?.message).toMatch(/dataBase64/);
    expect(checkVariables({ images: [{ pixels: new Array(10).fill(0) }] }, 5)?.message).toMatch(/send the image as image \(base64 of an encoded PNG/);
  });

  it('refuses NUL and unpaired surrogates wherever a string sits', () => {
    expect(stringProblem('plain ✓ text 😀')).toBeNull();
    expect(stringProblem('a\u0000b')).toMatch(/NUL/);
    expect(stringProblem('x\ud800')).toMatch(/UTF-8/);
    expect(checkVariables({ f: { list: ['ok', 'bad\u0000'] } }, 100)?.field).toBe('$f.list[1]');
    expect(checkDocumentStrings(parse('{ apiKeys(tenant: "a\\u0000b") { edges { cursor } } }'))?.field).toBe('tenant');
    // graphql-js's lexer already refuses unpaired surrogate escapes in literals (GRAPHQL_PARSE_FAILED).
    expect(checkDocumentStrings(parse('{ usageRecords(filter: { model: "a\\u0000" }) { edges { cursor } } }'))?.field).toBe('filter.model');
    expect(checkDocumentStrings(parse('{ model(name: "fashion-cnn") { name } }'))).toBeNull();
  });
});
