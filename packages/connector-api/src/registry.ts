import { NotFoundError, UserError } from '@airlock/errors';
import type { BoundDestination, BoundSource, RegisteredDestination, RegisteredSource } from './contract.ts';

/**
 * The explicit list of connectors a host knows, keyed by `id@version`. Registration is a list in
 * code, never a directory scan, so what can run is what was reviewed.
 */
export class ConnectorRegistry {
  readonly #sources = new Map<string, RegisteredSource>();
  readonly #destinations = new Map<string, RegisteredDestination>();

  add(...definitions: Array<RegisteredSource | RegisteredDestination>): this {
    for (const definition of definitions) {
      const ref = `${definition.id}@${definition.version}`;
      const map: Map<string, RegisteredSource | RegisteredDestination> =
        definition.kind === 'source' ? this.#sources : this.#destinations;
      if (map.has(ref)) throw new UserError(`connector ${ref} is registered twice`);
      map.set(ref, definition);
    }
    return this;
  }

  source(ref: string, config: unknown): BoundSource {
    const definition = this.#sources.get(ref);
    if (!definition) throw new NotFoundError(`no source connector ${ref}`);
    return definition.bind(config);
  }

  destination(ref: string, config: unknown): BoundDestination {
    const definition = this.#destinations.get(ref);
    if (!definition) throw new NotFoundError(`no destination connector ${ref}`);
    return definition.bind(config);
  }

  /** Every registered definition, sources first, in registration order: what the local policy and secrets file are shaped by. */
  definitions(): Array<RegisteredSource | RegisteredDestination> {
    return [...this.#sources.values(), ...this.#destinations.values()];
  }

  list(): Array<{ kind: 'source' | 'destination'; ref: string; title: string }> {
    return [...this.#sources.values(), ...this.#destinations.values()].map((d) => ({
      kind: d.kind,
      ref: `${d.id}@${d.version}`,
      title: d.title,
    }));
  }
}
