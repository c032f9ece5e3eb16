/**
 * The names delivered files get. The control plane checks an integration's `output.nameTemplate`
 * with `nameTemplateProblem` when it is saved, and the agent renders names with `renderName` at run
 * time: the same filling and the same safety rule, so a template the control plane accepts cannot
 * fail on the agent for an ordinary file.
 */
import { z } from 'zod';
import { UserError } from '@airlock/errors';
import { isSafeName } from './paths.ts';

/** The placeholders a delivered file's name may use. */
export const nameTemplatePlaceholders = ['name', 'stem', 'ext', 'date', 'runId'] as const;
type Placeholder = (typeof nameTemplatePlaceholders)[number];

const PLACEHOLDER = /\{([^{}]*)\}/g;

function isPlaceholder(key: string): key is Placeholder {
  return nameTemplatePlaceholders.some((placeholder) => placeholder === key);
}

/** `a.tar.gz` → stem `a.tar`, ext `gz`; a name with no dot after its first character has no ext. */
function splitName(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? { stem: name, ext: '' } : { stem: name.slice(0, dot), ext: name.slice(dot + 1) };
}

/** `YYYYMMDD` in UTC. */
function utcDate(date: Date): string {
  return date.toISOString().slice(0, 10).replaceAll('-', '');
}

function fill(template: string, fileName: string, run: { runId: string; date: Date }): string {
  const { stem, ext } = splitName(fileName);
  const values: Record<Placeholder, string> = { name: fileName, stem, ext, date: utcDate(run.date), runId: run.runId };
  return template.replace(PLACEHOLDER, (whole, key: string) => (isPlaceholder(key) ? values[key] : whole));
}

// Ordinary files, one with an extension and one without: a template must give both a safe name.
const SAMPLE_NAMES = ['report.csv', 'report'];
const SAMPLE_RUN = { runId: '00000000-0000-4000-8000-000000000000', date: new Date(Date.UTC(2026, 0, 1)) };

const SYNTAX = `placeholders are ${nameTemplatePlaceholders.map((p) => `{${p}}`).join(', ')}`;

function syntaxIsValid(template: string): boolean {
  return [...template.matchAll(PLACEHOLDER)].every((match) => isPlaceholder(match[1] ?? '')) && !/[{}]/.test(template.replace(PLACEHOLDER, ''));
}

/**
 * A template as jobs and stored integrations carry it: known placeholders only. Kept to that, so
 * integrations saved before the rendering rule was checked on save still parse on both sides (the
 * agent refuses an unsafe name at run time anyway).
 */
export const nameTemplateSyntax = z.string().min(1).max(255).refine(syntaxIsValid, SYNTAX);

/** Why `template` cannot name delivered files, or undefined when it can: what a save must check. */
export function nameTemplateProblem(template: string): string | undefined {
  if (!syntaxIsValid(template)) return SYNTAX;
  for (const sample of SAMPLE_NAMES) {
    const name = fill(template, sample, SAMPLE_RUN);
    if (!isSafeName(name)) {
      return `gives ${JSON.stringify(name)} for a file named ${JSON.stringify(sample)}; a delivered name must be one path component: not empty, . or .., no / or \\, no control characters, at most 255 bytes`;
    }
  }
  return undefined;
}

/**
 * The name `file` is delivered under. The result must be one safe path component; a file whose
 * own name makes it unsafe (too long once decorated) is the integration's mistake, a user error.
 */
export function renderName(template: string, file: { path: string; name: string }, run: { runId: string; date: Date }): string {
  const name = fill(template, file.name, run);
  if (!isSafeName(name)) throw new UserError(`name template ${JSON.stringify(template)} gives an unsafe file name for ${file.path}`);
  return name;
}
