/**
 * The constructs' props, read from their sources with the TypeScript compiler: every property of every exported
 * interface is readonly and documented, and every optional one says what happens without it (`@default`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';

const CONSTRUCTS = path.join(REPO_ROOT, 'lib', 'constructs');

interface Prop {
  readonly where: string;
  readonly readonly: boolean;
  readonly optional: boolean;
  readonly doc: string;
}

function propsOf(file: string): Prop[] {
  const text = fs.readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const props: Prop[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isInterfaceDeclaration(node) &&
      node.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
    ) {
      for (const member of node.members) {
        if (!ts.isPropertySignature(member)) continue;
        const docs = ts.getJSDocCommentsAndTags(member).map((d) => d.getText(source));
        props.push({
          where: `${path.basename(file)} ${node.name.text}.${member.name.getText(source)}`,
          readonly: member.modifiers?.some((m) => m.kind === ts.SyntaxKind.ReadonlyKeyword) ?? false,
          optional: member.questionToken !== undefined,
          doc: docs.join('\n'),
        });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return props;
}

describe('construct props', () => {
  const files = fs
    .readdirSync(CONSTRUCTS)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(CONSTRUCTS, f));
  const props = files.flatMap(propsOf);

  it('reads the props of every construct', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
    expect(props.length).toBeGreaterThan(50);
  });

  it('every prop is readonly and documented', () => {
    expect(props.filter((p) => !p.readonly).map((p) => p.where)).toEqual([]);
    expect(props.filter((p) => p.doc.trim() === '').map((p) => p.where)).toEqual([]);
  });

  it('every optional prop says what happens without it (@default)', () => {
    expect(props.filter((p) => p.optional && !p.doc.includes('@default')).map((p) => p.where)).toEqual([]);
  });
});
