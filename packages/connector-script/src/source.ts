/**
 * `script@1`: runs an approved export script and streams its stdout straight into the host's
 * encryption pipeline. No shell: the argv is the approved one, with parameters validated against
 * the approved schema and substituted as whole strings, so shell metacharacters are inert. The
 * environment is scrubbed, the file's SHA-256 is checked right before it runs, output is capped,
 * stderr is kept to a short redacted tail for the local log, and a non-zero exit fails the stream.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assertSafeName, type ConnectorContext, defineSource, type SourceFile, type SourceSession } from '@airlock/connector-api';
import { PolicyViolationError, UserError } from '@airlock/errors';
import type { ApprovedScript } from './approved.ts';
import { scriptSourceDefinition, type ScriptSourceConfig } from './definition.ts';


const STDERR_TAIL_BYTES = 2048;
const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin';

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** The argv for a run: every `{param}` replaced by its validated value; unknown or missing parameters refused. */
export function buildArgv(script: ApprovedScript, params: Readonly<Record<string, string>>): string[] {
  for (const name of Object.keys(params)) {
    if (!(name in script.params)) throw new UserError(`script ${script.name} has no parameter ${JSON.stringify(name)}`);
  }
  const values = new Map<string, string>();
  for (const [name, rule] of Object.entries(script.params)) {
    const value = params[name];
    if (value === undefined) throw new UserError(`script ${script.name} needs parameter ${name}`);
    // eslint-disable-next-line no-control-regex
    if (value.length > rule.maxLength || /[\u0000]/.test(value) || !new RegExp(`^(?:${rule.pattern})$`, 'u').test(value)) {
      // The value itself stays out of the message: parameters can be sensitive.
      throw new UserError(`parameter ${name} of script ${script.name} does not match its declared pattern`);
    }
    values.set(name, value);
  }
  return script.args.map((arg) => arg.replace(/\{([a-zA-Z][a-zA-Z0-9_]*)\}/g, (whole, name: string) => values.get(name) ?? whole));
}

/** Keeps the end of stderr, with long tokens and `key=value` secrets masked, for the local log only. */
export function redactTail(text: string): string {
  return text
    .slice(-400)
    .replace(/((?:pass(?:word)?|secret|token|key)\s*[=:]\s*)\S+/gi, '$1[redacted]')
    .replace(/[A-Za-z0-9+/_-]{16,}/g, '[redacted]');
}

class ScriptSession implements SourceSession {
  constructor(
    private readonly ctx: ConnectorContext,
    private readonly script: ApprovedScript,
    private readonly config: ScriptSourceConfig,
    private readonly argv: string[],
  ) {}

  async list(): Promise<SourceFile[]> {
    const name = assertSafeName(this.config.outputName ?? `${this.script.name}.out`);
    return [{ path: `/${this.script.name}`, name, size: 0, mtimeMs: Date.now(), generated: true }];
  }

  async open(_file: SourceFile): Promise<Readable> {
    const actual = await fileSha256(this.script.command).catch((error: unknown) => {
      throw new UserError(`script ${this.script.name}: cannot read ${this.script.command}`, { cause: error });
    });
    if (actual !== this.script.sha256) {
      throw new PolicyViolationError(`script ${this.script.name}: ${this.script.command} changed (sha256 ${actual}, approved ${this.script.sha256})`);
    }
    const child = spawn(this.script.command, this.argv, {
      cwd: this.script.cwd,
      env: { PATH: SAFE_PATH, LANG: 'C.UTF-8', ...this.script.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
      // Its own process group, so a timeout or cap kills whatever the script started too.
      detached: true,
    });
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const out = new PassThrough();
    let bytes = 0;
    let failure: Error | null = null;
    let stderrTail = '';
    const fail = (error: Error) => {
      failure ??= error;
      killGroup();
    };
    const timer = setTimeout(() => fail(new UserError(`script ${this.script.name} timed out after ${this.script.timeoutMs} ms`)), this.script.timeoutMs);
    const onAbort = () => fail(new UserError(`script ${this.script.name} was cancelled`));
    this.ctx.signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > this.script.maxOutputBytes) fail(new UserError(`script ${this.script.name} wrote more than ${this.script.maxOutputBytes} bytes`));
    });
    // Plaintext flows on, but the stream only ends once the script has exited 0: a failed script
    // must never look like a complete file.
    child.stdout.pipe(out, { end: false });
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    child.on('error', (error) => fail(new UserError(`script ${this.script.name} could not run: ${error.message}`, { cause: error })));
    child.on('exit', () => {
      // Anything the script left running must not keep its output open.
      killGroup();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      this.ctx.signal.removeEventListener('abort', onAbort);
      const error = failure ?? (code === 0 ? null : new UserError(`script ${this.script.name} exited with ${code ?? signal ?? 'unknown'}`));
      if (error === null) {
        out.end();
        return;
      }
      this.ctx.logger.warn({ script: this.script.name, code, signal, stderrTail: redactTail(stderrTail) }, 'script failed');
      out.destroy(error);
    });
    out.on('close', () => {
      if (child.exitCode === null && child.signalCode === null) killGroup();
    });
    return out;
  }

  async close(): Promise<void> {}
}

/**
 * The script source. It runs only the approved entry the host hands it from the local policy
 * (`sources.script`): a script that is not there cannot be run, whatever the job says.
 */
export const scriptSource = defineSource(scriptSourceDefinition, {
  async connect(ctx, config, approved) {
    const script = approved.find((entry) => entry.name === config.name);
    if (!script) throw new PolicyViolationError(`script ${JSON.stringify(config.name)} is not approved in the local policy`);
    const argv = buildArgv(script, config.params);
    return new ScriptSession(ctx, script, config, argv);
  },
});

