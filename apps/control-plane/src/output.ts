/**
 * How every `airlock` command prints. Rows carry text that agents and tenants chose (hostnames,
 * reasons, names, audit targets), so each printed line has its unprintable characters escaped: a
 * newline in a hostname cannot forge a row, and an escape sequence cannot retitle or repaint the
 * admin's terminal. `--json` stays JSON that parses to the same values, with the characters JSON
 * itself leaves raw (DEL, C1 controls, bidi controls) written as `\uXXXX`.
 */
import { escapeUnprintable } from '@airlock/protocol';

/** What a command prints without `--json`: one line, or several. A line never contains a newline of its own. */
export type HumanText = string | readonly string[];

export type Output = (json: boolean, value: unknown, human: () => HumanText) => void;

/** One line as it may reach a terminal. */
export function printableLine(line: string): string {
  return escapeUnprintable(line);
}

/** JSON text in which no character can act on a terminal. */
export function printableJson(value: unknown, space?: number): string {
  return escapeUnprintable(JSON.stringify(value, null, space), { json: true });
}

export function humanLines(text: HumanText): string {
  return (typeof text === 'string' ? [text] : text).map(printableLine).join('\n');
}

export const output: Output = (json, value, human) => {
  process.stdout.write(`${json ? printableJson(value) : humanLines(human())}\n`);
};
