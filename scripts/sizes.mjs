#!/usr/bin/env node
// The largest source files and functions, so anyone can check the rooms stay small (new code:
// files ~400 lines, functions ~80). `npm run sizes [N]`; reads src/ with TypeScript's parser.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = new URL('..', import.meta.url).pathname;
const TOP = Number(process.argv[2] ?? 15);
const FILE_LIMIT = 400;
const FUNCTION_LIMIT = 80;

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* sources(p);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) yield p;
  }
}

const files = [];
const fns = [];
for (const path of sources(join(ROOT, 'src'))) {
  const text = readFileSync(path, 'utf8');
  const rel = relative(ROOT, path);
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  files.push({ rel, lines: sf.getLineAndCharacterOfPosition(text.length).line + 1 });
  const visit = (node, owner) => {
    const named = ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isConstructorDeclaration(node) || ts.isGetAccessor(node);
    const arrow = (ts.isArrowFunction(node) || ts.isFunctionExpression(node)) && ts.isVariableDeclaration(node.parent);
    if ((named || arrow) && node.body) {
      const name = ts.isConstructorDeclaration(node) ? 'constructor' : (arrow ? node.parent.name : node.name)?.getText(sf) ?? '(anonymous)';
      const from = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const to = sf.getLineAndCharacterOfPosition(node.end).line;
      fns.push({ where: `${rel}:${from + 1}`, name: owner ? `${owner}.${name}` : name, lines: to - from + 1 });
    }
    const cls = ts.isClassDeclaration(node) && node.name ? node.name.text : owner;
    ts.forEachChild(node, (c) => visit(c, cls));
  };
  visit(sf, '');
}

const mark = (n, limit) => (n > limit ? '  (over ~' + limit + ')' : '');
files.sort((a, b) => b.lines - a.lines);
fns.sort((a, b) => b.lines - a.lines);
console.log(`largest files (of ${files.length} in src/):`);
for (const f of files.slice(0, TOP)) console.log(`  ${String(f.lines).padStart(5)}  ${f.rel}${mark(f.lines, FILE_LIMIT)}`);
console.log(`largest functions (of ${fns.length}):`);
for (const f of fns.slice(0, TOP)) console.log(`  ${String(f.lines).padStart(5)}  ${f.name}  ${f.where}${mark(f.lines, FUNCTION_LIMIT)}`);
